"""Covariates: past, future, static and calendar ones through data, training, predict and the backtest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import output, results, run_train, train_in_process

from lstm_trainer.cli.backtest import main as backtest_main
from lstm_trainer.cli.predict import main as predict_main
from lstm_trainer.cli.train import main as train_main
from lstm_trainer.data.covariates import CovariateNames, Covariates
from lstm_trainer.data.windows import Windows, pack

# Tiny and quick: a few hundred windows, a small model, enough epochs to learn a linear driver.
QUICK = ["--seq_length", "12", "--hidden_size", "16", "--learning_rate", "3e-3", "--num_warmup_steps", "5"]


def error_line(code: int, stderr: str) -> str:
    """The one `error:` line, the last one printed, exit code 2, no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == errors[0] and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def driven(path: Path, points: int = 400, seed: int = 0) -> Path:
    """One series driven by a future-known covariate x (y = sine + 1.5 x + small noise) beside a noise column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=points)
    y = np.sin(np.arange(points) / 5) + 1.5 * x + rng.normal(0, 0.1, points)
    days = pd.date_range("2020-01-01", periods=points, freq="D").strftime("%Y-%m-%d")
    pd.DataFrame({"day": days, "y": y, "x": x, "noise": rng.normal(size=points)}).to_csv(path, index=False)
    return path


def stores(path: Path, points: int = 150) -> Path:
    """Three series (a long table) with a past covariate, a static one and an id."""
    rng = np.random.default_rng(1)
    days = pd.date_range("2020-01-01", periods=points, freq="D").strftime("%Y-%m-%d")
    frames = [
        pd.DataFrame(
            {
                "store": s,
                "day": days,
                "sales": 10.0 * (k + 1) + rng.normal(size=points),
                "temp": rng.normal(size=points),
            }
        ).assign(size=float(k))
        for k, s in enumerate("abc")
    ]
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_windows_gather_covariates_over_the_window_and_the_horizon() -> None:
    # One series of 6 points; channel 0 past (10 x position), channel 1 future (100 x position); one static.
    values = np.arange(6, dtype=np.float32)
    dynamic = np.stack([10 * values, 100 * values], axis=1)
    w = Windows(values, np.array([3]), np.array([2]), seq_length=4, horizon=2, starts=np.array([0]))
    w = w.with_covariates(dynamic, np.array([[7.0]], np.float32), past=1)
    got = w.gather_covariates(np.array([0, 1]))  # [2, T + H, 3]
    assert got is not None and got.shape == (2, 6, 3)
    # Window 0: target at position 3; its inputs 0..2 with the first padded (position -1 -> 0).
    assert got[0, :, 0].tolist() == [0, 0, 10, 20, 0, 0]  # past: zero over the 2 steps ahead
    assert got[0, :, 1].tolist() == [0, 0, 100, 200, 300, 400]  # future: known ahead too
    assert (got[..., 2] == 7).all()  # the static on every step
    packed = pack(np.ones((2, 4), np.float32), got)
    assert packed.shape == (2, 6, 4) and packed[:, :4, 0].tolist() == [[1] * 4] * 2 and (packed[:, 4:, 0] == 0).all()
    # Without covariates the model's input is what it always was.
    assert Windows(values, np.array([4]), np.array([2]), seq_length=4).gather_covariates(np.array([0])) is None


def test_covariates_follow_their_series_when_series_are_dropped() -> None:
    names = CovariateNames(past=("a",))
    cov = Covariates(names, np.arange(10, dtype=np.float32)[:, None], np.zeros((3, 0), np.float32))
    kept = cov.select(np.array([True, False, True]), np.array([0, 3, 5, 10]))
    assert kept.dynamic[:, 0].tolist() == [0, 1, 2, 5, 6, 7, 8, 9]


def test_a_driving_covariate_is_learned_and_predict_and_backtest_use_it(tmp_path: Path) -> None:
    data = driven(tmp_path / "driven.csv")
    common = [*QUICK, "--dataset", str(data), "--data_column", "y", "--time_column", "day", "--horizon", "2"]
    train_in_process([*common, "--num_train_epochs", "25", "--window_norm", "none", "--future_covariates", "x",
                      "--output_dir", str(tmp_path / "with")])  # fmt: skip
    scores = results(tmp_path / "with")
    # x explains most of the variance (1.5^2 of 2.3): without it the linear AR cannot do better than ~2.3.
    assert scores["linear_test_mse"] > 1.5
    assert scores["test_mse"] < 0.3 * scores["linear_test_mse"], scores["test_mse"]
    model = tmp_path / "with" / "model"
    assert json.loads((model / "config.json").read_text())["covariates"] == {"past": 0, "future": 1, "static": 0}
    recorded = json.loads((model / "normalization.json").read_text())["covariates"]
    assert recorded["names"]["future"] == ["x"] and set(recorded["dynamic"]) == {"x"}

    # predict: the history's covariates from --input, the next 2 from --future; the forecast follows x.
    frame = pd.read_csv(data)
    frame.iloc[:380].to_csv(tmp_path / "history.csv", index=False)
    frame.iloc[380:382][["day", "x"]].to_csv(tmp_path / "future.csv", index=False)
    out = tmp_path / "forecast.csv"
    args = ["--model", str(model), "--input", str(tmp_path / "history.csv"), "--data_column", "y"]
    args += ["--time_column", "day", "--future", str(tmp_path / "future.csv"), "--horizon", "2", "--output", str(out)]
    assert predict_main(args) == 0
    forecast = pd.read_csv(out)["forecast"].to_numpy()
    actual = frame["y"].to_numpy()[380:382]
    assert np.abs(forecast - actual).max() < 1.0, (forecast, actual)  # x alone moves y by 1.5 per unit

    # The backtest reads the model's own covariates and scaling, and scores the run's test windows the same.
    bt = tmp_path / "bt"
    dataset = ["--dataset", str(data), "--data_column", "y", "--time_column", "day"]
    assert backtest_main(["--model", str(model), *dataset, "--output_dir", str(bt)]) == 0
    backtest = json.loads((bt / "backtest.json").read_text())
    assert backtest["mse"] == pytest.approx(scores["test_mse"], rel=1e-6)


@pytest.mark.parametrize(
    "head",
    [
        ["--horizon", "1"],
        ["--horizon", "3", "--distribution", "normal"],
        ["--horizon", "2", "--quantiles", "0.1", "0.5", "0.9"],
    ],
    ids=["point", "normal-h3", "quantiles-h2"],
)
def test_every_head_trains_with_every_kind_of_covariate(tmp_path: Path, head: list[str]) -> None:
    data = stores(tmp_path / "stores.csv")
    train_in_process(
        [*QUICK, *head, "--dataset", str(data), "--data_column", "sales", "--id_column", "store", "--time_column",
         "day", "--past_covariates", "temp", "--static_covariates", "size", "--calendar_features", "dayofweek",
         "--num_train_epochs", "1", "--total_batch_size", "64", "--output_dir", str(tmp_path / "run")]
    )  # fmt: skip
    scores = results(tmp_path / "run")
    assert np.isfinite(scores["test_mse"])
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["covariates"] == {"past": 1, "future": 1, "static": 1}
    # predict, every series at once: past and static covariates from --input, the calendar from --future's days.
    horizon = saved["horizon"]
    future = pd.DataFrame(
        {
            "store": np.repeat(list("abc"), horizon),
            "day": list(pd.date_range("2020-05-30", periods=horizon).strftime("%Y-%m-%d")) * 3,
        }
    )
    future.to_csv(tmp_path / "future.csv", index=False)
    out = tmp_path / "forecast.csv"
    args = ["--model", str(tmp_path / "run" / "model"), "--input", str(data), "--data_column", "sales"]
    args += ["--id_column", "store", "--time_column", "day", "--future", str(tmp_path / "future.csv")]
    assert predict_main([*args, "--horizon", str(horizon), "--output", str(out)]) == 0
    forecast = pd.read_csv(out)
    assert len(forecast) == 3 * horizon and np.isfinite(forecast["forecast"]).all()
    # Each store sits at its own level (10, 20, 30): its forecast stays near it.
    means = forecast.groupby("store")["forecast"].mean()
    assert (np.abs(means.to_numpy() - [10, 20, 30]) < 5).all(), means


def test_a_run_without_covariates_saves_what_it_always_saved(tmp_path: Path) -> None:
    data = driven(tmp_path / "driven.csv", points=200)
    train_in_process([*QUICK, "--dataset", str(data), "--data_column", "y", "--num_train_epochs", "1",
                      "--total_batch_size", "64", "--output_dir", str(tmp_path / "run")])  # fmt: skip
    model = tmp_path / "run" / "model"
    assert "covariates" not in json.loads((model / "config.json").read_text())
    assert "covariates" not in json.loads((model / "normalization.json").read_text())
    assert "covariates" not in json.loads((tmp_path / "run" / "run_config.json").read_text())["data"]


def broken(path: Path, column: str, value: object, row: int = 7) -> Path:
    frame = pd.read_csv(driven(path))
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        (
            lambda p: broken(p, "x", None),
            ["--future_covariates", "x"],
            "covariate 'x' (--future_covariates) has 1 missing (empty or NaN) or infinite value, at row 8; a covariate "
            "needs a value at every step: fill it at the source",
        ),
        (
            lambda p: broken(p, "x", "high"),
            ["--past_covariates", "x"],
            "covariate 'x' (--past_covariates) holds large_string, not numbers; give a numeric column",
        ),
        (
            driven,
            ["--future_covariates", "x", "--past_covariates", "x"],
            "column 'x' is named twice (--past_covariates and --future_covariates); a column is one thing: name it once",
        ),
        (
            driven,
            ["--future_covariates", "y"],
            "column 'y' is named twice (--data_column and --future_covariates); a column is one thing: name it once",
        ),
        (
            driven,
            ["--future_covariates", "price"],
            "has no column 'price' (--future_covariates); its columns are: day, y, x, noise",
        ),
        (
            driven,
            ["--static_covariates", "x"],
            "--static_covariates hold one value per series: give --id_column naming the series of a long table",
        ),
        (driven, ["--calendar_features", "weekday"], "argument --calendar_features: invalid choice: 'weekday'"),
    ],
    ids=[
        "gap",
        "not-numeric",
        "named-twice",
        "named-as-target",
        "missing-column",
        "static-without-id",
        "calendar-name",
    ],
)
def test_bad_covariates_are_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, flags: list[str], message: str
) -> None:
    data = make(tmp_path / "data.csv")  # type: ignore[operator]
    out = tmp_path / "out"
    code = train_main([*QUICK, "--dataset", str(data), "--data_column", "y", "--time_column", "day", *flags,
                       "--output_dir", str(out)])  # fmt: skip
    assert message in error_line(code, capsys.readouterr().err)
    assert not out.exists()


def test_a_static_covariate_that_changes_within_a_series_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = stores(tmp_path / "stores.csv")
    frame = pd.read_csv(data)
    frame.loc[5, "size"] = 9.0
    frame.to_csv(data, index=False)
    code = train_main([*QUICK, "--dataset", str(data), "--data_column", "sales", "--id_column", "store",
                       "--static_covariates", "size", "--output_dir", str(tmp_path / "out")])  # fmt: skip
    line = error_line(code, capsys.readouterr().err)
    assert (
        "static covariate 'size' changes within series number 1; a static covariate holds one value per series" in line
    )
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def future_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("future_model")
    data = driven(tmp / "driven.csv", points=200)
    train_in_process([*QUICK, "--dataset", str(data), "--data_column", "y", "--time_column", "day", "--horizon", "3",
                      "--future_covariates", "x", "--num_train_epochs", "1", "--total_batch_size", "64",
                      "--output_dir", str(tmp / "run")])  # fmt: skip
    frame = pd.read_csv(data)
    frame.iloc[:150].to_csv(tmp / "history.csv", index=False)
    frame.iloc[150:153][["day", "x"]].to_csv(tmp / "future.csv", index=False)
    frame.iloc[150:152][["day", "x"]].to_csv(tmp / "short.csv", index=False)
    frame.iloc[150:153][["day", "noise"]].to_csv(tmp / "other.csv", index=False)
    frame.iloc[148:151][["day", "x"]].to_csv(tmp / "inside.csv", index=False)  # starts two steps before the end
    frame.iloc[[150, 150, 151, 152]][["day", "x"]].to_csv(tmp / "twice.csv", index=False)  # the first day twice
    return tmp


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            [],
            "this model was trained with future covariates (x): give their values over the 3 steps after each "
            "series' end: predict --future FILE",
        ),
        (
            ["--future", "{d}/short.csv"],
            "short.csv: the future covariates cover fewer steps than the model's horizon "
            "of 3: it has 2 rows; give 3 rows after each series' end with x",
        ),
        (["--future", "{d}/other.csv"], "other.csv has no column 'x' (--future_covariates)"),
        (
            ["--future", "{d}/inside.csv"],
            "'s future rows start at 2020-05-28, not after its history's last time 2020-05-29",
        ),
        (["--future", "{d}/twice.csv"], "has two future rows at 2020-05-30; give one row per step"),
        (
            ["--future", "{d}/future.csv", "--horizon", "4"],
            "this model was trained with covariates, so it forecasts 3 step(s) from the covariates given with them; "
            "ask for at most 3, or train with --horizon 4",
        ),
    ],
    ids=[
        "no-future",
        "short-future",
        "future-without-the-column",
        "inside-the-history",
        "a-step-twice",
        "beyond-the-horizon",
    ],
)
def test_predict_without_the_future_it_needs_is_one_line(
    future_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "forecast.csv"
    args = ["--model", str(future_model / "run" / "model"), "--input", str(future_model / "history.csv")]
    args += ["--data_column", "y", "--time_column", "day", "--horizon", "3", "--output", str(out)]
    code = predict_main([*args, *[a.format(d=future_model) for a in extra]])
    assert message in error_line(code, capsys.readouterr().err)
    assert not out.exists()


def test_the_hub_layouts_feat_dynamic_real_trains_as_future_covariates(tmp_path: Path) -> None:
    from datasets import Dataset

    from lstm_trainer.config import DataConfig
    from lstm_trainer.data import prepare_data
    from lstm_trainer.errors import UserError

    rng = np.random.default_rng(3)
    drivers = [rng.normal(size=(2, n)) for n in (120, 100)]
    Dataset.from_dict(
        {
            "item_id": ["a", "b"],
            "start": [pd.Timestamp("2020-01-01")] * 2,
            "target": [list(np.sin(np.arange(d.shape[1]) / 4) + 2 * d[1]) for d in drivers],
            "feat_dynamic_real": [d.tolist() for d in drivers],
        }
    ).save_to_disk(str(tmp_path / "rows"))
    config = DataConfig(
        dataset=str(tmp_path / "rows"), seq_length=10, horizon=2, future_covariates=["feat_dynamic_real"]
    )
    data = prepare_data(config, 0)
    assert data.covariate_counts == (0, 2, 0)
    assert data.rows.covariates is not None
    assert data.rows.covariates.names.future == ("feat_dynamic_real_0", "feat_dynamic_real_1")
    # Series b's second channel, point 5, lies beside its target's point 5.
    assert data.rows.covariates.dynamic[120 + 5, 1] == pytest.approx(drivers[1][1, 5], rel=1e-6)
    one = prepare_data(
        DataConfig(dataset=str(tmp_path / "rows"), seq_length=10, future_covariates=["feat_dynamic_real_1"]), 0
    )
    assert one.covariate_counts == (0, 1, 0)
    with pytest.raises(UserError, match=r"is not feat_dynamic_real or one of its 2 channels"):
        prepare_data(DataConfig(dataset=str(tmp_path / "rows"), seq_length=10, future_covariates=["price"]), 0)
    with pytest.raises(UserError, match=r"past, static and calendar covariates need a table"):
        prepare_data(
            DataConfig(dataset=str(tmp_path / "rows"), seq_length=10, past_covariates=["feat_dynamic_real"]), 0
        )


@pytest.mark.e2e
def test_two_processes_train_with_future_covariates_as_one_does(tmp_path: Path) -> None:
    """`accelerate launch --num_processes 2 train.py ... --future_covariates x`: the same global batch and
    data order as one process, so (without dropout) the same scores up to the order gradients are summed."""
    data = driven(tmp_path / "driven.csv", points=300)
    args = [*QUICK, "--dataset", str(data), "--data_column", "y", "--time_column", "day", "--horizon", "2",
            "--future_covariates", "x", "--dropout", "0", "--num_train_epochs", "2", "--total_batch_size", "64"]  # fmt: skip
    one = train_in_process([*args, "--output_dir", str(tmp_path / "one")])
    two = run_train(
        [*args, "--output_dir", str(tmp_path / "two")], launcher=["accelerate", "launch", "--num_processes", "2"]
    )
    assert two.returncode == 0, output(two)
    launched = results(tmp_path / "two")
    assert launched["world_size"] == 2 and launched["gradient_accumulation_steps"] == 1
    assert launched["test_mse"] == pytest.approx(one.to_dict()["test_mse"], rel=1e-3)
    config = json.loads((tmp_path / "two" / "model" / "config.json").read_text())
    assert config["covariates"] == {"past": 0, "future": 1, "static": 0}


def test_data_build_keeps_future_covariates_as_feat_dynamic_real(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstm_trainer.cli.data import main as data_main
    from lstm_trainer.config import DataConfig
    from lstm_trainer.data import prepare_data

    data = driven(tmp_path / "driven.csv", points=200)
    source = ["--dataset", str(data), "--data_column", "y", "--time_column", "day"]
    assert data_main(["build", *source, "--future_covariates", "x", "--output_dir", str(tmp_path / "rows")]) == 0
    built = prepare_data(
        DataConfig(dataset=str(tmp_path / "rows"), seq_length=12, future_covariates=["feat_dynamic_real"]), 0
    )
    assert built.rows.covariates is not None
    assert built.rows.covariates.dynamic[:, 0] == pytest.approx(pd.read_csv(data)["x"].to_numpy(), rel=1e-6)
    # Past covariates have no place in the layout: one line, exit 2, nothing written.
    code = data_main(["build", *source, "--past_covariates", "x", "--output_dir", str(tmp_path / "past")])
    assert "series rows keep future-known covariates only" in error_line(code, capsys.readouterr().err)
    assert not (tmp_path / "past").exists()
