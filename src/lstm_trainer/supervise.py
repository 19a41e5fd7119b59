"""A first process that passes SIGTERM and SIGINT on to a whole launch and waits for all of it.

    python -m lstm_trainer.supervise accelerate launch --config_file accelerate_configs/cpu.yaml train.py
    lstm-trainer supervise accelerate launch --num_processes 2 train.py    # the same, installed

Kubernetes and `docker stop` signal a container's first process only, and when it exits they
kill everything left. Accelerate's simple launcher (one process, and on a CPU the outer launch
that train.py relaunches for several: train/launch.py) installs no handler: SIGTERM ends it at
once while train.py goes on, orphaned, and is then killed without its stop checkpoint. Torch's
elastic launcher (Accelerate's multi-GPU and DeepSpeed launches) does pass the signal on and
waits, but only 30 s (TORCH_ELASTIC_SHUTDOWN_TIMEOUT) before SIGKILL.

This entry starts the command in its own process group, sends every SIGTERM or SIGINT it gets
to that group (what Ctrl-C at a terminal or a SLURM job step does: each rank writes the
checkpoint at the step in progress, train/stop.py; SIGHUP and SIGQUIT are passed on as well),
and exits only when no process of the group is left, with the command's exit status as a shell reports it (143 after SIGTERM, 130 after
SIGINT). It is what tini -g and dumb-init do, in the project's own interpreter: no binary to add
to an image. On Linux it is also a child subreaper, so ranks whose launcher has already exited
are re-parented to it, not to the container's init, and it reaps them itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from types import FrameType

# SIGTERM and SIGINT ask the run for its stop checkpoint; SIGHUP and SIGQUIT end it as they would
# have at a terminal (the command's own session no longer gets the terminal's signals).
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
POLL_SECONDS = 0.1  # how often the group is checked once the command itself has exited
_PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
USAGE = "python -m lstm_trainer.supervise accelerate launch [launch flags] train.py [train flags]"


def become_subreaper() -> bool:
    """Have orphaned descendants re-parented here (Linux), so that they can be reaped; True if so."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def exit_status(returncode: int) -> int:
    """A Popen return code as a shell reports it: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def group_alive(pgid: int) -> bool:
    """Whether any process (a zombie not yet reaped included) is still in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member that changed its user: still there
        return True
    return True


def reap_orphans() -> None:
    """Collect the exit status of descendants re-parented here, so they leave the process group."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def supervise(command: list[str]) -> int:
    """Run `command` in its own process group, forward FORWARDED signals to that group, wait for all of it."""
    become_subreaper()
    group: list[int] = []  # the command's process group, once it is started
    early: list[int] = []  # signals that came before it was

    def forward(signum: int, frame: FrameType | None) -> None:
        if not group:
            early.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):  # the group has already ended
            os.killpg(group[0], signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    child = subprocess.Popen(command, start_new_session=True)  # its own group: pgid == child.pid
    group.append(child.pid)
    for signum in early:
        forward(signum, None)
    # Interrupted waits are resumed after the handler ran (PEP 475).
    returncode = child.wait()
    # A launcher may exit before the processes it started (Accelerate's simple launcher dies of the
    # signal at once): wait until the last of them has finished writing.
    while group_alive(child.pid):
        reap_orphans()
        time.sleep(POLL_SECONDS)
    return exit_status(returncode)


def main(argv: list[str] | None = None) -> int:
    command = sys.argv[1:] if argv is None else argv
    if command[:1] == ["--"]:
        command = command[1:]
    if command[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    if not command:
        print(f"error: no command given; usage: {USAGE}", file=sys.stderr)
        return 2
    try:
        return supervise(command)
    except FileNotFoundError:
        print(f"error: {command[0]}: no such command; usage: {USAGE}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
