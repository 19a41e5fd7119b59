"""Checkpoints: resume equality, crashes (kill -9), verification, the portable model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, TINY, child_env, output, results, run_train, train_in_process

from lstm_trainer.errors import UserError
from lstm_trainer.outputs import cost
from lstm_trainer.train import checkpoint

TIMING = {"train_seconds", *cost.KEYS}


def _flat(rows: list[Any]) -> list[Any]:
    """[[step, loss], ...] or [x, ...] as one flat list, for approx."""
    return [x for row in rows for x in (row if isinstance(row, list) else [row])]


def same_results(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a.keys() - TIMING:
        if isinstance(a[key], float):
            assert b[key] == pytest.approx(a[key], abs=1e-6), key
        elif isinstance(a[key], list):
            assert _flat(b[key]) == pytest.approx(_flat(a[key]), abs=1e-6), key
        else:
            assert a[key] == b[key], key


def all_checkpoints_load(out: Path) -> list[str]:
    root = out / "checkpoints"
    assert not list(root.glob(".tmp-*")), "an interrupted save was left behind"
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    for name in names:
        checkpoint.verify(root / name)
    assert (root / (root / "latest").read_text().strip()).is_dir()
    return names


# 4 optimizer steps an epoch (the global batch named, so it is not fitted to the 512 windows),
# 3 epochs, a checkpoint every 2 steps: mid-epoch saves at steps 2, 6, 10 and epoch-end saves
# at 4, 8, 12; every step's loss is logged.
EVERY_STEP = [
    *TINY,
    "--num_train_samples",
    "512",
    "--num_val_samples",
    "256",
    "--total_batch_size",
    "128",
    "--checkpointing_steps",
    "2",
    "--save_total_limit",
    "100",
    "--logging_steps",
    "1",
    "--early_stopping_patience",
    "100",
]
CHECKPOINTS = [f"step-{step:07d}" for step in range(2, 13, 2)]


def test_a_lone_process_runs_stage_0_and_still_logs_its_gradient_norm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One process has nothing to shard, so ds_config runs ZeRO stage 0; DeepSpeed computes the
    # norm there only to clip and drops it; the trainer sums it from the gradients (loop.GradNorm).
    train_in_process([*EVERY_STEP, "--max_train_steps", "3", "--output_dir", str(tmp_path)])
    assert results(tmp_path)["deepspeed"]["zero_stage"] == 0
    norms = [
        float(line.split("grad norm ")[1].split()[0])
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("step ")
    ]
    assert len(norms) == 3 and all(0 < norm < 10 for norm in norms), norms


def checkpoint_names(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "checkpoints").iterdir() if p.is_dir())


def test_resume_from_every_checkpoint_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    expected = train_in_process([*EVERY_STEP, "--output_dir", str(straight)])
    assert checkpoint_names(straight) == CHECKPOINTS
    assert [step for step, _ in expected.logged_train_losses] == list(range(1, 13))
    # Every checkpoint but the last (nothing follows it); from step 8 back, a whole epoch or more follows.
    for name in CHECKPOINTS[:-1]:
        resumed = train_in_process(
            [
                *EVERY_STEP,
                "--output_dir",
                str(tmp_path / name),
                "--resume_from_checkpoint",
                str(straight / "checkpoints" / name),
            ]
        )
        same_results(expected.to_dict(), resumed.to_dict())


@pytest.mark.e2e
def test_two_processes_resume_mid_epoch_and_at_an_epoch_end(tmp_path: Path) -> None:
    """Every checkpoint is resumed in-process above; what two launched ranks add (each rank's
    place in the epoch, the sharded optimizer state) shows at one mid-epoch checkpoint, two
    epochs and more before the end, and one epoch-end checkpoint, a whole epoch before it."""
    launcher = ["accelerate", "launch", "--num_processes", "2"]
    straight = tmp_path / "straight"
    done = run_train([*EVERY_STEP, "--output_dir", str(straight)], launcher=launcher)
    assert done.returncode == 0, output(done)
    assert checkpoint_names(straight) == CHECKPOINTS
    for name in ("step-0000002", "step-0000008"):
        out = tmp_path / name
        resumed = run_train(
            [*EVERY_STEP, "--output_dir", str(out), "--resume_from_checkpoint", str(straight / "checkpoints" / name)],
            launcher=launcher,
        )
        assert resumed.returncode == 0, output(resumed)
        same_results(results(straight), results(out))


@pytest.mark.e2e
def test_a_checkpoint_resumes_on_another_process_count(tmp_path: Path) -> None:
    # Without dropout nothing random is left, so a run resumed on another process count
    # reproduces the uninterrupted one up to the order in which gradients are summed.
    args = [*EVERY_STEP, "--dropout", "0"]
    launcher = ["accelerate", "launch", "--num_processes", "2"]
    two, one = tmp_path / "two", tmp_path / "one"
    done = run_train([*args, "--output_dir", str(two)], launcher=launcher)
    assert done.returncode == 0, output(done)
    one_results = train_in_process([*args, "--output_dir", str(one)]).to_dict()
    mid_epoch_2 = "step-0000006"  # 2 of epoch 2's 4 steps done; all of epoch 3 follows
    two_to_one = train_in_process(
        [
            *args,
            "--output_dir",
            str(tmp_path / "2to1"),
            "--resume_from_checkpoint",
            str(two / "checkpoints" / mid_epoch_2),
        ]
    ).to_dict()
    resumed = run_train(
        [
            *args,
            "--output_dir",
            str(tmp_path / "1to2"),
            "--resume_from_checkpoint",
            str(one / "checkpoints" / mid_epoch_2),
        ],
        launcher=launcher,
    )
    assert resumed.returncode == 0, output(resumed)
    assert "changed: processes 1 -> 2" in resumed.stdout
    one_to_two = results(tmp_path / "1to2")
    for straight, other in ((results(two), two_to_one), (one_results, one_to_two)):
        assert other["optimizer_steps"] == straight["optimizer_steps"] == 12
        assert [s for s, _ in other["logged_train_losses"]] == list(range(1, 13))
        assert [loss for _, loss in other["logged_train_losses"]] == pytest.approx(
            [loss for _, loss in straight["logged_train_losses"]], rel=1e-5
        )
        assert other["train_loss_history"] == pytest.approx(straight["train_loss_history"], rel=1e-5)
        assert other["best_val_mse"] == pytest.approx(straight["best_val_mse"], rel=0.02)


def test_max_train_steps_then_resume_latest_keeps_the_newest_checkpoints_and_the_best(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    expected = train_in_process([*TINY, "--output_dir", str(straight)])
    # 16 optimizer steps an epoch: step 40 is inside epoch 3.
    first = train_in_process(
        [*TINY, "--output_dir", str(resumed), "--max_train_steps", "40", "--checkpointing_steps", "20"]
    )
    assert first.stopped_at_max_steps and first.optimizer_steps == 40
    assert (resumed / "checkpoints" / "latest").read_text().strip() == "step-0000040"
    same_results(
        expected.to_dict(),
        train_in_process([*TINY, "--output_dir", str(resumed), "--resume_from_checkpoint", "latest"]).to_dict(),
    )
    # The last 3 checkpoints are kept, plus the best one.
    names = all_checkpoints_load(resumed)
    best = json.loads((resumed / "checkpoints" / "step-0000048" / "trainer_state.json").read_text())["best_checkpoint"]
    assert set(names) == {"step-0000032", "step-0000040", "step-0000048", best}


def kill_when(out: Path, condition, timeout: float = 240) -> subprocess.Popen:
    """Start a training run and SIGKILL its whole process group once `condition(out)` holds."""
    args = [*TINY, "--output_dir", str(out), "--checkpointing_steps", "1", "--resume_from_checkpoint", "latest"]
    if not (out / "checkpoints" / "latest").exists():
        args = args[:-2]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if condition(out):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return proc
        time.sleep(0.001)
    raise AssertionError(f"the condition never held (exit code {proc.poll()})")


@pytest.mark.e2e
def test_kill_9_during_and_between_saves_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "crash"
    root = out / "checkpoints"

    def saving(o: Path) -> bool:  # a save is under way, and an earlier one is complete
        return (root / "latest").exists() and any(root.glob(".tmp-*/*"))

    kill_when(out, saving)
    assert any(root.glob(".tmp-*")), "the kill did not land inside a save"
    before = (root / "latest").read_text()
    checkpoint.verify(root / before.strip())  # the previous checkpoint is still whole

    def between(o: Path) -> bool:  # a few steps later, outside any save
        return (root / "latest").read_text() not in (before, "") and not any(root.glob(".tmp-*"))

    kill_when(out, between)
    finish = run_train([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    assert finish.returncode == 0, output(finish)
    assert results(out)["epochs_completed"] == 3
    all_checkpoints_load(out)


def test_bad_checkpoints_are_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "bad"
    train_in_process([*TINY, "--output_dir", str(out), "--num_train_epochs", "1"])
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    states = next(latest.rglob("*model_states.pt"))
    states.write_bytes(states.read_bytes()[:100])  # truncated
    cases = [
        (["--resume_from_checkpoint", "latest"], f"checkpoint file {states} is truncated or corrupted"),
        (["--resume_from_checkpoint", str(tmp_path / "nowhere")], "is not a checkpoint folder"),
        (["--resume_from_checkpoint", "latest", "--hidden_size", "16"], "checkpoint file"),
    ]
    for args, message in cases:
        with pytest.raises(UserError) as err:
            train_in_process([*TINY, "--output_dir", str(out), *args])
        assert message in str(err.value) and "\n" not in str(err.value)
    (latest / "manifest.json").unlink()
    with pytest.raises(UserError, match=r"incomplete \(manifest.json missing\)"):
        train_in_process([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", str(latest)])
    with pytest.raises(UserError, match="no complete checkpoint"):
        train_in_process([*TINY, "--output_dir", str(tmp_path / "fresh"), "--resume_from_checkpoint", "latest"])
    assert not (tmp_path / "fresh").exists()


def test_changed_settings_stop_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "changed"
    train_in_process([*TINY, "--output_dir", str(out), "--num_train_epochs", "1"])
    with pytest.raises(UserError, match="--hidden_size 32 -> 16"):
        train_in_process([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", "latest", "--hidden_size", "16"])
    # The same flags, and an accelerate config naming a JSON with another weight decay: what
    # the run resolved is compared, not only the flags.
    other = json.loads((ROOT / "accelerate_configs" / "ds_zero2.json").read_text())
    other["optimizer"]["params"]["weight_decay"] = 0.01
    (tmp_path / "other.json").write_text(json.dumps(other))
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(tmp_path / "other.json"))
    with pytest.raises(UserError, match=r"weight_decay 1e-05 -> 0\.01"):
        train_in_process([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    monkeypatch.delenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", raising=False)
    # A value only an accelerate config (here its environment variable) sets counts as well.
    monkeypatch.setenv("ACCELERATE_GRADIENT_ACCUMULATION_STEPS", "1")
    with pytest.raises(UserError, match="gradient_accumulation_steps 4 -> 1"):
        train_in_process([*TINY, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])


def test_exported_model_loads_without_deepspeed_and_scores_the_same(tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = run_train([*TINY, "--output_dir", str(out), "--mixed_precision", "bf16", "--num_train_epochs", "1"])
    assert done.returncode == 0, output(done)
    exported = sorted(p.name for p in (out / "model").iterdir())
    # The files the model is, and the marker that says lstm-trainer wrote the folder (files.py).
    assert exported == [".lstm-trainer.json", "README.md", "config.json", "model.safetensors", "normalization.json"]
    assert "best validation MSE" in (out / "model" / "README.md").read_text()
    script = f"""
import json, sys
import numpy as np
import torch
from safetensors.torch import load_file
from lstm_trainer.model.forecaster import LSTMForecaster
from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data
model = LSTMForecaster.from_pretrained({str(out / "model")!r})
assert "deepspeed" not in sys.modules and "accelerate" not in sys.modules
weights = load_file({str(out / "model" / "model.safetensors")!r})
assert all(w.dtype == torch.float32 for w in weights.values())
# fp32 masters, not bf16 copies: some weight is not exactly representable in bf16.
assert any((w.to(torch.bfloat16).float() != w).any() for w in weights.values())
validation = prepare_data(DataConfig(num_train_samples=2048, num_val_samples=512), 42).windows["validation"]
inputs, targets = map(torch.from_numpy, validation.gather(np.arange(len(validation)), normalised=False))
with torch.no_grad():
    print(json.dumps(torch.mean((model(inputs) - targets) ** 2).item()))
"""
    fresh = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True, timeout=120)
    assert fresh.returncode == 0, output(fresh)
    fresh_mse = json.loads(fresh.stdout.strip().splitlines()[-1])
    # The run evaluated in bf16; the export is the fp32 master copy of the same weights.
    assert fresh_mse == pytest.approx(results(out)["best_val_mse"], rel=0.05)


def _without(args: list[str], *flags: str) -> list[str]:
    """`args` less each of `flags` and its value."""
    kept = list(args)
    for flag in flags:
        i = kept.index(flag)
        del kept[i : i + 2]
    return kept


# EVERY_STEP with the global batch and the warmup left to the plan, which fits them to the data:
# the global batch to the 512 windows (32: 16 optimizer steps an epoch), the warmup to the planned
# steps (10%). One checkpoint at the step limit, and one at each epoch's end.
PLANNED = [*_without(EVERY_STEP, "--num_warmup_steps", "--total_batch_size"), "--checkpointing_steps", "1000"]


def test_a_resume_may_change_the_planned_steps_and_keeps_its_schedule(tmp_path: Path) -> None:
    # The first launch plans 6 steps (warmup 1); resumed with more epochs and a larger
    # --max_train_steps (planned 20, which alone would fit a warmup of 2), the run keeps the
    # checkpoint's warmup and batch (before, it stopped: "warmup_num_steps 1 -> 2"), and so
    # matches an uninterrupted run with that warmup step for step.
    out = tmp_path / "first"
    first = train_in_process([*PLANNED, "--output_dir", str(out), "--max_train_steps", "6"])
    saved = json.loads((out / "checkpoints" / "step-0000006" / "trainer_state.json").read_text())["deepspeed"]
    assert (saved["warmup_num_steps"], saved["train_batch_size"], first.optimizer_steps) == (1, 32, 6)
    longer = ["--num_train_epochs", "6", "--max_train_steps", "20"]
    resumed = train_in_process([*PLANNED, *longer, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    straight = train_in_process([*PLANNED, *longer, "--output_dir", str(tmp_path / "s"), "--num_warmup_steps", "1"])
    assert resumed.optimizer_steps == straight.optimizer_steps == 20 and resumed.stopped_at_max_steps
    assert [s for s, _ in resumed.logged_train_losses] == list(range(1, 21))
    assert [x for _, x in resumed.logged_train_losses] == pytest.approx(
        [x for _, x in straight.logged_train_losses], abs=1e-6
    )
    assert resumed.val_mse_history == pytest.approx(straight.val_mse_history, abs=1e-6)


@pytest.mark.e2e
def test_two_processes_resume_with_a_larger_step_limit_then_on_one_with_more_epochs(tmp_path: Path) -> None:
    # The batch fitted to the data on two processes (micro 16) and the warmup fitted to the first
    # launch's 6 planned steps (1) stay when two processes resume with a larger --max_train_steps
    # and then one process resumes with 6 epochs (which alone would fit micro 32 and warmup 9;
    # before, it stopped: "train_micro_batch_size_per_gpu 16 -> 32"). Without dropout the result
    # matches an uninterrupted one-process run with that warmup, up to the order gradients are summed in.
    args = [*PLANNED, "--dropout", "0"]
    out = tmp_path / "two"
    for steps in ("6", "10"):
        resume = ["--resume_from_checkpoint", "latest"] if steps == "10" else []
        done = run_train(
            [*args, "--output_dir", str(out), "--max_train_steps", steps, *resume],
            launcher=["accelerate", "launch", "--num_processes", "2"],
        )
        assert done.returncode == 0, output(done)
        assert results(out)["optimizer_steps"] == int(steps) and results(out)["per_device_train_batch_size"] == 16
    resumed = train_in_process(
        [*args, "--output_dir", str(out), "--num_train_epochs", "6", "--resume_from_checkpoint", "latest"]
    )
    assert (resumed.plan.micro_batch_size, resumed.plan.gradient_accumulation_steps) == (16, 2)
    straight = train_in_process(
        [*args, "--output_dir", str(tmp_path / "s"), "--num_train_epochs", "6", "--num_warmup_steps", "1"]
    )
    assert resumed.optimizer_steps == straight.optimizer_steps == 96
    assert [x for _, x in resumed.logged_train_losses] == pytest.approx(
        [x for _, x in straight.logged_train_losses], rel=1e-5
    )
    assert resumed.val_mse_history == pytest.approx(straight.val_mse_history, rel=1e-5)
