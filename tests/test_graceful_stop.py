"""A graceful stop: SIGTERM (or Ctrl-C) mid-epoch checkpoints the step in progress, says so in one
line, exits 128 + the signal; the resume reproduces the uninterrupted run step for step."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
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


def signal_after_step(
    command: list[str], step: int, group: bool = True, **popen: object
) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Start `command`, send SIGTERM once it has logged optimizer step `step`: to its process group,
    or (`group=False`) to its first process alone, as Kubernetes and `docker stop` do.

    Also returns the run's processes (those naming its --output_dir) still running at the moment
    the first process exited: a container's runtime kills those.
    """
    out = command[command.index("--output_dir") + 1]
    with tempfile.TemporaryFile("w+") as stderr_file:  # a file, not a pipe: nothing blocks while the test waits
        proc = subprocess.Popen(
            command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=stderr_file, text=True,
            start_new_session=True, **popen,  # type: ignore[call-overload]
        )  # fmt: skip
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("step ") and int(line.split()[1]) >= step:
                sent = time.monotonic()
                # The whole group, as SLURM or Ctrl-C would: the launcher and every rank.
                (os.killpg if group else os.kill)(proc.pid, signal.SIGTERM)
                break
        else:
            proc.wait()
            stderr_file.seek(0)
            raise AssertionError(f"the run ended before step {step}:\n{''.join(lines)}{stderr_file.read()}")
        # Drain stdout beside the wait, so that a process writing to it cannot block.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            rest = pool.submit(proc.stdout.read)
            proc.wait(timeout=120)
            left = group_left(Path(out))
            stdout = rest.result(timeout=120)
        stderr_file.seek(0)
        done = subprocess.CompletedProcess(command, proc.returncode, "".join(lines) + stdout, stderr_file.read())
    assert time.monotonic() - sent < 60, "the stop took longer than a grace period"
    return done, left


def group_left(out: Path) -> list[int]:
    """Processes still running for the run writing to `out` (ranks and launchers name it on their command line)."""
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline", "status"])
        if str(out) in " ".join(proc.info["cmdline"] or []) and proc.info["status"] != psutil.STATUS_ZOMBIE
    ]


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


def accelerate_launch(*flags: str) -> list[str]:
    """`accelerate launch` beside this interpreter, on a free port, with `flags` and train.py."""
    accelerate = str(Path(sys.executable).parent / "accelerate")
    return [accelerate, "launch", "--main_process_port", str(free_port()), *flags, str(ROOT / "train.py")]


SUPERVISE = [sys.executable, "-m", "lstm_trainer.supervise"]


@pytest.mark.e2e
def test_two_processes_signalled_as_a_group_stop_at_the_same_step(tmp_path: Path) -> None:
    """The group signalled (SLURM, Ctrl-C) under a plain `accelerate launch`. The resume of such a
    checkpoint is checked below, where supervise signals the same group."""
    out = tmp_path / "stopped"
    done, _ = signal_after_step([*accelerate_launch("--num_processes", "2"), *ARGS, "--output_dir", str(out)], step=3)
    # Each rank exits 143; the outer `accelerate launch` (its simple launcher, which starts the
    # DeepSpeed one on a CPU machine) is ended by the signal itself, and torch's launcher reports
    # its ranks' exit after the line.
    _, path = stopped_at(done, out)
    # Both ranks wrote their part of the same step's checkpoint (DeepSpeed's per-rank files).
    assert len(list(Path(path).glob("rank-*.json"))) == 2


@pytest.mark.e2e
def test_sigterm_to_supervise_alone_stops_two_processes_and_the_resume_is_exact(tmp_path: Path) -> None:
    """What a container's runtime does: only its first process is signalled. On a CPU the outer
    `accelerate launch` is the simple launcher, which dies of SIGTERM at once (train/launch.py
    relaunches through the DeepSpeed one); supervise passes the signal to the group and exits
    after the ranks."""
    out = tmp_path / "stopped"
    command = [*SUPERVISE, *accelerate_launch("--num_processes", "2"), *ARGS, "--output_dir", str(out)]
    done, left = signal_after_step(command, step=3, group=False)
    assert done.returncode == 143, output(done)
    assert left == [], f"supervise exited before the run's processes {left}"
    step, path = stopped_at(done, out)
    assert step < 12, f"stopped at step {step}; the resume below needs steps after it"
    assert len(list(Path(path).glob("rank-*.json"))) == 2
    three_epochs = [*ARGS, "--num_train_epochs", "3"]
    for args, folder in (([*three_epochs, "--resume_from_checkpoint", path], out), (three_epochs, tmp_path / "s")):
        finished = subprocess.run(
            [*accelerate_launch("--num_processes", "2"), *args, "--output_dir", str(folder)],
            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert finished.returncode == 0, output(finished)
    resumed, straight = results(out), results(tmp_path / "s")
    assert [s for s, _ in resumed["logged_train_losses"]] == list(range(1, 13))
    assert [x for _, x in resumed["logged_train_losses"]] == pytest.approx(
        [x for _, x in straight["logged_train_losses"]], abs=1e-6
    )
    assert resumed["val_mse_history"] == pytest.approx(straight["val_mse_history"], abs=1e-6)


@pytest.mark.e2e
def test_sigterm_to_supervise_alone_checkpoints_a_one_process_launch_and_the_resume_is_exact(tmp_path: Path) -> None:
    """`docker stop` on `supervise accelerate launch --config_file cpu.yaml train.py`: Accelerate's
    simple launcher, the one that does not pass a signal on."""
    out = tmp_path / "stopped"
    launch = accelerate_launch("--config_file", "accelerate_configs/cpu.yaml")
    done, left = signal_after_step([*SUPERVISE, *launch, *ARGS, "--output_dir", str(out)], step=5, group=False)
    assert done.returncode == 143, output(done)
    assert left == [], f"supervise exited before the run's processes {left}"
    step, path = stopped_at(done, out)
    assert done.stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM"), output(done)  # the last word
    assert 5 <= step < 12, f"stopped at step {step}; the resume below needs steps after it"
    three_epochs = [*ARGS, "--num_train_epochs", "3"]
    resumed = train_in_process([*three_epochs, "--output_dir", str(out), "--resume_from_checkpoint", path])
    straight = train_in_process([*three_epochs, "--output_dir", str(tmp_path / "straight")])
    assert [s for s, _ in resumed.logged_train_losses] == list(range(1, 13))
    assert [loss for _, loss in resumed.logged_train_losses] == pytest.approx(
        [loss for _, loss in straight.logged_train_losses], abs=1e-6
    )
    assert resumed.val_mse_history == pytest.approx(straight.val_mse_history, abs=1e-6)
    assert resumed.train_loss_history == pytest.approx(straight.train_loss_history, abs=1e-6)


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
