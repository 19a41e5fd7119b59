"""End-to-end: what a run shows (W&B, TensorBoard, pictures), read back with each tool's own reader."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import output, results, run_train
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lstm_trainer.outputs import plots, tracking

pytestmark = pytest.mark.e2e

SMALL = ["--num_train_samples", "1024", "--num_val_samples", "256", "--hidden_size", "16", "--num_train_epochs", "1"]


def wandb_inspect(run_dir: Path, *flags: str) -> str:
    """W&B's own reader of a run's .wandb log (`wandb leet inspect`)."""
    cli = Path(sys.executable).parent / "wandb"
    done = subprocess.run(
        [str(cli), "leet", "inspect", *flags, str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wandb_history(run_dir: Path) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in wandb_inspect(run_dir, "--json").splitlines() if line.strip()]
    return [r["history"]["item"] for r in records if r["type"] == "history"]


def run_dirs(out: Path) -> tuple[list[Path], list[Path]]:
    """Every W&B run folder and every TensorBoard run folder under `out`."""
    wandb_runs = sorted(p for p in (out / "wandb").glob("*run-*") if p.is_dir() and not p.is_symlink())
    tb_runs = sorted(p for p in (out / "tensorboard").iterdir() if p.is_dir())
    return wandb_runs, tb_runs


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_make_one_run_in_each_tracker(tiny: list[str], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*tiny, "--output_dir", str(out), "--report_to", "all", "--logging_steps", "5", "--run_name", "tiny-2p"]
    done = run_train(args, launcher=["accelerate", "launch", "--num_processes", "2"])
    assert done.returncode == 0, output(done)
    res = results(out)
    steps, epochs = res["optimizer_steps"], res["epochs_completed"]
    assert (res["world_size"], epochs) == (2, 3)

    # Exactly one run per tracker, made by the main process only.
    (wandb_run,), (tb_run,) = run_dirs(out)
    assert tb_run.name == "tiny-2p" and len(list(tb_run.glob("events.out.tfevents.*"))) == 1
    assert done.stdout.count("tracking: W&B run") == 1 and done.stdout.count("tracking: TensorBoard") == 1
    # Not a terminal: no bars, so the log holds whole lines only.
    assert "\r" not in done.stdout and "\r" not in done.stderr and "it/s" not in done.stderr

    # W&B, from the run's .wandb log.
    history = wandb_history(wandb_run)
    step_rows = [row for row in history if "train/loss" in row]
    assert [row["train/step"] for row in step_rows] == list(range(5, steps + 1, 5))
    assert all(set(tracking.STEP_KEYS) <= row.keys() for row in step_rows)
    assert [row["train/step"] for row in step_rows] == [row["_step"] for row in step_rows]
    epoch_rows = [row for row in history if "epoch/val_mse" in row]
    assert [row["epoch/epoch"] for row in epoch_rows] == [1, 2, 3]
    assert all(set(tracking.EPOCH_KEYS) <= row.keys() for row in epoch_rows)
    assert [row["epoch/val_mse"] for row in epoch_rows] == pytest.approx(res["val_mse_history"])
    assert [row["epoch/train_loss"] for row in epoch_rows] == pytest.approx(res["train_loss_history"])
    assert epoch_rows[-1]["epoch/best_val_mse"] == pytest.approx(res["best_val_mse"])
    summary = json.loads(wandb_inspect(wandb_run, "--summary", "--json"))
    assert summary["state"] == "finished" and summary["name"] == "tiny-2p" and summary["project"] == "lstm-trainer"
    for key in ("best_val_mse", "val_mse_reduction_percent", "persistence_val_mse", "noise_floor", "epochs_completed"):
        assert summary["summary"][f"summary/{key}"] == pytest.approx(res[key]), key
    assert summary["summary"]["summary/quality"] == res["quality"]
    assert {f"plots/{name}" for name in plots.NAMES} <= summary["summary"].keys()
    config = summary["config"]
    assert (config["model.hidden_size"], config["train.report_to"], config["world_size"]) == (32, "all", 2)
    assert config["deepspeed.zero_optimization.stage"] == 2

    # TensorBoard, with its own reader: the same numbers.
    board = EventAccumulator(str(tb_run), size_guidance={"scalars": 0, "images": 0}).Reload()
    scalars = {tag: board.Scalars(tag) for tag in board.Tags()["scalars"]}
    assert set(tracking.STEP_KEYS) | set(tracking.EPOCH_KEYS) <= scalars.keys()
    assert [s.step for s in scalars["train/loss"]] == list(range(5, steps + 1, 5))
    assert [s.value for s in scalars["train/loss"]] == pytest.approx([row["train/loss"] for row in step_rows])
    assert [s.value for s in scalars["epoch/val_mse"]] == pytest.approx(res["val_mse_history"])
    assert scalars["summary/best_val_mse"][0].value == pytest.approx(res["best_val_mse"])
    assert scalars["summary/epochs_completed"][0].value == epochs
    for name in plots.NAMES:
        (image,) = board.Images(f"plots/{name}")
        assert (image.width, image.height) == plots.PIXELS

    # The pictures beside the results.
    for name in plots.NAMES:
        with Image.open(out / f"{name}.png") as png:
            assert png.format == "PNG" and png.size == (800, 450)


def test_unreachable_wandb_goes_offline_in_one_line_and_keeps_the_key_secret(tmp_path: Path) -> None:
    out = tmp_path / "run"
    key = "0123456789abcdef0123456789abcdef01234567"  # a well-formed key no server will see
    done = run_train(
        [*SMALL, "--output_dir", str(out), "--report_to", "wandb"],
        env={
            "WANDB_MODE": "online",
            "WANDB_API_KEY": key,
            "WANDB_BASE_URL": f"http://127.0.0.1:{closed_port()}",
            # The address is dead, so init can only fail: the timeout decides how soon (whatever ends
            # wandb.init is answered by the same fallback). W&B spends another ~15 s of its own first.
            "WANDB_INIT_TIMEOUT": "3",
        },
    )
    assert done.returncode == 0, output(done)
    said = [line for line in done.stdout.splitlines() if line.startswith("tracking: W&B could not start a run")]
    assert len(said) == 1 and "logging offline" in said[0], done.stdout[-3000:]
    assert results(out)["epochs_completed"] == 1
    offline = sorted((out / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    assert [row["epoch/epoch"] for row in wandb_history(offline[0]) if "epoch/epoch" in row] == [1]
    # The key appears nowhere: not in what the run printed, not in any file it wrote.
    assert key not in done.stdout and key not in done.stderr
    leaked = [p for p in out.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaked == []
