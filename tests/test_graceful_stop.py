"""A graceful stop: SIGTERM (or Ctrl-C) mid-epoch checkpoints the step in progress, says so in one
line, exits 128 + the signal; the resume reproduces the uninterrupted run step for step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SRC, TINY, child_env, free_port, output, results, train_in_process
from test_tracking_resume import wandb_records

from lstm_trainer.train import checkpoint
from lstm_trainer.train.stop import REPEAT_SECONDS, GracefulStop

# 4 optimizer steps an epoch (the global batch named, so it is not fitted to the 512 windows),
# every step's loss logged, no early stop; 30 epochs, so the signal always lands inside the fit.
ARGS = [
    *TINY,
    "--num_train_samples",
    "512",
    "--num_val_samples",
    "256",
    "--total_batch_size",
    "128",
    "--logging_steps",
    "1",
    "--early_stopping_patience",
    "100",
    "--num_train_epochs",
    "30",
]


def signal_after_step(command: list[str], step: int, **popen: object) -> tuple[subprocess.CompletedProcess[str], int]:
    """Start `command`, send SIGTERM to its process group once it has logged optimizer step `step`."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, **popen,  # type: ignore[call-overload]
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step ") and int(line.split()[1]) >= step:
            # The whole group, as SLURM, Kubernetes or Ctrl-C would: the launcher and every rank.
            sent = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            break
    else:
        proc.wait()
        raise AssertionError(f"the run ended before step {step}:\n{''.join(lines)}{proc.stderr.read()}")
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(command, proc.returncode, "".join(lines) + stdout, stderr)
    assert time.monotonic() - sent < 60, "the stop took longer than a grace period"
    return done, step


def stopped_at(done: subprocess.CompletedProcess[str], out: Path) -> tuple[int, str]:
    """The step and checkpoint the one stop line names (printed once, by rank 0)."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("stopped by SIGTERM after optimizer step ")]
    assert len(lines) == 1, output(done)
    line = lines[0]
    step = int(line.split("optimizer step ")[1].split(";")[0])
    path = out / "checkpoints" / checkpoint.checkpoint_name(step)
    assert f"checkpoint {path}; resume with: " in line and line.endswith(f"--resume_from_checkpoint {path}"), line
    checkpoint.verify(path)  # whole, and what `latest` points to
    assert (out / "checkpoints" / "latest").read_text().strip() == path.name
    return step, str(path)


@pytest.mark.e2e
def test_sigterm_mid_epoch_checkpoints_the_step_and_the_resume_is_exact(tmp_path: Path) -> None:
    out = tmp_path / "stopped"
    tracked = ["--report_to", "wandb"]  # offline (conftest): the stop and the resume make one W&B run
    command = [sys.executable, str(ROOT / "train.py"), *ARGS, *tracked, "--output_dir", str(out)]
    done, _ = signal_after_step(command, step=5)
    assert done.returncode == 143, output(done)
    step, path = stopped_at(done, out)
    assert done.stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM"), output(done)  # the last word
    assert 5 <= step < 12, f"stopped at step {step}; the resume below needs steps after it"
    assert not (out / "all_results.json").exists()  # stopped, not finished: nothing scored or exported
    # The resume may shorten the run (--num_train_epochs is one of the flags a resume may change).
    three_epochs = [*ARGS, "--num_train_epochs", "3"]
    resumed = train_in_process([*three_epochs, *tracked, "--output_dir", str(out), "--resume_from_checkpoint", path])
    straight = train_in_process([*three_epochs, "--output_dir", str(tmp_path / "straight")])
    assert [s for s, _ in resumed.logged_train_losses] == list(range(1, 13))
    assert [loss for _, loss in resumed.logged_train_losses] == pytest.approx(
        [loss for _, loss in straight.logged_train_losses], abs=1e-6
    )
    assert resumed.val_mse_history == pytest.approx(straight.val_mse_history, abs=1e-6)
    assert resumed.train_loss_history == pytest.approx(straight.train_loss_history, abs=1e-6)
    # One W&B run: the stopped launch's folder and the resumed one's, the same id, each step once.
    ids, steps = [], []
    for run in sorted(p for p in (out / "wandb").glob("offline-run-*") if p.is_dir()):
        records = wandb_records(run)
        ids += [r["run"]["run_id"] for r in records if r["type"] == "run"]
        steps += [r["history"]["step"]["num"] for r in records if r["type"] == "history"]
    assert len(ids) == 2 and len(set(ids)) == 1, ids
    assert steps == list(range(1, 13)), steps


@pytest.mark.e2e
def test_two_processes_stop_at_the_same_step_and_resume_exactly(tmp_path: Path) -> None:
    launch = [
        str(Path(sys.executable).parent / "accelerate"), "launch", "--main_process_port", str(free_port()),
        "--num_processes", "2", str(ROOT / "train.py"),
    ]  # fmt: skip
    out = tmp_path / "stopped"
    done, _ = signal_after_step([*launch, *ARGS, "--output_dir", str(out)], step=3)
    # Each rank exits 143; the outer `accelerate launch` (its simple launcher, which starts the
    # DeepSpeed one on a CPU machine) is ended by the signal itself, and torch's launcher reports
    # its ranks' exit after the line.
    step, path = stopped_at(done, out)
    assert step < 12, f"stopped at step {step}; the resume below needs steps after it"
    # Both ranks wrote their part of the same step's checkpoint (DeepSpeed's per-rank files).
    assert len(list(Path(path).glob("rank-*.json"))) == 2
    three_epochs = [*ARGS, "--num_train_epochs", "3"]
    for args, folder in (([*three_epochs, "--resume_from_checkpoint", path], out), (three_epochs, tmp_path / "s")):
        finished = subprocess.run(
            [*launch[:3], str(free_port()), *launch[4:], *args, "--output_dir", str(folder)],
            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert finished.returncode == 0, output(finished)
    resumed, straight = results(out), results(tmp_path / "s")
    assert [s for s, _ in resumed["logged_train_losses"]] == list(range(1, 13))
    assert [x for _, x in resumed["logged_train_losses"]] == pytest.approx(
        [x for _, x in straight["logged_train_losses"]], abs=1e-6
    )
    assert resumed["val_mse_history"] == pytest.approx(straight["val_mse_history"], abs=1e-6)


def test_the_first_signal_is_a_request_and_a_later_second_one_stops_at_once() -> None:
    before = signal.getsignal(signal.SIGINT)
    with GracefulStop() as stop:
        signal.raise_signal(signal.SIGINT)  # a real signal, handled by the real handler
        assert stop.received == signal.SIGINT
        signal.raise_signal(signal.SIGTERM)  # within REPEAT_SECONDS: the launcher passing the same request on
        assert stop.received == signal.SIGINT
        time.sleep(REPEAT_SECONDS + 0.1)
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before  # put back


def test_a_second_sigterm_ends_the_process_by_the_signal() -> None:
    script = (
        "import os, signal, time\n"
        "from lstm_trainer.train.stop import GracefulStop\n"
        "with GracefulStop() as stop:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    assert stop.received == signal.SIGTERM\n"
        f"    time.sleep({REPEAT_SECONDS + 0.1})\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "print('not stopped')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=child_env(PYTHONPATH=str(SRC)), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == -signal.SIGTERM and "not stopped" not in done.stdout, output(done)
