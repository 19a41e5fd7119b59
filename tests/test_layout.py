"""The package's floors, bottom to top: each imports only the floors below it (README, Layout);
and no two modules import each other, even inside one floor (directly or round a loop).

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
    seen = set()
    for line, module in imported_modules(path, root):
        parts = module.split(".")
        if parts[0] == PACKAGE and len(parts) > 1 and (line, parts[1]) not in seen:
            seen.add((line, parts[1]))
            yield line, parts[1]


def imported_modules(path: Path, root: Path = SRC) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every import in a file, relative ones resolved; `from a import b` gives a.b."""
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
            # `from lstm_trainer import data` imports the floor named by the alias, `from
            # lstm_trainer.data import rows` the module rows where there is one (module_of decides).
            modules = [f"{module}.{alias.name}" for alias in node.names] + ([] if module == PACKAGE else [module])
        else:
            continue
        for module in modules:
            yield node.lineno, module


def module_of(dotted: str, root: Path = SRC) -> str | None:
    """The package's module a dotted import name lands in (a folder's __init__ is the folder), or None."""
    parts = dotted.split(".")
    if parts[0] != PACKAGE:
        return None
    rest = parts[1:]
    while rest and not ((root / Path(*rest)).with_suffix(".py").is_file() or (root / Path(*rest)).is_dir()):
        rest = rest[:-1]  # a name imported from a module: the module itself
    return ".".join(rest) or None


def module_loops(root: Path = SRC) -> list[list[str]]:
    """Every group of modules that import each other round a loop (each group sorted), found by
    following imports from each module and seeing which lead back to it."""
    imports: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if path == root / "__init__.py":
            continue
        parts = path.relative_to(root).with_suffix("").parts
        here = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = {module_of(m, root) for _, m in imported_modules(path, root)}
        imports.setdefault(here, set()).update(t for t in targets if t is not None and t != here)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for there in imports.get(todo.pop(), ()):
                if there not in seen:
                    seen.add(there)
                    todo.append(there)
        return seen

    reach = {module: reachable(module) for module in imports}
    loops = {
        tuple(sorted(m for m in reach[module] if module in reach[m])) for module in imports if module in reach[module]
    }
    return sorted(list(loop) for loop in loops)


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


def test_no_two_modules_import_each_other() -> None:
    # A loop hides which module is the lower one; move the shared piece down, or merge the two.
    assert module_loops() == []


def test_the_loop_check_sees_a_loop_through_a_lazy_import(tmp_path: Path) -> None:
    root = tmp_path / PACKAGE
    (root / "data").mkdir(parents=True)
    (root / "data" / "__init__.py").write_text("")
    (root / "data" / "rows.py").write_text("from lstm_trainer.data.covariates import Covariates\n")
    (root / "data" / "covariates.py").write_text("def f():\n    from lstm_trainer.data.tables import keys\n")
    (root / "data" / "tables.py").write_text("from lstm_trainer.data import rows\n")
    (root / "data" / "series.py").write_text("from lstm_trainer.data import covariates\n")  # below the loop, not in it
    assert module_loops(root) == [["data.covariates", "data.rows", "data.tables"]]


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
