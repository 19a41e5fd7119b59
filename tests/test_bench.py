"""The benchmark (bench/): one tiny end-to-end run, its refusals, and the bare loop's schedule.

No timing is asserted: only that every figure is there, positive, and that the bare loop
trains exactly what the trainer trains.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, child_env, output

sys.path.insert(0, str(ROOT / "bench"))
import bare_loop
import tables

BENCH = [sys.executable, str(ROOT / "bench" / "run.py")]
# The reference's global batch, set so that the plan does not shrink it for 512 windows: the
# benchmark compares the loops at the batch arithmetic of the full-size run.
TINY_BENCH = [
    "--num_train_samples",
    "512",
    "--num_val_samples",
    "256",
    "--hidden_size",
    "16",
    "--total_batch_size",
    "128",
]


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BENCH, *args], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)


@pytest.mark.e2e
def test_tiny_benchmark_reports_every_figure_for_the_three_loops(tmp_path: Path) -> None:
    records = tmp_path / "records"  # not docs/results: the docs' tables are rendered from there
    done = bench(
        "--epochs", "2", "--threads", "1", "--output_dir", str(tmp_path), "--results_dir", str(records), "--", *TINY_BENCH
    )  # fmt: skip
    assert done.returncode == 0, output(done)
    report = json.loads((tmp_path / "bench.json").read_text())
    # The docs' records: the same report with its envelope, and the latency beside it.
    assert json.loads((records / "speed" / "cpu.json").read_text()) == report
    assert report["bench"] == "speed" and report["machine"]["cores"] >= 1 and len(report["load_average"]) == 2
    assert json.loads((records / "latency" / "cpu.json").read_text())["latency"] == report["latency"]
    runs = report["runs"]
    assert list(runs) == ["bare", "trainer_1", "trainer_2", "side_1", "side_2"]
    for key, run in runs.items():
        for name in ("epoch_seconds_median", "windows_per_second", "epoch_cpu_seconds_median",
                     "launch_to_first_step_seconds", "dataset_seconds"):  # fmt: skip
            assert run[name] > 0, (key, name, run[name])
        assert (run["epochs"], run["timed_epochs"]) == (2, 1)
        assert run["windows_per_epoch"] == 512 // 128 * 128
        assert run["threads_per_process"] == 1 and run["precision"] == "no"
        assert len(run["peak_rss_mib_per_process"]) == run["processes"]
        assert all(mib > 50 for mib in run["peak_rss_mib_per_process"])
        # The tiny model cannot get near the noise floor in 2 epochs.
        assert run["seconds_to_target_mse"] is None and run["epochs_to_target_mse"] is None
    assert (runs["trainer_1"]["processes"], runs["trainer_2"]["processes"]) == (1, 2)
    # Like with like: same data, initialisation, batches, dropout masks, AdamW, clipping and
    # warmup, so one process trains the same weights to rounding (saving the best model after
    # epoch 1 must not shift the dropout masks of epoch 2). Two processes draw other masks.
    bare = runs["bare"]["val_mse_history"]
    assert runs["trainer_1"]["val_mse_history"] == pytest.approx(bare, rel=1e-5)
    assert runs["trainer_2"]["val_mse_history"] == pytest.approx(bare, rel=1e-2)
    # The two runs side by side are (b) twice, at once: the same numbers, other times.
    assert (
        runs["side_1"]["val_mse_history"] == runs["side_2"]["val_mse_history"] == runs["trainer_1"]["val_mse_history"]
    )
    targets = report["targets"]
    assert set(targets) == {
        "help_seconds",
        "trainer_1_over_bare",
        "trainer_2_over_trainer_1",
        "time_to_target_1_over_bare",
        "side_by_side_over_alone",
    }
    side = max(runs["side_1"]["epoch_seconds_median"], runs["side_2"]["epoch_seconds_median"])
    assert targets["side_by_side_over_alone"]["value"] == pytest.approx(
        side / runs["trainer_1"]["epoch_seconds_median"]
    )
    assert targets["help_seconds"]["value"] > 0
    assert targets["time_to_target_1_over_bare"] == {"value": None, "limit": 1.0, "met": False}
    assert report["machine"]["usable_cores"] >= 1 and report["settings"]["global_batch_size"] == 128

    table = (tmp_path / "bench.md").read_text()
    assert table in done.stdout
    assert (
        "| | (a) bare PyTorch loop | (b) trainer, 1 process | (c) trainer, 2 processes | (d) trainer, 1 process, "
        "side by side (run 1 of 2) | (e) trainer, 1 process, side by side (run 2 of 2) |"
    ) in table
    for label in ("training s / epoch (median)", "ratio to (a)", "windows / s", "launch to first optimizer step",
                  "peak RSS per process", "dataset build", "time to val MSE <= 0.0115", "`python train.py --help` < 1 s",
                  "two 1-process runs side by side"):  # fmt: skip
        assert label in table, label
    assert "not in 2 epochs" in table
    # Forecasting latency of the model (b) exported: every figure there and positive.
    latency = report["latency"]
    assert latency["one_window_ms_median"] > 0 and latency["predict_command_seconds"] > 0
    assert latency["many_series"] == 10_000 and latency["many_series_seconds"] > 0
    assert "| one window, in a running process (median) |" in table and "10,000 series" in table


def test_gpu_benchmark_refuses_without_cuda(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = bench("--device", "cuda", "--output_dir", str(tmp_path), timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --device cuda needs a CUDA GPU and none is visible here; run the CPU benchmark "
        "(python bench/run.py) on this machine, or this command on a GPU machine"
    ]
    assert not list(tmp_path.iterdir())


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    done = bench("--epochs", "0", "--output_dir", str(tmp_path), timeout=120)
    assert (done.returncode, done.stderr.strip()) == (2, "error: --epochs must be >= 1, got 0")
    done = bench("--output_dir", str(tmp_path), "--", "--num_train_epochs", "3", timeout=120)
    assert done.returncode == 2 and "use --epochs and --device" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "params",
    [
        {"warmup_min_lr": 0, "warmup_max_lr": 5e-4, "warmup_num_steps": 100},  # the reference's
        {"warmup_min_lr": 1e-5, "warmup_max_lr": 1e-3, "warmup_num_steps": 7, "warmup_type": "linear"},
        {"warmup_min_lr": 0, "warmup_max_lr": 1e-3, "warmup_num_steps": 1},
    ],
)
def test_bare_loop_warmup_is_deepspeeds_warmup_lr_step_for_step(params: dict) -> None:
    from deepspeed.runtime.lr_schedules import WarmupLR

    def rates(make) -> list[float]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=params["warmup_max_lr"])
        scheduler = make(optimizer)
        seen = []
        for _ in range(130):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return seen

    theirs = rates(lambda opt: WarmupLR(opt, **params))
    ours = rates(
        lambda opt: torch.optim.lr_scheduler.LambdaLR(
            opt, bare_loop.warmup_factor({"type": "WarmupLR", "params": params})
        )
    )
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert theirs[0] == params["warmup_min_lr"] and math.isclose(theirs[-1], params["warmup_max_lr"])


@pytest.mark.e2e
def test_scale_table_measures_every_cell(tmp_path: Path) -> None:
    scale = [sys.executable, str(ROOT / "bench" / "scale.py")]
    args = ["--points", "1e4", "--series", "1", "10", "--processes", "1", "2", "--output_dir", str(tmp_path)]
    args += ["--results_dir", str(tmp_path / "records")]
    done = subprocess.run([*scale, *args], cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, output(done)
    records = json.loads((tmp_path / "scale.json").read_text())
    assert [(r["series"], r["processes"], len(r["runs"])) for r in records] == [
        (1, 1, 1),
        (1, 2, 2),
        (10, 1, 1),
        (10, 2, 2),
    ]
    for record in records:
        for run in record["runs"]:
            assert run["points"] == 10_000 and run["series"] == record["series"] and run["values_bytes"] == 40_000
            assert run["windows_per_second"] > 0 and 0 < run["pss_mib"] <= run["peak_rss_mib"]
    assert (tmp_path / "scale.md").read_text().count("| 1e+04 |") == 4
    record = json.loads((tmp_path / "records" / "scale" / "default.json").read_text())
    assert record["cells"] == records and record["settings"]["steps"] == 20
    assert tables.scale(record) == (tmp_path / "scale.md").read_text()  # the docs' table is the bench's
