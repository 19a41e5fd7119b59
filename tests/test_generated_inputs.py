"""Generated bad inputs (Hypothesis) thrown at the loaders, the flags and the API, against one contract:
a refusal is one `error:` line and exit code 2 (the API: one `UserError`), never a traceback, and the
folders watched (a user's files beside the paths given) are unchanged, byte for byte.

Fast lane: a bounded number of examples each (derandomized, so a failure reproduces), no example
database written into the checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from lstm_trainer.api import Forecaster
from lstm_trainer.api.options import OPTIONS
from lstm_trainer.cli.data import main as data_main
from lstm_trainer.cli.predict import build_parser as predict_parser
from lstm_trainer.cli.predict import check_outputs
from lstm_trainer.cli.train import parse_config
from lstm_trainer.errors import UserError
from lstm_trainer.train.preflight import preflight

# Hypothesis keeps caches in .hypothesis/ under the working directory: here, in a folder of the session's.
_HOME = tempfile.TemporaryDirectory(prefix="lstm_trainer_tests_hypothesis_")
set_hypothesis_home_dir(_HOME.name)


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@contextlib.contextmanager
def watched() -> Iterator[Path]:
    """A fresh folder holding a user's files (one example each); unchanged afterwards, or the test fails."""
    with tempfile.TemporaryDirectory(prefix="lstm_trainer_generated_") as name:
        folder = Path(name) / "user"
        folder.mkdir()
        (folder / "notes.txt").write_text("the user's own notes\n")
        (folder / "data").mkdir()
        (folder / "data" / "keep.csv").write_text("t,y\n0,1\n")
        before = snapshot(folder)
        yield folder
        assert snapshot(folder) == before, "a user's folder changed"


def outcome(call: Callable[[], Any]) -> Any:
    """What `call` returns, or the `UserError` it raised (either is allowed; anything else fails the test)."""
    try:
        return call()
    except UserError as err:
        return err


def one_error_line(stderr: str) -> str:
    """The lines a refusal printed, but datasets' progress bars: exactly one, the `error:` line."""
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("Generating ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# -- tables through the loader (data build reads them as train.py, backtest and predict do) ------------------

NAMES = st.sampled_from(["t", "y", "x", "id", "y", "", " y", "value;x", "día", "1"])
CELLS = st.one_of(
    st.sampled_from(["1", "2.5", "-3", "0", "nan", "inf", "-inf", "", "oops", "1e400", "2024-01-01", '"q"', "a;b"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
)


@st.composite
def csv_files(draw: Any) -> tuple[str, list[str]]:
    header = draw(st.lists(NAMES, min_size=1, max_size=4))
    separator = draw(st.sampled_from([",", ",", ";", "\t"]))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header), max_size=len(header)), max_size=40))
    body = "".join(separator.join(row) + "\n" for row in [header, *rows])
    flags = []
    for flag in ("--data_column", "--time_column", "--id_column"):
        if draw(st.booleans()):
            flags += [flag, draw(NAMES.filter(bool))]
    for flag in ("--seq_length", "--season", "--horizon"):
        if draw(st.booleans()):
            flags += [flag, str(draw(st.integers(-2, 50)))]
    return body, flags


def build(folder: Path, args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = data_main(["build", *args])
    return code, err.getvalue()


@bounded(40)
@given(csv_files())
def test_a_generated_csv_is_built_or_refused_in_one_line(case: tuple[str, list[str]]) -> None:
    body, flags = case
    with watched() as user:
        table = user.parent / "table.csv"
        table.write_text(body)
        out = user.parent / "built"
        code, stderr = build(user, ["--dataset", str(table), "--output_dir", str(out), *flags])
        assert code in (0, 2) and "Traceback" not in stderr
        if code == 2:
            one_error_line(stderr)
            assert not out.exists()
        # The user's own folder as an output is refused whatever the table.
        code, stderr = build(user, ["--dataset", str(table), "--output_dir", str(user), *flags])
        assert code == 2 and one_error_line(stderr)


JSON_LINES = st.one_of(
    st.builds(lambda v: json.dumps({"y": v}), st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda v: json.dumps({"y": v}), st.text(max_size=5)),
    st.sampled_from(['{"y": oops}', "{", "[1, 2]", '{"y": null}', '{"z": 1}', "", "null", '"text"']),
)


@bounded(25)
@given(st.lists(JSON_LINES, max_size=60))
def test_a_generated_json_lines_file_is_built_or_refused_in_one_line(lines: list[str]) -> None:
    with watched() as user:
        table = user.parent / "table.jsonl"
        table.write_text("\n".join(lines) + "\n")
        out = user.parent / "built"
        code, stderr = build(user, ["--dataset", str(table), "--output_dir", str(out), "--seq_length", "4"])
        assert code in (0, 2) and "Traceback" not in stderr
        if code == 2:
            one_error_line(stderr)
            assert not out.exists()


# -- train.py's flags ----------------------------------------------------------------------------------------

FLAG_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1e309", "abc", "", "1.5", "3", "none", "--", "10000000000"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
)
TRAIN_FLAGS = st.sampled_from(
    [
        "learning_rate", "weight_decay", "noise_std", "dropout", "val_fraction", "test_fraction", "seq_length",
        "horizon", "hidden_size", "num_layers", "season", "quantiles", "num_train_epochs", "total_batch_size",
        "per_device_train_batch_size", "save_total_limit", "max_train_steps", "val_size", "test_size", "cell",
    ]
)  # fmt: skip


@bounded(60)
@given(st.lists(st.tuples(TRAIN_FLAGS, FLAG_VALUES), max_size=4))
def test_generated_train_flags_are_a_config_or_one_line_and_touch_nothing(flags: list[tuple[str, str]]) -> None:
    args = [f"--{name}={value}" for name, value in flags]
    with watched() as user:
        # Into the user's own folder: refused whatever the flags, the folder as it was.
        with pytest.raises(UserError) as err:
            preflight(parse_config([*args, "--output_dir", str(user)]))
        assert "\n" not in str(err.value)
        # Into a new nested folder: accepted (lock taken and given back) or refused; either way nothing is left.
        nested = user.parent / "runs" / "a" / "b"
        lock = outcome(lambda: preflight(parse_config([*args, "--output_dir", str(nested)])))
        if isinstance(lock, UserError):
            assert "\n" not in str(lock)
        else:
            assert lock is not None
            lock.release()
        assert not (user.parent / "runs").exists()


# -- predict's outputs ---------------------------------------------------------------------------------------

PATHS = st.sampled_from(
    ["f.csv", "f.CSV", "f", "f.txt", "data", "data/f.csv", "missing/f.csv", "notes.txt", "notes.txt/f.csv", "p.png",
     "p.svg", "p.bmp", "data/keep.csv", ".", ""]
)  # fmt: skip


@bounded(60)
@given(PATHS, st.one_of(st.none(), PATHS), st.integers(-5, 20_000), st.booleans())
def test_generated_predict_outputs_are_checked_before_anything(
    output: str, plot: str | None, horizon: int, many: bool
) -> None:
    with watched() as user:
        args = ["--model", "m", "--input", "i.csv", "--output", str(user / output), "--horizon", str(horizon)]
        args += ["--plot", str(user / plot)] if plot is not None else []
        args += ["--id_column", "id"] if many else []
        checked = outcome(lambda: check_outputs(predict_parser().parse_args(args)))
        assert checked is None or "\n" not in str(checked)


# -- the API ---------------------------------------------------------------------------------------------------

API_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3),
    st.sampled_from([(0.5, 0.5), [0.1, 0.9], "12", Path("x"), {"a": 1}, b"bytes"]),
)


@bounded(80)
@given(st.dictionaries(st.sampled_from(OPTIONS), API_VALUES, max_size=3))
def test_generated_api_options_are_a_model_or_one_user_error(options: dict[str, Any]) -> None:
    options.pop("output_dir", None)  # a model is only configured here; nothing may be written
    options.pop("dataset", None)
    options.pop("data_column", None)
    options.pop("id_column", None)
    options.pop("time_column", None)
    made = outcome(lambda: Forecaster(**options))
    assert isinstance(made, Forecaster) or "\n" not in str(made)


@st.composite
def frames(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(0, 45))
    ids = draw(st.sampled_from(["one", "two", "ints", "mixed", "none"]))
    unique_id: Any = {
        "one": ["a"] * n,
        "two": ["a" if i < n // 2 else "b" for i in range(n)],
        "ints": [i % 2 for i in range(n)],
        "mixed": ["a" if i % 3 else 7 for i in range(n)],
        "none": [None] * n,
    }[ids]
    start = pd.Timestamp("2024-01-01")
    ds = [start + pd.Timedelta(days=i % draw(st.integers(1, 60))) for i in range(n)]
    y = draw(
        st.lists(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from(["oops", None, 1])),
            min_size=n,
            max_size=n,
        )
    )
    frame = pd.DataFrame({"unique_id": unique_id, "ds": ds, "y": y})
    if draw(st.booleans()):
        frame["y"] = pd.to_numeric(frame["y"], errors="coerce")  # mostly numbers, some NaN
    if draw(st.integers(0, 5)) == 0:
        frame = pd.concat([frame, frame[["y"]]], axis=1)
    return frame


@bounded(30)
@given(frames())
@pytest.mark.filterwarnings("ignore")
def test_a_generated_frame_is_fitted_or_refused_in_one_line_and_a_refusal_leaves_nothing(frame: pd.DataFrame) -> None:
    options: dict[str, Any] = {"seq_length": 4, "horizon": 1, "hidden_size": 4, "num_layers": 1}
    options.update(num_train_epochs=1, max_train_steps=1)
    with watched() as user:
        out = user.parent / "runs" / "fit"
        model = Forecaster(**options, output_dir=str(out))
        fitted = outcome(lambda: model.fit(frame))
        if isinstance(fitted, UserError):
            assert "\n" not in str(fitted) and "fit_data.parquet" not in str(fitted)
            assert not (user.parent / "runs").exists()
        else:
            assert np.isfinite(model.predict(h=2)["forecast"]).all()
        with pytest.raises(UserError):  # never into the user's folder: the frame's fault or the folder's, refused
            Forecaster(**options, output_dir=str(user)).fit(frame)
