"""End-to-end: train.py on a user's CSV column, under two processes, with a test split."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY, every, output, persistence_mse, results, run_train

from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data, synthetic_series
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.model.forecaster import LSTMForecaster

pytestmark = pytest.mark.e2e


def mse_of_saved_model(folder: Path, windows) -> float:
    """Score windows (data units) with a saved model the way a user would: apply, predict, invert."""
    model, norm = LSTMForecaster.from_pretrained(folder), Normalization.load(folder)
    assert norm is not None
    inputs, targets = map(torch.from_numpy, every(windows))
    with torch.no_grad():
        prediction = norm.invert(model(norm.apply(inputs.double()).float()).double())
    return float(((prediction - targets.double()) ** 2).mean())


def test_csv_column_with_time_column_two_processes(tmp_path: Path) -> None:
    # The reference's signal in other units (megawatts around 500), in shuffled row order.
    series = 500 + 40 * synthetic_series(
        DataConfig(num_train_samples=2048, num_val_samples=852), seed=5
    )  # TINY's clock, 3000 steps
    hours = pd.date_range("2023-01-01", periods=3000, freq="h").strftime("%Y-%m-%dT%H:%M")
    csv = tmp_path / "grid.csv"
    pd.DataFrame({"hour": hours, "megawatts": series, "station": 7}).sample(frac=1.0, random_state=0).to_csv(
        csv, index=False
    )
    data_flags = ["--dataset", str(csv), "--data_column", "megawatts", "--time_column", "hour"]
    out = tmp_path / "run"
    done = run_train(
        [*TINY, *data_flags, "--output_dir", str(out)], launcher=["accelerate", "launch", "--num_processes", "2"]
    )
    assert done.returncode == 0, output(done)
    res = results(out)
    assert res["world_size"] == 2 and done.stdout.count("Test Summary") == 1

    # The same flags in this process give the windows the run used (3000 rows -> 2100 / 450 / 450 values):
    # every validation and test value is a target, its inputs read from the values before it.
    data = prepare_data(DataConfig(dataset=str(csv), data_column=["megawatts"], time_column="hour"), 42)
    assert [len(w) for w in data.windows.values()] == [2050, 450, 450]
    assert res["persistence_val_mse"] == persistence_mse(data.windows["validation"])
    assert res["persistence_test_mse"] == persistence_mse(data.windows["test"])
    assert res["noise_floor"] is None

    # Normalisation: the train part's statistics, saved beside both exported models.
    train_part = series[:2100].astype(np.float32).astype(np.float64)
    for folder in (out / "best", out / "model"):
        saved = Normalization.load(folder)
        assert (
            saved is not None
            and saved.mean == pytest.approx(train_part.mean())
            and saved.std == pytest.approx(train_part.std())
        )

    # Every MSE in megawatts²: rescoring with the saved model reproduces the reported numbers.
    assert res["test_mse"] == pytest.approx(mse_of_saved_model(out / "best", data.windows["test"]), rel=1e-5)
    assert res["best_val_mse"] == pytest.approx(mse_of_saved_model(out / "best", data.windows["validation"]), rel=1e-4)
    assert res["best_val_mse"] < res["persistence_val_mse"], res  # learned something, in data units
    assert res["best_val_mse"] > 1600 * 0.01  # not below the noise floor (40 MW x 0.1)^2: not normalised units
