"""Checkpoints that survive a crash: written whole or not at all, verified before use.

Layout under `output_dir/checkpoints/`:

    step-0000124/          a complete checkpoint (Accelerate's save_state: DeepSpeed's model,
                           optimizer and scheduler states, RNG states), plus our own
                           trainer_state.json, one rank-N.json per process, manifest.json
    latest                 the name of the newest complete checkpoint
    .tmp-step-0000186/     a save that was interrupted; removed at the next start

A save goes to `.tmp-NAME`, gets a manifest (size and sha256 of every file) written last,
is renamed to `NAME`, and only then does `latest` move (itself replaced atomically). A
crash at any point leaves the previous checkpoint and pointer as they were.

Our own state is JSON rather than Accelerate's `register_for_checkpointing`, whose pickle
files are loaded with `weights_only=False`. DeepSpeed's loader does unpickle its own files,
which is why a checkpoint is checked against its manifest before anything loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_trainer.errors import UserError
from lstm_trainer.files import no_space, out_of_space, read_marker, tree_size, write_marker
from lstm_trainer.outputs.output_dir import CHECKPOINTS

if TYPE_CHECKING:  # imported for types only: `resolve` runs before the heavy libraries load
    from accelerate import Accelerator

LATEST = "latest"
KIND = "checkpoints"  # the marker's kind for output_dir/checkpoints (files.py)
MANIFEST = "manifest.json"
STATE = "trainer_state.json"
NAME = re.compile(r"^step-(\d+)$")


def checkpoint_name(global_step: int) -> str:
    return f"step-{global_step:07d}"


def save(
    accelerator: Accelerator,
    engine: Any,
    output_dir: Path,
    global_step: int,
    shared: dict[str, Any],
    per_rank: dict[str, Any],
    keep: int,
    protect: str | None,
) -> str:
    """Save a checkpoint for `global_step` on every process; returns its name.

    A save that runs out of space (or into the file size limit) removes its partial copy and
    raises `NoSpace`: the previous checkpoint and `latest` are untouched until the rename.
    """
    root = Path(output_dir) / CHECKPOINTS
    name = checkpoint_name(global_step)
    tmp = root / f".tmp-{name}"
    try:
        _save(accelerator, engine, root, name, tmp, shared, per_rank, keep, protect)
    except Exception as err:
        reason = out_of_space(err, tmp) if not isinstance(err, UserError) else None
        if reason is None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        previous = _latest(root)
        # best/ is written whole or not at all (replace_dir), before the checkpoint of its epoch.
        kept = (
            f"the previous checkpoint {previous} and best/ are intact"
            if previous
            else "this was the run's first checkpoint, and best/ is intact"
        )
        # The previous checkpoint's size is what this one needs, near enough (same model, same state).
        raise no_space(
            f"checkpoint {name}", tmp, reason, tree_size(root / previous) if previous else None, kept
        ) from None
    return name


def _latest(root: Path) -> str | None:
    """The checkpoint `latest` names, where it is complete."""
    pointer = root / LATEST
    name = pointer.read_text().strip() if pointer.is_file() else ""
    return name if name and (root / name / MANIFEST).is_file() else None


def _save(
    accelerator: Accelerator,
    engine: Any,
    root: Path,
    name: str,
    tmp: Path,
    shared: dict[str, Any],
    per_rank: dict[str, Any],
    keep: int,
    protect: str | None,
) -> None:
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        # Listed before they exist, so that a save cut short leaves names the next run knows as ours.
        write_marker(root, KIND, {*(p.name for p in root.iterdir()), tmp.name, name, LATEST, f".{LATEST}.tmp"})
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    from lstm_trainer.train import reshard

    if reshard.supported(engine):  # what another process count can resume from
        reshard.save_full_state(engine, tmp, accelerator.is_main_process)
    (tmp / f"rank-{accelerator.process_index}.json").write_text(json.dumps(per_rank))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps(shared, indent=2))
        write_marker(tmp, "checkpoint", {*(p.name for p in tmp.iterdir()), MANIFEST})
        (tmp / MANIFEST).write_text(json.dumps(_manifest(tmp), indent=1))
        final = root / name
        if final.exists():  # an epoch-end save at the step of a mid-epoch one supersedes it
            shutil.rmtree(final)
        os.replace(tmp, final)
        pointer = root / f".{LATEST}.tmp"
        pointer.write_text(name + "\n")
        os.replace(pointer, root / LATEST)
        _rotate(root, keep, protect)
        write_marker(root, KIND)
    accelerator.wait_for_everyone()


def remove_interrupted(output_dir: Path) -> None:
    """Drop leftovers of saves that a crash cut short (main process only)."""
    for tmp in (Path(output_dir) / CHECKPOINTS).glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(output_dir: Path, spec: str) -> Path:
    """The checkpoint folder that `--resume_from_checkpoint spec` names, verified complete."""
    if spec == "latest":
        pointer = Path(output_dir) / CHECKPOINTS / LATEST
        if not pointer.is_file():
            raise UserError(
                f"--resume_from_checkpoint latest: no complete checkpoint under {pointer.parent}; "
                "train without --resume_from_checkpoint first, or give a checkpoint folder"
            )
        path = pointer.parent / pointer.read_text().strip()
    else:
        path = Path(spec)
    if not path.is_dir():
        raise UserError(f"--resume_from_checkpoint {spec}: {path} is not a checkpoint folder")
    verify(path)
    return path


def verify(path: Path) -> None:
    """Every file listed in the manifest is present with its size and hash."""
    manifest_file = path / MANIFEST
    try:
        manifest = json.loads(manifest_file.read_text())
    except FileNotFoundError:
        raise UserError(
            f"checkpoint {path} is incomplete ({MANIFEST} missing); resume from another checkpoint"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"checkpoint {manifest_file} is corrupted; resume from another checkpoint") from None
    for relative, expected in manifest.items():
        file = path / relative
        if not file.is_file():
            raise UserError(f"checkpoint file {file} is missing; resume from another checkpoint")
        if file.stat().st_size != expected["size"] or _sha256(file) != expected["sha256"]:
            raise UserError(f"checkpoint file {file} is truncated or corrupted; resume from another checkpoint")


def read_state(path: Path, process_index: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run-wide state and this process's own accumulators."""
    shared = json.loads((path / STATE).read_text())
    rank_file = path / f"rank-{process_index}.json"
    per_rank = json.loads(rank_file.read_text()) if rank_file.is_file() else {}
    return shared, per_rank


def read_all_ranks(path: Path) -> list[dict[str, Any]]:
    """Every process's own accumulators, in rank order."""
    files = sorted(path.glob("rank-*.json"), key=lambda f: int(f.stem.split("-")[1]))
    return [json.loads(f.read_text()) for f in files]


def _manifest(folder: Path) -> dict[str, dict[str, Any]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)} for p in files}


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _rotate(root: Path, keep: int, protect: str | None) -> None:
    """Keep the newest `keep` checkpoints, and the best one whatever its age."""
    complete = sorted((p for p in root.iterdir() if p.is_dir() and NAME.match(p.name)), key=lambda p: p.name)
    for old in complete[:-keep]:
        # Only checkpoints this project wrote: one from before markers, or the user's, stays.
        if old.name != protect and (read_marker(old) or {}).get("kind") == "checkpoint":
            shutil.rmtree(old, ignore_errors=True)
