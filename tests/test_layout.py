"""The package's floors, bottom to top: each imports only the floors below it (README, Layout).

Every import counts: at the top of a file, inside a function (lazy), under TYPE_CHECKING, and
relative ones. A floor is a top-level module (errors.py, files.py, config.py) or a folder.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lstm_trainer"
PACKAGE = "lstm_trainer"

# Bottom to top. supervise, a container's first process, imports nothing of the package.
# train/ sits above outputs/: the trainer drives the outputs (report, trackers, export, Hub
# push), so the records it hands them (StepLog, EpochLog, Cost) live in outputs/.
ORDER = (
    "supervise",
    "errors",
    "files",
    "threads",
    "config",
    "data",
    "model",
    "evaluate",
    "outputs",
    "train",
    "forecast",
    "api",
    "cli",
)


def floor_of(path: Path, root: Path = SRC) -> str:
    """The floor a file of the package is on: its folder, or its own name for a top-level module."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_floors(path: Path, root: Path = SRC) -> Iterator[tuple[int, str]]:
    """(line, floor) of every import of the package in a file, wherever in the file it stands."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the file's own package
                base = [PACKAGE, *path.relative_to(root).parent.parts]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            # `from lstm_trainer import data` imports the floor named by the alias.
            modules = [f"{module}.{alias.name}" for alias in node.names] if module == PACKAGE else [module]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == PACKAGE and len(parts) > 1:
                yield node.lineno, parts[1]


def climbs(root: Path = SRC) -> list[str]:
    """Every import of a floor that is not below the importing file's own floor."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue
        here = floor_of(path, root)
        for line, there in imported_floors(path, root):
            if there != here and ORDER.index(there) > ORDER.index(here):
                found.append(f"{path.relative_to(root)}:{line} ({here}) imports {PACKAGE}.{there}, a floor above it")
    return found


def test_every_floor_is_in_the_declared_order() -> None:
    floors = {floor_of(p) for p in SRC.rglob("*.py") if p != SRC / "__init__.py"}
    assert floors == set(ORDER), sorted(floors ^ set(ORDER))


def test_no_import_climbs_the_declared_order() -> None:
    assert climbs() == []


def test_the_package_root_imports_nothing() -> None:
    # `import lstm_trainer` must stay free, so that `train.py --help` loads no floor.
    assert list(imported_floors(SRC / "__init__.py")) == []


def test_the_check_sees_every_kind_of_climb(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    for floor in ("data", "model", "cli"):
        (root / floor).mkdir(parents=True)
    (root / "data" / "top.py").write_text("from lstm_trainer.model import forecaster\n")
    (root / "data" / "lazy.py").write_text("def f():\n    import lstm_trainer.cli.train\n")
    (root / "data" / "relative.py").write_text("from ..model.heads import OutputHead\n")
    (root / "data" / "named.py").write_text("from lstm_trainer import cli\n")
    (root / "model" / "typing_only.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lstm_trainer.cli.common import run_command\n"
    )
    (root / "cli" / "down.py").write_text("from lstm_trainer.data import top\nfrom ..model import typing_only\n")
    (root / "data" / "same.py").write_text("from lstm_trainer.data import top\nfrom . import lazy\n")
    found = climbs(root)
    assert found == [
        "data/lazy.py:2 (data) imports lstm_trainer.cli, a floor above it",
        "data/named.py:1 (data) imports lstm_trainer.cli, a floor above it",
        "data/relative.py:1 (data) imports lstm_trainer.model, a floor above it",
        "data/top.py:1 (data) imports lstm_trainer.model, a floor above it",
        "model/typing_only.py:3 (model) imports lstm_trainer.cli, a floor above it",
    ]
