"""From one column of a table (one row per time step) to one clean series in time order.

tables.py uses these checks for wide and long tables too; splits.py cuts the series in time.

Every check names the source, the column and the row (rows count from 1, in the order of
the file; a CSV header is not a row), and says what to do. Nothing is repaired silently:
missing values stay an error unless `--fill_missing` names a policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import Dataset, Value

from lstm_trainer.data.times import time_keys
from lstm_trainer.errors import UserError

FILL_HINT = "--fill_missing ffill|interpolate|drop"
# How many row numbers an error lists before it says "...".
SHOWN_ROWS = 5


@dataclass
class Series:
    """One univariate series in time order, every value finite."""

    values: np.ndarray  # (N,) float64
    column: str
    rows: np.ndarray  # (N,) the source row (1-based) of each value
    times: list[str] | None = None  # the --time_column value of each step, as text
    repaired: int = 0  # values filled in by --fill_missing (ffill, interpolate)
    dropped: int = 0  # rows removed by --fill_missing drop


def extract_series(
    table: Dataset, name: str, data_column: str | None, time_column: str | None, fill_missing: str | None
) -> Series:
    """The series in `table`'s data column: checked, in time order, missing values handled by policy."""
    if table.num_rows == 0:
        raise UserError(f"{name} has no rows; give a file with one row per time step")
    columns = list(table.column_names)
    if time_column is not None and time_column not in columns:
        raise UserError(f"{name} has no column {time_column!r} (--time_column); its columns are: {', '.join(columns)}")
    column = _choose_column(table, name, data_column, time_column)
    arrow = table.with_format("arrow")[:]
    values = _numbers(arrow.column(column), table.features[column], name, column)
    rows = np.arange(1, len(values) + 1)
    times: list[str] | None = None
    if time_column is not None:
        order, times = _time_order(arrow.column(time_column), name, time_column)
        values, rows = values[order], rows[order]
    values, keep, repaired = _handle_missing(values, rows, name, column, fill_missing)
    if times is not None:
        times = [t for t, kept in zip(times, keep, strict=True) if kept]
    return Series(values, column, rows[keep], times, repaired, dropped=int((~keep).sum()))


def _is_numeric(feature: object) -> bool:
    return isinstance(feature, Value) and feature.dtype.startswith(("int", "uint", "float"))


def _is_text(feature: object) -> bool:
    return isinstance(feature, Value) and feature.dtype in ("string", "large_string")


def _looks_numeric(column: pa.ChunkedArray) -> bool:
    """A text column whose values are mostly numbers: a numeric column with a typo in it."""
    values = pd.Series(column.to_pylist(), dtype=object).dropna()
    return len(values) > 0 and pd.to_numeric(values, errors="coerce").notna().mean() > 0.5


def _choose_column(table: Dataset, name: str, data_column: str | None, time_column: str | None) -> str:
    columns = list(table.column_names)
    if data_column is not None:
        if data_column not in columns:
            raise UserError(
                f"{name} has no column {data_column!r} (--data_column); its columns are: {', '.join(columns)}"
            )
        if data_column == time_column:
            raise UserError(
                f"--data_column and --time_column are both {data_column!r}; the series needs its own column"
            )
        return data_column
    arrow = table.with_format("arrow")[:]
    candidates = [
        c
        for c in columns
        if c != time_column
        and (_is_numeric(table.features[c]) or (_is_text(table.features[c]) and _looks_numeric(arrow.column(c))))
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UserError(
            f"{name} has no numeric column (its columns are: {', '.join(columns)}); name the series with --data_column"
        )
    raise UserError(
        f"{name} has several numeric columns ({', '.join(candidates)}); choose the series with --data_column"
    )


def _numbers(column: pa.ChunkedArray, feature: object, name: str, column_name: str) -> np.ndarray:
    """The column as float64, nulls as NaN; any value that is not a number is an error naming its row."""
    if _is_numeric(feature):
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    values = pd.Series(column.to_pylist(), dtype=object)
    # JSON columns can mix types: true/false, lists and objects are not numbers either.
    scalars = values.map(lambda v: v if isinstance(v, (str, int, float)) and not isinstance(v, bool) else "?")
    parsed = pd.to_numeric(scalars, errors="coerce")
    spelled_missing = values.map(lambda v: v is None or (isinstance(v, str) and v.strip().lower() in ("", "nan")))
    bad = np.flatnonzero(parsed.isna().to_numpy() & ~spelled_missing.to_numpy())
    if len(bad):
        row = int(bad[0]) + 1
        raise UserError(
            f"{name}: column {column_name!r} row {row} holds {values.iloc[bad[0]]!r}, which is not a number "
            f"({len(bad)} such value{'s' if len(bad) > 1 else ''}); fix the file or choose another --data_column"
        )
    return parsed.to_numpy(dtype=np.float64)


def _time_order(column: pa.ChunkedArray, name: str, time_column: str) -> tuple[np.ndarray, list[str]]:
    """The row order that puts the time column in ascending order; duplicates are errors."""
    raw = pd.Series(column.to_pylist(), dtype=object)
    keys = pd.Series(time_keys(column, name, time_column)[0])
    duplicated = np.flatnonzero(keys.duplicated(keep=False).to_numpy())
    if len(duplicated):
        first = duplicated[0]
        twin = next(i for i in duplicated[1:] if keys.iloc[i] == keys.iloc[first])
        raise UserError(
            f"{name}: --time_column {time_column!r} holds {raw.iloc[first]!r} twice (rows {first + 1} and "
            f"{twin + 1}); each time step must appear once"
        )
    order = np.argsort(keys.to_numpy(), kind="stable")
    return order, [str(raw.iloc[i]) for i in order]


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:SHOWN_ROWS])
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', ...' if len(rows) > SHOWN_ROWS else ''}"


def _handle_missing(
    values: np.ndarray, rows: np.ndarray, name: str, column: str, policy: str | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Apply --fill_missing to NaN/inf values (in time order); without a policy they are an error.

    Returns the values kept, the mask of kept steps and how many values were filled in.
    """
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count == 0:
        return values, ~bad, 0
    n_inf = int(np.isinf(values).sum())
    parts = [f"{count - n_inf} missing (empty or NaN)"] if count > n_inf else []
    parts += [f"{n_inf} infinite"] if n_inf else []
    kinds = " and ".join(parts)
    where = f"{name}: column {column!r} has {kinds} value{'s' if count > 1 else ''}, at {_rows_text(rows[bad])}"
    if policy is None:
        raise UserError(f"{where}; repair them with {FILL_HINT} or fix the file")
    if bad.all():
        raise UserError(f"{where}: no value is left to fill from; fix the file")
    if policy == "drop":
        return values[~bad], ~bad, 0
    if policy == "ffill":
        if bad[0]:
            raise UserError(
                f"{where}: row {rows[0]} has no value before it to carry forward; use --fill_missing interpolate or drop"
            )
        filled = pd.Series(np.where(bad, np.nan, values)).ffill().to_numpy()
        return filled, np.ones_like(bad), count
    # interpolate: linear in the step index; leading or trailing gaps take the nearest value.
    steps = np.arange(len(values))
    filled = values.copy()
    filled[bad] = np.interp(steps[bad], steps[~bad], values[~bad])
    return filled, np.ones_like(bad), count
