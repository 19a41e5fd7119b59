"""A backtest's files: backtest.json (evaluate/backtest.py's record), backtest.md and backtest.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_trainer.files import replace_dir
from lstm_trainer.outputs import plots
from lstm_trainer.outputs.render import backtest_markdown

RESULTS, TABLE, PICTURE = "backtest.json", "backtest.md", "backtest.png"
KIND = "backtest"  # the marker's kind for the folder (files.py)


def write_backtest(record: dict[str, Any], out: Path) -> None:
    """The record as JSON, its tables as Markdown and its per-step scores as a picture: the folder `out`, whole
    or not at all; an earlier backtest's folder is replaced, any other non-empty folder refused."""
    with replace_dir(out, KIND) as tmp:
        (tmp / RESULTS).write_text(json.dumps(record, indent=2) + "\n")
        (tmp / TABLE).write_text(backtest_markdown(record))
        plots.backtest_picture(record, tmp / PICTURE)
