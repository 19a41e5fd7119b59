"""One run owns its output_dir: checked and locked before anything heavy starts.

The lock is `output_dir/.lock`, held with `fcntl.flock` by the process that writes the run's
files (the main process) for the run's whole life. The kernel drops a flock when its holder
dies, however it dies (kill -9, a crash, power loss on a local disk), so a lock left by a dead
run never blocks a restart or `--resume_from_checkpoint`; the file itself is only a note of
who held it last. Imports nothing heavy: it runs before torch, Accelerate or DeepSpeed load.

A run writes nothing until every check has passed (`RunLock.start`): a run refused or failed
before then leaves no lock file, no folder it made (parents of a nested output_dir included)
and no file it staged, and an earlier run's files as they were, byte for byte.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path
from typing import IO

from lstm_trainer.errors import UserError
from lstm_trainer.files import write_marker

LOCK = ".lock"
RUN_KIND = "run"
# The folders a run replaces whole: the exported model, the best model so far, the checkpoints.
MODEL, BEST, CHECKPOINTS = "model", "best", "checkpoints"
SUBFOLDERS = {MODEL: "model", BEST: "model", CHECKPOINTS: "checkpoints"}  # their kinds (files.py's marker)
# Every top-level name a run may write into its output_dir, listed in the folder's marker from the
# first write on, so that a run stopped at any point leaves a folder the next run recognises.
# tests/test_output_dir.py checks a real run's folder against it.
RUN_FILES = (
    LOCK,
    "run_config.json",
    "all_results.json",
    "fit_data.parquet",  # the API's DataFrame
    MODEL,
    BEST,
    CHECKPOINTS,
    "tensorboard",
    "wandb",
    "loss_curves.png",
    "learning_rate.png",
    "predictions.png",
    "residuals.png",
)
# What a new run (not a resume) replaces of an earlier run there: the logs of trackers accumulate, as
# TensorBoard and W&B expect; stale checkpoints would be kept by rotation over the new run's.
REPLACED = ("run_config.json", "all_results.json", MODEL, BEST, CHECKPOINTS, *RUN_FILES[-4:])


class RunLock:
    """The held lock on one output_dir; `start` before the run's first write; `release` (or process exit) frees it."""

    def __init__(self, handle: IO[str], path: Path, made: list[Path], previous: str | None) -> None:
        self._handle = handle
        self.path = path
        self.made = made  # the folders claim created, outermost first
        self.previous = previous  # the lock file's text before this run (None: this run created it)
        self.started = False
        self._staged: list[tuple[Path, Path | None]] = []

    def stage(self, path: Path) -> None:
        """`path` (in output_dir) is written before the run's checks are done, as the API's DataFrame is: a
        release before `start` removes it and puts back what stood there."""
        backup = None
        if path.exists():
            backup = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, backup)
        self._staged.append((path, backup))

    def start(self, replace_earlier: bool) -> None:
        """Every check has passed: mark output_dir as a run's and, for a new run (`replace_earlier`), remove
        what an earlier run there wrote but the trackers' logs. Main process only."""
        folder = self.path.parent
        staged = {path.name for path, _ in self._staged}
        if replace_earlier:
            for name in REPLACED:
                if name in staged:
                    continue
                old = folder / name
                if old.is_dir() and not old.is_symlink():
                    shutil.rmtree(old)
                elif old.exists() or old.is_symlink():
                    old.unlink()
        write_marker(folder, RUN_KIND, RUN_FILES)
        for _, backup in self._staged:
            if backup is not None:
                backup.unlink(missing_ok=True)
        self._staged.clear()
        self.started = True

    def release(self) -> None:
        """Unlock. A run released before `start` wrote nothing: the files it staged, the lock file and the
        folders it made go, and a lock file an earlier run left gets its text back."""
        if self._handle.closed:
            return
        if not self.started:
            for path, backup in reversed(self._staged):
                path.unlink(missing_ok=True)
                if backup is not None:
                    os.replace(backup, path)
            if self.previous is None:
                self.path.unlink(missing_ok=True)
            else:
                self._handle.seek(0)
                self._handle.truncate()
                self._handle.write(self.previous)
                self._handle.flush()
            for folder in reversed(self.made):
                try:
                    folder.rmdir()  # only where empty: another process may have written there meanwhile
                except OSError:
                    break
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def missing_folders(path: Path) -> list[Path]:
    """The folders from the outermost missing ancestor of `path` down to `path` itself."""
    missing = []
    while not path.exists() and not path.is_symlink() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing[::-1]


def check_writable(output_dir: str) -> Path:
    """The output_dir as a Path, or one line saying why a run cannot write there."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UserError(f"--output_dir {output_dir} is a file, not a folder; pick another --output_dir")
    made = missing_folders(path)
    for ancestor in made[:-1]:
        if ancestor.is_file():
            raise UserError(f"--output_dir {output_dir}: {ancestor} is a file, not a folder; pick another --output_dir")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty(made)
        raise UserError(
            f"--output_dir {output_dir} cannot be created ({err.strerror}); pick a writable --output_dir"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"--output_dir {output_dir} is not writable; pick a writable --output_dir")
    return path


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def claim(output_dir: str) -> RunLock:
    """Lock `output_dir` for this run, or stop at once naming the run that holds it.

    Opening the lock file does not change it, so a refused run has touched nothing; a run that holds
    the lock and then stops before `RunLock.start` leaves no trace (`RunLock.release`).
    """
    made = missing_folders(Path(output_dir))
    path = check_writable(output_dir) / LOCK
    existed = path.exists()
    try:
        handle = path.open("a+")
    except OSError as err:
        _remove_empty(made)
        raise UserError(
            f"--output_dir {output_dir} is not writable ({err.strerror}); pick a writable --output_dir"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _describe(handle.read())
        handle.close()
        _remove_empty(made)
        raise UserError(
            f"--output_dir {output_dir} is in use by another run ({holder}); wait for it to finish, "
            "or pick another --output_dir"
        ) from None
    except OSError:
        # Some network file systems have no flock; a run there goes unguarded rather than not at all.
        pass
    handle.seek(0)
    previous = handle.read() if existed else None
    handle.seek(0)
    handle.truncate()
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    return RunLock(handle, path, made, previous)


def _describe(text: str) -> str:
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on {record['host']}, started {record['started']}"
    except (json.JSONDecodeError, KeyError, TypeError):
        return "holder unknown"
