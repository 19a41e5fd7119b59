"""The package's floors: data -> model -> train/evaluate -> outputs -> cli, imports pointing down only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lstm_trainer"


def imports(path: Path) -> Iterator[str]:
    """Every lstm_trainer module a file imports, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def violations(folders: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((SRC / folder).rglob("*.py")) if (SRC / folder).is_dir() else [SRC / f"{folder}.py"]:
            found += [
                f"{path.relative_to(SRC)} imports {name}"
                for name in set(imports(path))
                if any(
                    name == f"lstm_trainer.{floor}" or name.startswith(f"lstm_trainer.{floor}.") for floor in forbidden
                )
            ]
    return found


def test_nothing_below_the_command_line_imports_it() -> None:
    below = tuple(p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.name not in ("cli", "__pycache__"))
    assert "train" in below and "data" in below  # the walk sees the package
    assert violations(below, ("cli",)) == []


def test_data_and_model_import_neither_training_nor_outputs() -> None:
    assert violations(("data", "model"), ("train", "outputs", "cli")) == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def f():\n    from lstm_trainer.cli.train import main\n")
    assert "lstm_trainer.cli.train" in set(imports(wrong))
