"""End-to-end: the real train.py under the real launchers, asserting on all_results.json."""

from pathlib import Path

import pytest
from conftest import output, results, run_train

from lstm_trainer.model.forecaster import LSTMForecaster

pytestmark = pytest.mark.e2e

REQUIRED = {
    "initial_train_loss",
    "final_train_loss",
    "best_train_loss",
    "initial_val_mse",
    "final_val_mse",
    "best_val_mse",
    "persistence_val_mse",
    "noise_floor",
    "quality",
    "epochs_completed",
    "stopped_early",
    "world_size",
    "global_batch_size",
    "gradient_accumulation_steps",
    "mixed_precision",
    "train_seconds",
}


def check_learned(out: Path) -> dict:
    res = results(out)
    assert res.keys() >= REQUIRED
    assert res["final_train_loss"] < res["initial_train_loss"]
    assert res["best_val_mse"] < res["initial_val_mse"]
    assert res["best_val_mse"] < res["persistence_val_mse"], res
    assert res["noise_floor"] == pytest.approx(0.01)
    assert res["global_batch_size"] == 128 and res["mixed_precision"] == "no"
    assert LSTMForecaster.from_pretrained(out / "best").config.model.hidden_size == 32
    check_costs(res)
    return res


def check_costs(res: dict) -> None:
    """What the benchmark reads: one figure per epoch, memory per process, the first step's time."""
    epochs = res["epochs_completed"]
    assert len(res["epoch_train_seconds"]) == len(res["epoch_cpu_seconds"]) == epochs
    elapsed = res["elapsed_seconds_history"]
    assert len(elapsed) == epochs and elapsed == sorted(elapsed) and elapsed[-1] <= res["train_seconds"]
    assert all(0 < s <= e for s, e in zip(res["epoch_train_seconds"], elapsed, strict=True))
    assert len(res["peak_rss_mib_per_process"]) == res["world_size"]
    assert all(mib > 50 for mib in res["peak_rss_mib_per_process"])
    assert res["dataset_seconds"] > 0 and res["cpu_threads_per_process"] >= 1
    assert res["first_optimizer_step_unix_time"] > 1.7e9  # a Unix time, not a duration


def test_accelerate_launch_one_process(tiny: list[str], tmp_path: Path) -> None:
    out = tmp_path / "one"
    done = run_train([*tiny, "--output_dir", str(out)], launcher=["accelerate", "launch", "--num_processes", "1"])
    assert done.returncode == 0, output(done)
    res = check_learned(out)
    assert (res["world_size"], res["gradient_accumulation_steps"], res["epochs_completed"]) == (1, 4, 3)
    assert "global batch 128 = micro batch 32 x accumulation 4 x processes 1" in done.stdout
    assert "Model Quality:" in done.stdout and "Persistence baseline" in done.stdout
    assert (out / "run_config.json").is_file()


def test_accelerate_launch_two_processes_keeps_the_global_batch(tiny: list[str], tmp_path: Path) -> None:
    out = tmp_path / "two"
    # Plain `--num_processes 2` on a CPU machine: train.py must end up with two ranks.
    # An empty extensions folder, as on a fresh machine: nothing may be compiled on the way
    # (DeepSpeed's shared-memory op took ~30 s of g++ on a first run).
    extensions = tmp_path / "torch_extensions"
    extensions.mkdir()
    done = run_train(
        [*tiny, "--output_dir", str(out)],
        launcher=["accelerate", "launch", "--num_processes", "2"],
        env={"TORCH_EXTENSIONS_DIR": str(extensions)},
    )
    assert done.returncode == 0, output(done)
    res = check_learned(out)
    assert (res["world_size"], res["gradient_accumulation_steps"]) == (2, 2)
    # Accelerate's simple launcher started one process; it handed the launch to the DeepSpeed launcher.
    assert "relaunching through its DeepSpeed launcher" in done.stderr, output(done)
    assert done.stdout.count("Training Summary:") == 1  # only the main process reports
    assert not any(extensions.iterdir()) and "built successfully" not in done.stdout + done.stderr, output(done)


def test_plain_python_runs_one_process(tiny: list[str], tmp_path: Path) -> None:
    out = tmp_path / "py"
    done = run_train([*tiny, "--output_dir", str(out), "--cell", "gru", "--num_train_epochs", "2"])
    assert done.returncode == 0, output(done)
    res = results(out)
    assert (res["world_size"], res["epochs_completed"]) == (1, 2)
    assert LSTMForecaster.from_pretrained(out / "best").config.model.cell == "gru"
