"""Every runnable code block of the README and the docs pages, run as written (with tiny settings).

A page's `bash` and `python` blocks run in order, in one folder holding small sample files (the
`prices.csv`, `sales.csv`, ... the pages name) and a tiny finished run in `outputs` (its model at `outputs/model`):

- `python train.py ARGS` and `accelerate launch train.py ARGS`: the trainer in-process, with a
  small model for one epoch added after ARGS (the last value of a flag wins);
- `python -m lstm_trainer.cli.X ARGS` and `lstm-trainer-X ARGS`: that command in-process, as written;
- a `python` block: executed, every block of a page in one namespace.

A block that cannot run here (several processes, a GPU, the Hub, minutes of benchmark) has the line
`<!-- not run: why -->` right above it. `text` blocks are output and file samples, not run. Any other
command, or a block without a language, fails: say what the block is.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, train_in_process

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"bash", "python", "text"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"^<!-- not run: (?P<why>.*\S) -->$")
# One epoch of a small model: the docs' commands as written, in a second each.
TINY = ["--num_train_epochs", "1", "--hidden_size", "8"]
TINY_SYNTHETIC = ["--num_train_samples", "512", "--num_val_samples", "128"]
COMMANDS = {"predict", "backtest", "data", "hub"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    body: str
    not_run: str | None  # why, where the block is marked `<!-- not run: why -->`

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    text = page.read_text()
    for found in FENCE.finditer(text):
        before = text[: found.start()].rstrip().splitlines()
        marked = NOT_RUN.match(before[-1].strip()) if before else None
        indent = found.group("indent")
        body = "".join(line.removeprefix(indent) for line in found.group("body").splitlines(keepends=True))
        line = text.count("\n", 0, found.start()) + 1
        yield Block(page, line, found.group("lang"), body, marked.group("why") if marked else None)


def runnable(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.lang in ("bash", "python") and b.not_run is None]


def commands(body: str) -> Iterator[list[str]]:
    """A bash block's commands: continuation lines joined, comments dropped."""
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            yield words


def test_every_block_says_what_it_is() -> None:
    """A language on every block; a `not run` marker has a reason and stands right above a bash or python block."""
    seen = 0
    for page in PAGES:
        for block in blocks(page):
            seen += 1
            assert block.lang in LANGUAGES, f"{block.where}: a block is bash, python or text, not {block.lang!r}"
            if block.not_run is not None:
                assert block.lang != "text", f"{block.where}: a text block is never run; drop the marker"
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("<!-- not run"):
                where = f"{page.relative_to(ROOT)}:{i + 1}"
                assert NOT_RUN.match(line.strip()), f"{where}: write it as <!-- not run: why -->"
                assert i + 1 < len(lines) and lines[i + 1].lstrip().startswith("```"), f"{where}: no block right below"
    assert seen > 40  # the parser found the pages' blocks


def test_the_parser_reads_indented_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- not run: needs 2 GPUs -->\n```bash\ndeepspeed train.py\n```\n\n1. item\n\n"
        "    ```python\n    x = 1\n    ```\n\n```text\nout\n```\n"
    )
    found = list(blocks(page))
    assert [(b.lang, b.body, b.not_run, b.line) for b in found] == [
        ("bash", "deepspeed train.py\n", "needs 2 GPUs", 4),
        ("python", "x = 1\n", None, 10),
        ("text", "out\n", None, 14),
    ]
    assert list(commands("a --x 1 \\\n    --y 2   # why\n# only a comment\nb\n")) == [
        ["a", "--x", "1", "--y", "2"],
        ["b"],
    ]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the pages name, small, and a tiny model at outputs/model, made once for every page."""
    folder = tmp_path_factory.mktemp("docs_samples")
    rng = np.random.default_rng(0)
    t = np.arange(300)
    days = pd.date_range("2024-01-01", periods=300, freq="D").strftime("%Y-%m-%d")
    prices = pd.DataFrame(
        {"date": days, "close": 100 + 0.05 * t + 2 * np.sin(t * 2 * np.pi / 7) + rng.normal(0, 0.3, 300)}
    )
    prices.to_csv(folder / "prices.csv", index=False)
    prices.to_parquet(folder / "prices.parquet", index=False)
    prices.to_json(folder / "prices.jsonl", orient="records", lines=True)
    pd.DataFrame({"y": np.sin(t / 5) + rng.normal(0, 0.1, 300)}).to_csv(folder / "series.csv", index=False)
    gappy = pd.DataFrame({"y": np.sin(t / 5)})
    gappy.loc[[40, 41, 150], "y"] = np.nan
    gappy.to_csv(folder / "gappy.csv", index=False)
    wide = {name: np.sin(t / period) + rng.normal(0, 0.1, 300) for name, period in (("a", 3), ("b", 5), ("c", 7))}
    pd.DataFrame({"time": t, **wide}).to_csv(folder / "sensors.csv", index=False)
    sales, future, history, actual = [], [], [], []
    sales_days = pd.date_range("2024-01-01", periods=167, freq="D")
    for i, store in enumerate(["s1", "s2", "s3"]):
        s = np.arange(167)
        price = 2 + 0.3 * np.cos(s / 4 + i)
        promotion = (s % 9 == i).astype(int)
        temperature = 15 + 8 * np.sin(s * 2 * np.pi / 365) + rng.normal(0, 1, 167)
        y = 50 * (i + 1) - 5 * price + 6 * promotion + 3 * np.sin(s * 2 * np.pi / 7) + rng.normal(0, 0.5, 167)
        frame = pd.DataFrame({"store": store, "day": sales_days.strftime("%Y-%m-%d"), "sales": y,
                              "temperature": temperature, "price": price, "promotion": promotion,
                              "store_size": 100.0 * (i + 1)})  # fmt: skip
        sales.append(frame[:160])
        future.append(frame[160:][["store", "day", "price"]])
        n = 100 + 10 * i
        series = 10 * (i + 1) + np.sin(np.arange(n + 18) * 2 * np.pi / 12) + rng.normal(0, 0.1, n + 18)
        history.append(pd.DataFrame({"id": f"m{i}", "t": np.arange(n), "y": series[:n]}))
        actual.append(pd.DataFrame({"id": f"m{i}", "t": np.arange(n, n + 18), "y": series[n:]}))
    pd.concat(sales).to_csv(folder / "sales.csv", index=False)
    pd.concat(future).to_csv(folder / "sales_future.csv", index=False)
    pd.concat(history).to_csv(folder / "history.csv", index=False)
    pd.concat(actual).to_csv(folder / "future.csv", index=False)

    from lstm_trainer.cli.data import main as data_main

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        no_pictures(patch)
        assert (
            data_main(["build", "--dataset", "prices.csv", "--data_column", "close", "--output_dir", "data/prices"])
            == 0
        )
        train_in_process([*TINY, *TINY_SYNTHETIC, "--output_dir", "made"])
    shutil.move(folder / "made", folder / "outputs")  # a finished run's folder, its markers with it
    return folder


def no_pictures(patch: pytest.MonkeyPatch) -> None:
    """A run's four pictures are most of a tiny run's time; tests/test_plots.py draws them."""
    patch.setattr("lstm_trainer.outputs.plots.save_all", lambda *args, **kwargs: {})


def run_command(words: list[str], where: str) -> None:
    env: dict[str, str] = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        dispatch(words, where)
    finally:
        for name, old in before.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def dispatch(words: list[str], where: str) -> None:
    said = shlex.join(words)
    if words[:2] == ["python", "train.py"] or words[:3] == ["accelerate", "launch", "train.py"]:
        args = words[words.index("train.py") + 1 :]
        synthetic = "--dataset" not in args or args[args.index("--dataset") + 1] == "synthetic"
        # The pages' runs share output_dir `outputs` one after another, as a reader's would after each
        # answered the refusal of a finished run's folder; the flag says so for them.
        train_in_process([*args, *TINY, *(TINY_SYNTHETIC if synthetic else []), "--overwrite_output_dir"])
        return
    if words[:2] == ["python", "-m"] and words[2].startswith("lstm_trainer.cli."):
        command, args = words[2].removeprefix("lstm_trainer.cli."), words[3:]
    elif words[0].startswith("lstm-trainer-"):
        command, args = words[0].removeprefix("lstm-trainer-"), words[1:]
    else:
        pytest.fail(f"{where}: `{said}` is not a command this test runs; mark the block <!-- not run: why -->")
    assert command in COMMANDS, f"{where}: no command {command!r}"
    import importlib

    main = importlib.import_module(f"lstm_trainer.cli.{command}").main
    assert main(args) == 0, f"{where}: `{said}` failed"


@pytest.mark.parametrize("page", [p for p in PAGES if runnable(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pages_code_runs_as_written(
    page: Path, samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(samples, tmp_path, dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    no_pictures(monkeypatch)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in runnable(page):
        if block.lang == "python":
            exec(compile(block.body, block.where, "exec"), namespace)
            continue
        for words in commands(block.body):
            run_command(words, block.where)
