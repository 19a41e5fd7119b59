"""The Python API: the docs' notebook example run as written, the same run as train.py, its user errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, train_in_process

from lstm_trainer.api import Forecaster
from lstm_trainer.errors import UserError


def docs_example() -> str:
    """The first Python block of the docs' "Python API (notebooks)" page (tests/test_docs.py runs it too)."""
    text = (ROOT / "docs" / "api.md").read_text()
    found = re.search(r"```python\n(.*?)```", text, re.S)
    assert found is not None, "docs/api.md has no python block"
    return found.group(1)


def test_the_docs_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(docs_example(), "docs/api.md", "exec"), scope)  # its own assert: load + predict is identical
    forecast = scope["forecast"]
    assert isinstance(forecast, pd.DataFrame)
    assert list(forecast.columns) == ["unique_id", "ds", "forecast"]
    assert len(forecast) == 2 * 7 and np.isfinite(forecast["forecast"]).all()
    # The days after each series' last (2024-04-29), by its own daily frequency.
    assert list(forecast["ds"][:7]) == list(pd.date_range("2024-04-30", periods=7, freq="D"))
    # The two series sit at levels 10 and 20; each forecast stays with its own.
    by_store = forecast.groupby("unique_id")["forecast"].mean()
    assert abs(by_store["a"] - 10) < 2 and abs(by_store["b"] - 20) < 2
    # The folder save wrote is the command line's model folder: the predict command loads it.
    from lstm_trainer.model.forecaster import LSTMForecaster

    assert LSTMForecaster.from_pretrained(tmp_path / "my-model").horizon == 7
    assert (tmp_path / "runs/notebook/all_results.json").is_file()


def frame(points: int = 90) -> pd.DataFrame:
    t = np.arange(points)
    rng = np.random.default_rng(1)
    return pd.concat(
        [
            pd.DataFrame({"store": name, "t": t, "sales": level + np.sin(t / 3) + rng.normal(0, 0.1, points)})
            for name, level in (("x", 5.0), ("y", 8.0))
        ]
    )


def test_fit_is_train_py_on_the_same_data(tmp_path: Path) -> None:
    """The API's run and `train.py` with the same flags on the file it wrote score the same."""
    options: dict[str, Any] = {
        "seq_length": 12,
        "horizon": 3,
        "hidden_size": 8,
        "num_train_epochs": 2,
        "quantiles": [0.1, 0.5, 0.9],
    }
    model = Forecaster(id_col="store", time_col="t", target_col="sales", output_dir=str(tmp_path / "api"), **options)
    model.fit(frame())
    flags = [f"--{k}={v}" for k, v in options.items() if k != "quantiles"] + ["--quantiles", "0.1", "0.5", "0.9"]
    train_in_process(
        [
            *flags,
            *("--dataset", str(tmp_path / "api" / "fit_data.parquet"), "--data_column", "sales"),
            *("--id_column", "store", "--time_column", "t", "--output_dir", str(tmp_path / "cli")),
        ]
    )
    api = json.loads((tmp_path / "api" / "all_results.json").read_text())
    cli = json.loads((tmp_path / "cli" / "all_results.json").read_text())
    for key in ("test_mse", "test_mase", "val_mse", "best_val_mse", "linear_test_mse", "optimizer_steps"):
        assert api[key] == cli[key], key
    forecast = model.predict(h=5)  # beyond the model's horizon of 3: fed back, as predict does
    assert list(forecast.columns) == ["store", "t", "forecast", "q0.1", "q0.5", "q0.9"]
    assert list(forecast["t"][:5]) == [90, 91, 92, 93, 94]
    assert (forecast["q0.1"] <= forecast["q0.9"]).all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hiden_size": 8}, "unknown option 'hiden_size'; did you mean hidden_size?"),
        ({"id_column": "store"}, "id_column is set by the API: use id_col= instead"),
        ({"seq_length": 0}, "seq_length must be > 0, got 0"),  # the API's argument, not the flag
        ({"seq_length": "12"}, "seq_length must be a whole number, got '12'"),
        ({"quantiles": 0.5}, "quantiles must be a list of numbers, got 0.5"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number, got nan"),
        ({"noise_std": float("inf")}, "noise_std must be a finite number, got inf"),
        ({"season": 30, "seq_length": 12}, "season 30 is longer than the window (seq_length 12)"),
    ],
)
def test_a_bad_option_is_one_line_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError) as err:
        Forecaster(**options)
    assert str(err.value).startswith(message)


def test_bad_frames_and_calls_are_one_line(tmp_path: Path) -> None:
    model = Forecaster(output_dir=str(tmp_path / "run"))
    with pytest.raises(UserError, match=r"^df must be a pandas DataFrame in long format, got dict$"):
        model.fit({"y": [1.0]})
    with pytest.raises(UserError, match=r"^df has no column 'unique_id' \(id_col\); its columns are: store, t, sales$"):
        model.fit(frame())
    with pytest.raises(UserError, match=r"^nothing to forecast with yet: call fit\(df\) first"):
        model.predict(h=3)
    with pytest.raises(UserError, match=r"^nothing to save yet"):
        model.save(tmp_path / "saved")
    with pytest.raises(UserError, match=r"^model file .*config.json is missing"):
        Forecaster.load(tmp_path / "nowhere")
    assert not (tmp_path / "run").exists() and not (tmp_path / "saved").exists()


def test_covariates_through_the_api(tmp_path: Path) -> None:
    """Future, static and calendar covariates: fit, predict with future_df, save, load, the same forecast."""
    rng = np.random.default_rng(2)
    days = pd.date_range("2024-01-01", periods=130, freq="D")
    df = pd.concat(
        [
            pd.DataFrame({"unique_id": s, "ds": days, "price": rng.normal(size=130), "size": float(k)}).assign(
                y=lambda f, k=k: 10.0 * (k + 1) - 2 * f["price"]
            )
            for k, s in enumerate("ab")
        ]
    )
    history, ahead = df[df["ds"] < days[120]], df[(df["ds"] >= days[120]) & (df["ds"] < days[122])]
    model = Forecaster(
        seq_length=10, horizon=2, hidden_size=8, num_train_epochs=2, total_batch_size=64,
        future_covariates=["price"], static_covariates="size", calendar_features=["dayofweek"],
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    model.fit(history)
    future = ahead[["unique_id", "ds", "price"]]
    forecast = model.predict(future_df=future)
    assert list(forecast["ds"][:2]) == list(days[120:122]) and len(forecast) == 4
    assert np.isfinite(forecast["forecast"]).all()
    # The covariates move the forecast: another price gives another forecast.
    moved = model.predict(future_df=future.assign(price=future["price"] + 3))
    assert not np.allclose(moved["forecast"], forecast["forecast"])
    model.save(tmp_path / "saved")
    loaded = Forecaster.load(tmp_path / "saved")
    pd.testing.assert_frame_equal(loaded.predict(df=history, future_df=future), forecast)
    with pytest.raises(UserError, match=r"^this model was trained with future covariates \(price, dayofweek\)"):
        model.predict()
    with pytest.raises(
        UserError, match=r"^future_df: the future covariates cover fewer steps than the model's horizon"
    ):
        model.predict(future_df=future.iloc[:3])
    with pytest.raises(UserError, match=r"^df has no column 'price' \(a covariate\)"):
        model.predict(df=history.drop(columns="price"), future_df=future)
