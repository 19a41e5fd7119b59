"""The predict command on a real trained model and real files: in this process, and once as a user types it."""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, TINY, child_env, train_in_process

from lstm_trainer.cli.predict import main as predict_main
from lstm_trainer.config import DataConfig
from lstm_trainer.data import synthetic_series
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.model.forecaster import LSTMForecaster


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    train_in_process([*TINY, "--output_dir", str(out), "--num_train_epochs", "2", "--seq_length", "20"])
    return out / "model"


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def predict(*args: str) -> Done:
    """The command's own entry point in this process: what `python -m lstm_trainer.cli.predict` runs."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = predict_main(list(args))
    return Done(code, out.getvalue(), err.getvalue())


def write_series(path: Path, values: np.ndarray) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "y", "other"])
        writer.writerows((i, repr(float(v)), 7) for i, v in enumerate(values))
    return path


def test_forecast_one_and_many_steps(trained: Path, tmp_path: Path) -> None:
    config = DataConfig(num_train_samples=2048, num_val_samples=512, seq_length=20)
    # The validation part's targets: the series after the training part and one window of inputs.
    values = synthetic_series(config, 42)[2048 + 20 + 20 :][:200].astype(np.float64)
    source = write_series(tmp_path / "series.csv", values)
    out, plot = tmp_path / "one.csv", tmp_path / "f.png"
    done = predict("--model", str(trained), "--input", str(source), "--data_column", "y", "--output", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 1 and rows[0]["step"] == "1"
    # The same number straight from the model, as the trainer's data path would feed it.
    model = LSTMForecaster.from_pretrained(trained)
    norm = Normalization.load(trained) or Normalization.identity()
    assert model.seq_length == 20
    with torch.no_grad():
        x = torch.tensor(norm.apply(values[-20:]), dtype=torch.float32)[None]
        expected = norm.invert(float(model(x)[0]))
    assert float(rows[0]["forecast"]) == pytest.approx(expected, abs=1e-6)

    many = tmp_path / "many.csv"
    done = predict(
        "--model",
        str(trained),
        "--input",
        str(source),
        "--data_column",
        "y",
        "--horizon",
        "24",
        "--output",
        str(many),
        "--plot",
        str(plot),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    forecast = [float(r["forecast"]) for r in csv.DictReader(many.open())]
    assert len(forecast) == 24 and forecast[0] == pytest.approx(float(rows[0]["forecast"]), abs=1e-9)
    assert all(abs(v) < 3 for v in forecast)  # stays on the scale of the signal (|x| <= 1.8 + noise)
    from PIL import Image

    assert Image.open(plot).size == (800, 450)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.csv"], "missing.csv: no such file"),
        (["--data_column", "nope"], "'nope'"),
        (["--horizon", "0"], "--horizon must be >= 1"),
        (["--model", "nowhere"], "model file nowhere/config.json is missing"),
    ],
)
def test_bad_inputs_are_one_line_errors(trained: Path, tmp_path: Path, args: list[str], message: str) -> None:
    source = write_series(tmp_path / "s.csv", np.sin(np.arange(100) / 5))
    base = {"--model": str(trained), "--input": str(source), "--data_column": "y", "--output": str(tmp_path / "o.csv")}
    base.update(zip(args[::2], args[1::2], strict=True))
    done = predict(*[part for pair in base.items() for part in pair])
    assert done.returncode == 2, done.stderr
    assert message in done.stderr.strip().splitlines()[-1] and "Traceback" not in done.stderr
    assert not (tmp_path / "o.csv").exists()


def test_a_series_shorter_than_the_window_is_forecast_left_padded(trained: Path, tmp_path: Path) -> None:
    source = write_series(tmp_path / "short.csv", np.arange(5.0))
    output = tmp_path / "o.csv"
    done = predict("--model", str(trained), "--input", str(source), "--data_column", "y", "--output", str(output))
    assert done.returncode == 0 and "fewer than the window of 20: left-padded with its first value" in done.stderr
    # The same as forecasting the window padded by hand: 15 copies of the first value, then the series.
    padded = write_series(tmp_path / "padded.csv", np.concatenate([np.zeros(15), np.arange(5.0)]))
    by_hand = tmp_path / "p.csv"
    assert (
        predict(
            "--model", str(trained), "--input", str(padded), "--data_column", "y", "--output", str(by_hand)
        ).returncode
        == 0
    )
    assert output.read_text() == by_hand.read_text()


@pytest.mark.e2e
def test_the_command_as_a_user_types_it(trained: Path, tmp_path: Path) -> None:
    """`python -m lstm_trainer.cli.predict` in a fresh interpreter: the same forecast as in-process."""
    source = write_series(tmp_path / "series.csv", np.sin(np.arange(100) / 5))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstm_trainer.cli.predict",
            "--model",
            str(trained),
            "--input",
            str(source),
            "--data_column",
            "y",
            "--horizon",
            "3",
            "--output",
            str(tmp_path / "cmd.csv"),
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "forecast of 3 step(s) written" in done.stdout, done.stderr[-2000:]
    assert (
        predict(
            "--model",
            str(trained),
            "--input",
            str(source),
            "--data_column",
            "y",
            "--horizon",
            "3",
            "--output",
            str(tmp_path / "inproc.csv"),
        ).returncode
        == 0
    )
    assert (tmp_path / "cmd.csv").read_text() == (tmp_path / "inproc.csv").read_text()
