"""supervise: a signal to it alone reaches every process of the command's group, and it exits after the last.

Real processes and real signals. The command here is a stand-in for Accelerate's simple launcher
(starts one child, installs no handler, so it dies of SIGTERM at once) and a rank that, like
train/stop.py, takes a moment to write its checkpoint after the signal and then exits 128 + N.
The whole trainer under supervise is launched in test_graceful_stop.py (e2e).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import SRC, child_env, output

from lstm_trainer.cli.main import main as verb_main
from lstm_trainer.supervise import exit_status, main

RANK = """
import os, signal, sys, time
from pathlib import Path
done = Path(sys.argv[1])
def stop(signum, frame):
    time.sleep(1.0)  # the checkpoint being written
    done.write_text(signal.Signals(signum).name)
    print(f"stopped by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)
for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, stop)
print("ready", os.getpid(), flush=True)
time.sleep(60)
"""
# SIGINT is left to Python's default (KeyboardInterrupt), as Accelerate's simple launcher leaves it.
LAUNCHER = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]]).wait()
"""


def supervised(tmp_path: Path, sig: signal.Signals) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run launcher -> rank under supervise, send `sig` to supervise's pid only once the rank is ready."""
    done = tmp_path / "done"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstm_trainer.supervise", sys.executable, "-c", LAUNCHER, RANK, str(done)],
        env=child_env(PYTHONPATH=str(SRC)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    ready, rank = proc.stdout.readline().split()
    assert ready == "ready"
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    # At supervise's exit, not once its pipes close: an orphaned rank still holds them open.
    # Its checkpoint written, or (a signal the rank does not handle) the rank gone.
    settled = done.exists() or not psutil.pid_exists(int(rank))
    stdout, stderr = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), settled


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_to_supervise_alone_reaches_the_rank_and_it_waits_for_it(tmp_path: Path, sig: signal.Signals) -> None:
    finished, settled = supervised(tmp_path, sig)
    # The launcher died of the signal; supervise waited for the rank's checkpoint all the same.
    assert settled, f"supervise exited before the rank had written its checkpoint\n{output(finished)}"
    assert (tmp_path / "done").read_text() == sig.name, output(finished)
    assert finished.returncode == 128 + sig, output(finished)
    assert f"stopped by {sig.name}" in finished.stderr, output(finished)


def test_a_hangup_ends_the_whole_command_as_at_a_terminal(tmp_path: Path) -> None:
    finished, ended = supervised(tmp_path, signal.SIGHUP)
    assert ended and not (tmp_path / "done").exists(), output(finished)
    assert finished.returncode == 128 + signal.SIGHUP, output(finished)


def test_without_a_signal_the_commands_own_status_comes_back() -> None:
    assert main([sys.executable, "-c", "import sys; sys.exit(3)"]) == 3
    assert main(["--", sys.executable, "-c", "pass"]) == 0


def test_it_is_a_verb_of_the_one_command() -> None:
    assert verb_main(["supervise", sys.executable, "-c", "import sys; sys.exit(3)"]) == 3


def test_statuses_read_as_a_shell_reports_them() -> None:
    assert exit_status(0) == 0
    assert exit_status(2) == 2
    assert exit_status(-signal.SIGTERM) == 143
    assert exit_status(-signal.SIGINT) == 130


def test_user_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("error: no command given; usage: python -m lstm_trainer.supervise ")
    assert main(["no-such-launcher-here"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no-such-launcher-here: no such command;") and err.count("\n") == 1, err
