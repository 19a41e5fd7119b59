"""A write that runs out of room: one line, exit code 2, nothing lost, and the run resumes from the checkpoint before.

Real failures, no mocks: a small tmpfs mounted for the test and filled up (needs root and a
kernel that lets it mount; skipped with the reason otherwise), and the file size limit
(RLIMIT_FSIZE, `ulimit -f`) set in the child, which makes its writes fail with EFBIG part-way.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, child_env, output, results

from lstm_trainer.cli.train import main as train_main
from lstm_trainer.config import ForecasterConfig
from lstm_trainer.files import free_bytes, tree_size
from lstm_trainer.model.forecaster import LSTMForecaster
from lstm_trainer.train import checkpoint

ONE_EPOCH = [*TINY, "--num_train_epochs", "1", "--report_to", "none"]
THREE_EPOCHS = [*TINY, "--num_train_epochs", "3", "--report_to", "none", "--resume_from_checkpoint", "latest"]


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 4 MiB tmpfs of its own: filling it fills no one else's disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"mount refused here ({done.stderr.strip() or done.returncode})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(file: Path) -> None:
    """Write `file` until its file system has not one block left."""
    handle = os.open(file, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError, match="No space left"):  # noqa: PT012 (fill until the write fails)
            while True:
                os.write(handle, b"\0" * 4096)
    finally:
        os.close(handle)


def sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


def error_line(code: int, stderr: str) -> str:
    """The run's one `error:` line, checked to be the only one and the last, with no traceback."""
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == errors[0] and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def train(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """train.py's main in this process (seconds, not a fresh interpreter's ten): exit code, stdout, stderr."""
    os.environ.setdefault("WANDB_MODE", "offline")
    code = train_main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def intact(out: Path, best_hash: str | None = None) -> None:
    """The checkpoint before the failure is `latest` and verifies, nothing half-written is left,
    best/ loads (and is byte for byte the one before where `best_hash` is given)."""
    root = out / "checkpoints"
    assert (root / "latest").read_text().strip() == "step-0000016"
    checkpoint.verify(root / "step-0000016")
    assert not list(root.glob(".tmp-*")) and not list(out.glob(".best.*")), sorted(p.name for p in out.rglob("*"))
    if best_hash is not None:
        assert sha256(out / "best" / "model.safetensors") == best_hash
    LSTMForecaster.from_pretrained(out / "best")


def test_full_disk_during_a_checkpoint_loses_nothing_and_resumes(
    small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_fs / "run"
    assert train([*ONE_EPOCH, "--output_dir", str(out)], capsys)[0] == 0
    # Leave room for a new best model beside the old one, not for a checkpoint: the next one fails part-way.
    room = 2 * tree_size(out / "best") + tree_size(out / "checkpoints" / "step-0000016") // 2
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (free_bytes(small_fs) - room))

    code, _, err = train([*THREE_EPOCHS, "--output_dir", str(out)], capsys)
    line = error_line(code, err)
    assert "error: checkpoint step-0000032 could not be written to" in line, line
    assert "no space left on the device (about " in line and " needed, " in line, line
    assert "nothing was lost: the previous checkpoint step-0000016 and best/ are intact" in line
    assert line.endswith("free some space, then resume with --resume_from_checkpoint latest"), line
    intact(out)  # epoch 2's best model went in whole, before its checkpoint failed

    filler.unlink()
    code, printed, err = train([*THREE_EPOCHS, "--output_dir", str(out)], capsys)
    assert code == 0, err[-3000:]
    assert f"resumed from {out / 'checkpoints' / 'step-0000016'}: epoch 2, step 16" in printed
    assert results(out)["epochs_completed"] == 3


def test_file_size_limit_while_saving_the_best_model_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert train([*ONE_EPOCH, "--output_dir", str(out)], capsys)[0] == 0
    best_hash = sha256(out / "best" / "model.safetensors")
    # Under the weights file's size: the next best model fails part-way, with EFBIG from the kernel.
    # In a child: the limit would hold for every file this test process writes.
    limit = (out / "best" / "model.safetensors").stat().st_size // 2

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *THREE_EPOCHS, "--output_dir", str(out)],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,
        check=False,
    )
    line = error_line(done.returncode, done.stderr)
    assert "error: best/ could not be written to" in line, output(done)
    assert "a file reached this process's file size limit" in line and "nothing was lost:" in line, line
    assert line.endswith("raise the file size limit (ulimit -f), then resume with --resume_from_checkpoint latest")
    intact(out, best_hash)


def test_full_disk_while_writing_a_forecast_keeps_the_old_one(
    small_fs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import pandas as pd

    from lstm_trainer.cli.predict import main as predict_main
    from lstm_trainer.config import ModelConfig

    model = small_fs / "model"
    LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, num_layers=1), seq_length=20)).save_pretrained(model)
    series = small_fs / "series.csv"
    pd.DataFrame({"y": np.sin(np.arange(100) / 5)}).to_csv(series, index=False)
    forecast = small_fs / "forecast.csv"
    forecast.write_text("step,forecast\n1,0.5\n")  # yesterday's
    fill(small_fs / "filler")
    code = predict_main(["--model", str(model), "--input", str(series), "--data_column", "y", "--horizon", "5000",
                         "--output", str(forecast)])  # fmt: skip
    line = error_line(code, capsys.readouterr().err)
    assert line.startswith("error: ") and "could not be written: No space left on device; nothing was lost" in line
    assert line.endswith("free some space, then run the command again"), line
    assert forecast.read_text() == "step,forecast\n1,0.5\n" and not list(small_fs.glob(".forecast*"))
