"""The docs' benchmark tables, rendered from the benches' records (docs/results/) by bench/tables.py.

An mkdocs hook (mkdocs.yml: `hooks`): each `<!-- results: SECTION -->` line of a page becomes that
section's tables at build time, or one line saying which command writes them while no record exists.

The README is read on GitHub and PyPI, where no hook runs, so its block is written into the file:

    <!-- results: competition_headline -->
    ...the rendered table...
    <!-- /results -->

    python docs/hooks.py            # rewrite the README's blocks from docs/results/ (make docs runs it)
    python docs/hooks.py --check    # exit 1 where the README's blocks differ from what the records give
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import tables  # noqa: E402  (bench/tables.py)

README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- results: (\w+) -->\n", re.M)
BLOCK = re.compile(r"^<!-- results: (\w+) -->\n.*?^<!-- /results -->\n", re.M | re.S)


def fill_page(markdown: str, results: Path = tables.RESULTS) -> str:
    """A docs page with each marker line replaced by its section's tables."""
    return MARKER.sub(lambda m: tables.render(m.group(1), results) + "\n", markdown)


def fill_blocks(markdown: str, results: Path = tables.RESULTS) -> str:
    """A file (the README) with each marked block's content rewritten, the markers kept."""
    return BLOCK.sub(
        lambda m: f"<!-- results: {m.group(1)} -->\n{tables.render(m.group(1), results)}<!-- /results -->\n", markdown
    )


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs: before a page's Markdown is converted."""
    return fill_page(markdown)


def main(argv: list[str]) -> int:
    text = README.read_text()
    filled = fill_blocks(text)
    if "--check" in argv:
        if filled != text:
            print(
                "error: README.md's results blocks differ from what docs/results/ gives; "
                "run `python docs/hooks.py` (make docs does) and commit README.md",
                file=sys.stderr,
            )
            return 1
        return 0
    if filled != text:
        README.write_text(filled)
        print("docs: rewrote README.md's results blocks from docs/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
