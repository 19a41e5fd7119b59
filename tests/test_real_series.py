"""End-to-end on real public series shipped inside statsmodels' wheel (public domain, per each
dataset's COPYRIGHT): a short yearly series with a cycle, and a weekly one with a trend, a yearly
cycle and gaps. Written to CSV as a user's file would be, trained on by the real trainer in this
process (what train.py calls)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import every, results, train_in_process
from test_predict import predict

from lstm_trainer.cli.train import main as train_main
from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.evaluate import LinearAR, naive_scale, persistence, score, seasonal_naive
from lstm_trainer.model.forecaster import LSTMForecaster

datasets = pytest.importorskip("statsmodels.datasets")

# Small and short, to keep each run to seconds; the docs' figures come from default runs (bench/real_series.py).
QUICK = ["--hidden_size", "16", "--num_layers", "1"]


def sunspots_csv(folder: Path) -> Path:
    """Yearly sunspot numbers 1700-2008: 309 values, an ~11-year cycle."""
    path = folder / "sunspots.csv"
    datasets.sunspots.load_pandas().data.to_csv(path, index=False)
    return path


def co2_csv(folder: Path) -> Path:
    """Weekly CO2 at Mauna Loa 1958-2001: 2,284 values, a trend and a yearly cycle, 59 missing."""
    path = folder / "co2.csv"
    data = datasets.co2.load_pandas().data
    data.index.name = "week"
    data.reset_index().to_csv(path, index=False)
    return path


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def train(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Train in this process; what the run printed."""
    capsys.readouterr()
    train_in_process(args)
    return capsys.readouterr().out


def test_a_300_point_series_trains_at_the_default_window_and_scores_every_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = sunspots_csv(tmp_path)
    out = tmp_path / "run"
    flags = ["--dataset", str(csv_path), "--data_column", "SUNACTIVITY", "--season", "11"]
    stdout = train([*flags, *QUICK, "--num_train_epochs", "8", "--output_dir", str(out)], capsys)
    res = results(out)

    # 309 values -> 217 / 46 / 46: every validation and test value is a target, at seq_length 50.
    data = prepare_data(DataConfig(dataset=str(csv_path), data_column=["SUNACTIVITY"]), 42)
    assert [len(w) for w in data.windows.values()] == [167, 46, 46]
    test_inputs, test_targets = every(data.windows["test"])
    values = datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    assert np.allclose(test_targets, values[-46:]) and np.allclose(test_inputs[0], values[-96:-46])

    # Steps fitted to 167 windows: ten an epoch, warmup a tenth of the 80 planned, and said so.
    assert res["global_batch_size"] == 16 and res["optimizer_steps"] == 80
    assert "changed: train_batch_size: 128 -> 16 (167 training windows" in stdout
    assert "changed: scheduler.params.warmup_num_steps: 100 -> 8" in stdout
    assert "note: this run plans only 80 optimizer steps" in stdout

    # Baselines recomputed here from the same windows give the reported figures.
    train_inputs, train_targets = every(data.windows["train"])
    scale = naive_scale(data.windows["train"].covered_values())
    targets = test_targets.astype(np.float64)
    linear = LinearAR.fit(train_inputs, train_targets).predict(test_inputs)
    assert res["mase_scale"] == pytest.approx(scale)
    assert res["persistence_test_mase"] == pytest.approx(score(persistence(test_inputs), targets, scale).mase)
    assert res["seasonal_naive_test_mae"] == pytest.approx(score(seasonal_naive(test_inputs, 11), targets, scale).mae)
    assert res["linear_test_mse"] == pytest.approx(score(linear, targets, scale).mse)
    assert res["persistence_test_mse"] == pytest.approx(float(np.mean((test_inputs[:, -1] - targets) ** 2)))

    # The exported model carries its options, and reproduces the reported test MSE as a user loads it.
    model = LSTMForecaster.from_pretrained(out / "model")
    assert (model.config.model.window_norm, model.config.model.head, model.config.model.linear_skip) == (
        "window",
        "delta",
        None,
    )
    norm = Normalization.load(out / "model")
    assert norm is not None
    with torch.no_grad():
        forecast = norm.invert(model(norm.apply(torch.from_numpy(test_inputs).double()).float()).double()).numpy()
    assert res["test_mse"] == pytest.approx(float(np.mean((forecast - targets) ** 2)), rel=1e-5)
    assert res["test_mase"] < res["persistence_test_mase"], res  # learned more than next = last

    # Relative verdict, and a warning as the last line exactly when the model loses to a baseline.
    loses = res["test_mase"] > min(res["persistence_test_mase"], res["linear_test_mase"])
    assert res["quality"] == ("loses to a baseline" if loses else "beats the baselines")
    assert last_line(stdout).startswith("warning: the model loses to") == loses
    assert "Model Quality (relative):" in stdout and "seasonal naive" in stdout
    card = (out / "model" / "README.md").read_text()
    assert "| test | linear AR |" in card and "Verdict:" in card

    # The predict command forecasts the value after the series as the model does in-process.
    forecast_csv = tmp_path / "next.csv"
    done = predict(
        "--model",
        str(out / "model"),
        "--input",
        str(csv_path),
        "--data_column",
        "SUNACTIVITY",
        "--output",
        str(forecast_csv),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with torch.no_grad():
        expected = norm.invert(float(model(torch.tensor(norm.apply(values[-50:]), dtype=torch.float32)[None])[0]))
    assert float(next(csv.DictReader(forecast_csv.open()))["forecast"]) == pytest.approx(expected, rel=1e-6)


def test_a_trending_series_with_gaps_starts_from_the_naive_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    flags = ["--dataset", str(co2_csv(tmp_path)), "--data_column", "co2", "--fill_missing", "interpolate"]
    stdout = train([*flags, *QUICK, "--num_train_epochs", "2", "--output_dir", str(out)], capsys)
    res = results(out)
    # Test values lie above anything in training (the trend): a model scaled by the train split's
    # statistics alone forecast far off; one that scales each window and starts from the last value
    # does not, even after two epochs.
    assert res["test_mase"] < res["persistence_test_mase"] * 1.05, res
    assert res["linear_test_mase"] < res["persistence_test_mase"]  # the series is forecastable
    assert (res["quality"] == "loses to a baseline") == last_line(stdout).startswith("warning: the model loses")
    # A model kept that is worse than the one training started from (here the naive forecast) is said so.
    assert ("worse on validation MSE than before training" in stdout) == (res["val_mse_reduction_percent"] < 0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--season", "0"], "error: --season must be > 0, got 0"),
        (["--season", "60"], "error: --season 60 is longer than the window (--seq_length 50)"),
        (["--linear_skip", "51"], "error: --linear_skip 51 reaches past the window of --seq_length 50"),
        (["--window_norm", "revin"], "error: argument --window_norm: invalid choice: 'revin'"),
    ],
)
def test_bad_options_are_one_line_errors(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train_main([*flags, "--output_dir", str(tmp_path / "x")]) == 2  # train.py's entry point
    stderr = capsys.readouterr().err
    assert stderr.strip().splitlines() == [last_line(stderr)] and last_line(stderr).startswith(message), stderr
    assert not (tmp_path / "x").exists()
