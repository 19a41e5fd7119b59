"""A backtest's files: backtest.json (evaluate/backtest.py's record), backtest.md and backtest.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lstm_trainer.outputs import plots
from lstm_trainer.outputs.render import backtest_markdown

RESULTS, TABLE, PICTURE = "backtest.json", "backtest.md", "backtest.png"


def write_backtest(record: dict[str, Any], out: Path) -> None:
    """The record as JSON, its tables as Markdown and its per-step scores as a picture, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS).write_text(json.dumps(record, indent=2) + "\n")
    (out / TABLE).write_text(backtest_markdown(record))
    plots.backtest_picture(record, out / PICTURE)
