"""One run owns its output_dir: checked and locked before anything heavy starts.

The lock is `output_dir/.lock`, held with `fcntl.flock` by the process that writes the run's
files (the main process) for the run's whole life. The kernel drops a flock when its holder
dies, however it dies (kill -9, a crash, power loss on a local disk), so a lock left by a dead
run never blocks a restart or `--resume_from_checkpoint`; the file itself is only a note of
who held it last. Imports nothing heavy: it runs before torch, Accelerate or DeepSpeed load.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from lstm_trainer.errors import UserError

LOCK = ".lock"


class RunLock:
    """The held lock on one output_dir; `release` (or process exit) frees it."""

    def __init__(self, handle: IO[str], path: Path, made_folder: bool) -> None:
        self._handle = handle
        self.path = path
        self.made_folder = made_folder

    def release(self) -> None:
        """Unlock; a folder this run made and left with nothing but the lock in it goes too,
        so a run stopped by a user error before writing leaves nothing behind."""
        if self._handle.closed:
            return
        folder = self.path.parent
        if self.made_folder and [p.name for p in folder.iterdir()] == [LOCK]:
            self.path.unlink()
            folder.rmdir()
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def check_writable(output_dir: str) -> Path:
    """The output_dir as a Path, or one line saying why a run cannot write there."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output_dir {output_dir} is a file, not a folder; pick another --output_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"--output_dir {output_dir} cannot be created ({err.strerror}); pick a writable --output_dir"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"--output_dir {output_dir} is not writable; pick a writable --output_dir")
    return path


def claim(output_dir: str) -> RunLock:
    """Lock `output_dir` for this run, or stop at once naming the run that holds it.

    Opening the lock file does not change it, so a refused run has touched nothing.
    """
    made_folder = not Path(output_dir).exists()
    path = check_writable(output_dir) / LOCK
    try:
        handle = path.open("a+")
    except OSError as err:
        raise UserError(
            f"--output_dir {output_dir} is not writable ({err.strerror}); pick a writable --output_dir"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _describe(handle.read())
        handle.close()
        raise UserError(
            f"--output_dir {output_dir} is in use by another run ({holder}); wait for it to finish, "
            "or pick another --output_dir"
        ) from None
    except OSError:
        # Some network file systems have no flock; a run there goes unguarded rather than not at all.
        return RunLock(handle, path, made_folder)
    handle.seek(0)
    handle.truncate()
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    return RunLock(handle, path, made_folder)


def _describe(text: str) -> str:
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on {record['host']}, started {record['started']}"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "holder unknown"
