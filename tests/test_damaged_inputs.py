"""Damaged inputs (a truncated Parquet file or Arrow folder, a CSV with binary bytes, a model whose
weights were changed): one `error:` line naming the file, exit code 2, nothing written.

Every command in this process through its own entry point, as its `python -m` runs it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lstm_trainer.cli.data import main as data_main
from lstm_trainer.cli.predict import main as predict_main
from lstm_trainer.cli.train import main as train_main
from lstm_trainer.config import ForecasterConfig, ModelConfig
from lstm_trainer.errors import UserError
from lstm_trainer.model.forecaster import LSTMForecaster

SERIES = pd.DataFrame({"close": np.cos(np.arange(400) / 5.0)})


def run(main: Callable[[list[str]], int], args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of a command's main."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue()


def one_error_line(code: int, stderr: str, message: str) -> None:
    lines = stderr.strip().splitlines()
    assert code == 2 and lines[-1].startswith("error: ") and message in lines[-1], stderr[-2000:]
    assert sum(line.startswith("error:") for line in lines) == 1 and "Traceback" not in stderr, stderr[-2000:]


def damaged(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each damaged input and the words its error must hold."""
    parquet = folder / "prices.parquet"
    SERIES.to_parquet(parquet)
    parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])  # a copy cut short
    binary = folder / "prices.csv"
    text = SERIES.to_csv(index=False).encode()
    binary.write_bytes(text[:300] + bytes(range(256)) + text[300:])  # bytes that are no text encoding's
    arrow = folder / "built"
    assert data_main(["build", "--dataset", str(binary.with_name("good.csv")), "--output_dir", str(arrow)]) == 0
    shard = next((arrow / "train").glob("*.arrow"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return {
        "parquet": (parquet, f"{parquet}: cannot be read as PARQUET (Parquet magic bytes not found in footer"),
        "csv": (binary, f"{binary}: cannot be read as CSV ("),
        "arrow": (arrow, f"{arrow}: a file of this save_to_disk folder is truncated or damaged (Expected to be able"),
    }


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    SERIES.to_csv(tmp_path / "good.csv", index=False)
    with contextlib.redirect_stdout(io.StringIO()):
        return damaged(tmp_path)


@pytest.mark.parametrize("kind", ["parquet", "csv", "arrow"])
def test_damaged_data_is_one_line_and_writes_nothing(
    kind: str, inputs: dict[str, tuple[Path, str]], tmp_path: Path
) -> None:
    source, message = inputs[kind]
    built = tmp_path / "out-data"
    one_error_line(*run(data_main, ["build", "--dataset", str(source), "--output_dir", str(built)]), message)
    assert not built.exists()
    trained = tmp_path / "out-train"
    one_error_line(*run(train_main, ["--dataset", str(source), "--output_dir", str(trained)]), message)
    assert not trained.exists()


def test_changed_weights_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, num_layers=1), seq_length=20))
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    weights = folder / "model.safetensors"
    pristine = weights.read_bytes()
    LSTMForecaster.from_pretrained(folder)  # whole, it loads
    # One number changed, the header left alone: safetensors itself would load it without a word.
    changed = bytearray(pristine)
    changed[-3] ^= 0x40
    weights.write_bytes(bytes(changed))
    with pytest.raises(UserError, match="its weights do not match the checksum saved with them"):
        LSTMForecaster.from_pretrained(folder)

    series = tmp_path / "series.csv"
    SERIES.to_csv(series, index=False)
    forecast = tmp_path / "forecast.csv"
    args = ["--model", str(folder), "--input", str(series), "--data_column", "close", "--output", str(forecast)]
    code, stderr = run(predict_main, args)
    one_error_line(code, stderr, f"model file {weights} is truncated or corrupted (its weights do not match")
    assert not forecast.exists() and not list(tmp_path.glob(".forecast*"))


def test_a_model_saved_before_checksums_still_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, num_layers=1), seq_length=20)).eval()
    model.save_pretrained(tmp_path)
    save_file(model.state_dict(), tmp_path / "model.safetensors")  # as models were written before: no metadata
    x = torch.randn(2, 20)
    assert torch.equal(LSTMForecaster.from_pretrained(tmp_path)(x), model(x))
