"""docs/errors.md lists every refusal the package can make, by class, with its message: read from the source
(every `UserError(...)`), so the page cannot fall behind the code: a message missing from it fails the test.

    python tests/test_errors_page.py      # rewrite docs/errors.md after adding or changing a message
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "lstm_trainer"
PAGE = ROOT / "docs" / "errors.md"

# Classes of refusal by where they are raised: (title, what the user did, module paths).
CLASSES = [
    (
        "Folders the project writes",
        "An output place that cannot be written, or a folder lstm-trainer did not write (a user's files are never "
        "replaced or emptied), or a finished run written again without saying so.",
        ("files.py", "outputs/output_dir.py", "train/preflight.py", "outputs/backtest.py"),
    ),
    (
        "Flags and options",
        "A value out of range, NaN or infinity, a value of the wrong type from Python, choices that contradict each "
        "other, a batch that does not divide.",
        ("config.py", "api/options.py", "cli/common.py", "train/plan.py", "train/launch.py", "threads.py"),
    ),
    (
        "Input data",
        "A file, table, column, row or DataFrame that cannot be a series: missing, damaged, empty, non-numeric, "
        "duplicated, too short, or split so that a part is empty.",
        ("data/", "api/frames.py"),
    ),
    (
        "Checkpoints and models",
        "A checkpoint or model folder that is missing, incomplete, damaged, or from other settings.",
        ("train/checkpoint.py", "train/trainer.py", "train/loop.py", "model/", "train/reshard.py"),
    ),
    (
        "Forecasting and scoring",
        "forecast, predict, backtest and Forecaster.predict: a horizon out of range, actuals that do not match, levels "
        "a model does not give, an ensemble's own settings.",
        (
            "cli/predict.py",
            "cli/backtest.py",
            "cli/forecast.py",
            "forecast/",
            "evaluate/",
            "api/forecaster.py",
            "outputs/",
        ),
    ),
    ("The Hugging Face Hub", "A push or download that cannot work.", ("outputs/hub.py", "cli/hub.py", "cli/data.py")),
]


def _placeholder(node: ast.expr) -> str:
    """`{config.dataset}` -> `<dataset>`: the last name in the expression, as the reader would call it."""
    names = re.findall(r"[A-Za-z_][A-Za-z_0-9]*", ast.unparse(node))
    useful = [n for n in names if n not in {"self", "str", "repr", "len", "join", "name", "f", "Path", "list"}]
    return f"<{(useful or names or ['value'])[-1]}>"


def _render(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append(_placeholder(value.value))
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _render(node.left), _render(node.right)
        return None if left is None or right is None else left + right
    return None


def refusals() -> list[tuple[str, str]]:
    """(module path, message template) of every UserError raised with a message written in place."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = str(path.relative_to(SRC))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "UserError" and node.args:
                message = _render(node.args[0])
                if message is not None:
                    found.append((relative, " ".join(message.split())))
    return found


def class_of(module: str) -> str:
    """The class naming `module` itself, else the one naming its folder."""
    for title, _, where in CLASSES:
        if module in where:
            return title
    for title, _, where in CLASSES:
        if any(w.endswith("/") and module.startswith(w) for w in where):
            return title
    return CLASSES[1][0]


def page() -> str:
    by_class: dict[str, list[tuple[str, str]]] = {title: [] for title, _, _ in CLASSES}
    for module, message in refusals():
        by_class[class_of(module)].append((module, message))
    lines = [
        "# Every refusal",
        "",
        "Whatever goes wrong by a user's hand is said in one line, `error: <what is wrong>; <what to do>`, with exit "
        "code 2 and no traceback (in Python: a `lstm_trainer.errors.UserError` with the same words, naming the API's "
        "arguments rather than flags). A refused command has written nothing and changed nothing: every check comes "
        "before the first write.",
        "",
        "Folders are replaced only where lstm-trainer wrote them: each folder it writes (a run's output_dir and its "
        "`model/`, `best/`, `checkpoints/` and each checkpoint, a saved Forecaster, a built dataset, a backtest) holds "
        "a marker, `.lstm-trainer.json`, naming its kind and the files it put there. A folder without the marker, or "
        "holding a file the marker does not list, is refused, whatever the flags. A run's output_dir that holds a "
        "finished run (or one stopped after a checkpoint) is written again only with `--overwrite_output_dir` "
        "(`overwrite_output_dir=True`), which replaces its model, results and checkpoints, or "
        "`--resume_from_checkpoint`, which continues it.",
        "",
        "Below, every message the package can give, by class; `<name>` stands for a value filled in (a path, a flag's "
        "value, a column). Generated from the source by `python tests/test_errors_page.py`; "
        "`tests/test_errors_page.py` fails when this page falls behind.",
    ]
    for title, about, _ in CLASSES:
        lines += ["", f"## {title}", "", about, "", "| message | raised in |", "|---|---|"]
        for module, message in by_class[title]:
            cell = message.replace("|", "\\|").replace("`", "'")
            lines.append(f"| {cell} | `{module}` |")
    return "\n".join(lines) + "\n"


def test_the_page_lists_every_refusal() -> None:
    assert len(refusals()) > 150
    written = PAGE.read_text()
    missing = [row for row in page().splitlines() if row.startswith("| ") and row not in written]
    assert not missing, f"docs/errors.md is behind the code (run `python tests/test_errors_page.py`): {missing[:3]}"


def test_every_class_has_refusals() -> None:
    assert all(page().count(f"## {title}") == 1 for title, _, _ in CLASSES)
    for title, _, _ in CLASSES:
        section = page().split(f"## {title}")[1].split("\n## ")[0]
        assert section.count("\n| ") > 2, title


if __name__ == "__main__":
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(page())
    sys.stdout.write(f"{PAGE}: {len(refusals())} refusals\n")
