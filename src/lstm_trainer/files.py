"""Writing folders so that a reader never sees half of one, replacing only what the project wrote,
and saying so when the disk is full.

Every folder the project writes (a run's output_dir, its model/, best/, checkpoints/ and each
checkpoint, a saved Forecaster, a built dataset) holds `MARKER`, a small JSON naming what wrote
it, its kind and the top-level names the project put there. A folder without it, or holding a
name it does not list (a user's own file), is never replaced, emptied or written into.
"""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lstm_trainer.errors import UserError

NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# How libraries word them where they drop the errno: safetensors' Rust I/O error keeps only text.
NO_SPACE_WORDS = ("no space left", "disk quota", "file too large", "os error 28", "os error 122", "os error 27")
# torch.save reports a failed write as RuntimeError("... unexpected pos 576 vs 534"), no errno and
# no words (measured on a full 200 KiB tmpfs): a file system left with less than this is called full.
FULL_BELOW = 1 << 20
MARKER = ".lstm-trainer.json"
WRITTEN_BY = "lstm-trainer"
# The siblings replace_dir makes (.NAME.tmp-PID, .NAME.old-PID), which a killed process leaves behind.
LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(tmp|old)-\d+$")


class NoSpace(UserError):
    """A write stopped by a full disk or the file size limit; what stood there before is intact.

    `fact` says what failed and that nothing was lost, `room` how to make room for it, `then`
    what to run next, which a command that knows more (train.py: is there a checkpoint to
    resume from?) may replace.
    """

    def __init__(self, fact: str, room: str = "free some space") -> None:
        super().__init__(fact)
        self.fact, self.room, self.then = fact, room, "run the command again"

    def __str__(self) -> str:
        return f"{self.fact}; {self.room}, then {self.then}"


def size_text(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def free_bytes(path: Path) -> int:
    """Space this process may still write on `path`'s file system (root may use the reserve)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    stat = os.statvfs(path)
    return (stat.f_bfree if os.geteuid() == 0 else stat.f_bavail) * stat.f_frsize


def tree_size(path: Path) -> int:
    """Bytes in the files under `path` (0 where it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else 0


def out_of_space(err: BaseException, written: Path) -> str | None:
    """Why the write that raised `err` into `written` (a file or folder) ran out of room, in words;
    None where it failed for another reason. Ask before removing what was written."""
    text = str(err).lower()
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    too_large = (isinstance(err, OSError) and err.errno == errno.EFBIG) or "file too large" in text
    if limit != resource.RLIM_INFINITY:
        files = [written] if Path(written).is_file() else Path(written).rglob("*")
        too_large = too_large or any(f.is_file() and f.stat().st_size >= limit for f in files)
    if too_large:
        return f"a file reached this process's file size limit ({size_text(limit)}, ulimit -f)"
    if (isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS) or any(w in text for w in NO_SPACE_WORDS):
        return "no space left on the device"
    if isinstance(err, RuntimeError) and free_bytes(written) < FULL_BELOW:
        return "no space left on the device"
    return None


def no_space(what: str, written: Path, reason: str, needed: int | None, kept: str) -> NoSpace:
    """The one line for a write of `what` that ran out of room; call it after removing the partial copy,
    so that the free space it reports is what a retry would find."""
    need = f"about {size_text(needed)} needed, " if needed else ""
    fact = (
        f"{what} could not be written to {Path(written).parent}: {reason} ({need}{size_text(free_bytes(written))} "
        f"free); nothing was lost: {kept}"
    )
    return NoSpace(fact, "raise the file size limit (ulimit -f)" if "ulimit -f" in reason else "free some space")


def write_marker(folder: Path, kind: str, names: Iterable[str] | None = None) -> None:
    """Mark `folder` as the project's: its `kind` and the top-level `names` it wrote there (default: every
    name now in it). Written beside and renamed, so a reader finds the old marker or the new one."""
    folder = Path(folder)
    listed = sorted({p.name for p in folder.iterdir()} if names is None else set(names))
    listed = [name for name in listed if name != MARKER]
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps({"written_by": WRITTEN_BY, "kind": kind, "files": listed}, indent=1) + "\n")
    os.replace(tmp, folder / MARKER)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of `folder` where the project wrote one, else None (none, unreadable or someone else's)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    ok = isinstance(marker, dict) and marker.get("written_by") == WRITTEN_BY and isinstance(marker.get("files"), list)
    return marker if ok else None


def check_replaceable(path: Path, what: str, kind: str | None = None, before_marker: Iterable[str] = ()) -> None:
    """Refuse, in one line, a `path` the project may not replace or write into; no writes, cheap.

    Passes for a missing or empty folder, and for one whose marker lists every top-level name in
    it (and, given `kind`, says that kind). Raises `UserError` for a file, for a non-empty folder
    without the marker, and for a folder holding a name the marker does not list (the user's
    file, named). `what` is how the user named the path (`--output_dir`, `save(path)`). `before_marker`:
    names the project writes before the marker (a run's lock), its own where they stand alone.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder; give a folder path (the file was left as it is)")
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as err:
        raise UserError(f"{what} {path} cannot be read ({err.strerror}); give another folder") from None
    if not names or set(names) <= {*before_marker, f"{MARKER}.tmp"}:  # the marker's own, before its rename
        return
    marker = read_marker(path)
    if marker is None:
        raise UserError(
            f"{what} {path} holds files lstm-trainer did not write (such as {names[0]}); it replaces only "
            "folders it wrote: give a new or empty folder (nothing was changed)"
        )
    listed = {str(name) for name in marker["files"]}
    foreign = [n for n in names if n not in (MARKER, f"{MARKER}.tmp") and not _ours(n, listed)]
    if foreign:
        raise UserError(
            f"{what} {path} holds {foreign[0]}, which lstm-trainer did not write; move it out or give another "
            "folder (nothing was changed)"
        )
    if kind is not None and marker.get("kind") != kind:
        raise UserError(
            f"{what} {path} holds a {marker.get('kind')} folder lstm-trainer wrote, not a {kind} folder; "
            "give another folder (nothing was changed)"
        )


def _ours(name: str, listed: set[str]) -> bool:
    leftover = LEFTOVER.match(name)
    return name in listed or (leftover is not None and leftover["name"] in listed)


@contextmanager
def replace_dir(path: Path, kind: str = "folder") -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it takes `path`'s place, marked as `kind`.

    `path` is checked first (`check_replaceable`): a folder the project did not write, or one
    holding a user's file, is refused before anything is written. The old folder is moved aside
    before the rename and removed after it, so at every moment either the old or the new complete
    folder exists. On error the old one stays; an error for lack of space becomes one `NoSpace` line.
    """
    path = Path(path)
    check_replaceable(path, "folder", kind)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        write_marker(tmp, kind)
    except BaseException as err:
        reason = out_of_space(err, tmp) if isinstance(err, Exception) else None
        shutil.rmtree(tmp, ignore_errors=True)
        if reason is None or isinstance(err, UserError):
            raise
        kept = f"{path} is as it was" if path.exists() else f"there was no {path.name} before"
        # The previous copy's size is what this one will need, near enough.
        raise no_space(f"{path.name}/", tmp, reason, tree_size(path) or None, kept) from None
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def check_output_file(path: Path, what: str, suffixes: Iterable[str] | None = None) -> None:
    """Refuse, before any work, an output file that cannot be written: one whose folder is missing or not
    writable, a folder standing where the file goes, or a suffix outside `suffixes` (the formats written)."""
    path = Path(path)
    known = tuple(suffixes or ())
    if path.is_dir():
        example = path / ("out" + (known[0] if known else ""))
        raise UserError(f"{what} {path} is a folder; give a file name inside it, such as {example}")
    if known and path.suffix.lower() not in known:
        suffix = f"{path.suffix!r}" if path.suffix else "no suffix"
        raise UserError(f"{what} {path}: {suffix} is not a format written here; end the name in {', '.join(known)}")
    folder = path.parent
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UserError(f"{what} {path}: the folder {folder} {problem}; create it first or give another path")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{what} {path} cannot be written (permission denied); give a writable path")


def check_output_folder(path: Path, what: str, kind: str) -> None:
    """Refuse, before any work, a folder `replace_dir(path, kind)` could not write: one the project may not
    replace (`check_replaceable`), or a place under a file or a folder this process cannot write."""
    path = Path(path)
    check_replaceable(path, what, kind)
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{what} {path}: {ancestor} is a file, not a folder; give another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path} cannot be written ({ancestor}: permission denied); give a writable path")


@contextmanager
def all_or_none() -> Iterator[Callable[[Path], Path]]:
    """Write several files as one: yields `staged(path)`, a temporary sibling of `path` (same suffix) to write;
    all take their places once the block ends without error, and none does if it raises."""
    staged: list[tuple[Path, Path]] = []

    def stage(path: Path) -> Path:
        path = Path(path)
        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
        staged.append((tmp, path))
        return tmp

    try:
        yield stage
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)  # a reader never sees half a file
