"""From a table (one row per time step) to series rows: one column, a wide table, or a long one.

    one column     --data_column y (or the only numeric column): one series, checked as series.py says
    wide           --data_column a b c, or every numeric column: one series per column, sharing the
                   rows' clock; empty cells before a column's first or after its last value make it
                   shorter (mixed lengths), empty cells in between are missing values
    long           --id_column store: one series per id, its rows in --time_column order (or file order)

The long path is vectorised (factorize, lexsort, one pass of NumPy): 10,000 series of 1,000
points load without a Python loop over rows or series.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from datasets import Dataset

from lstm_trainer.data.covariates import CovariateNames, read_covariates
from lstm_trainer.data.rows import NO_CLOCK, SeriesSet, from_values
from lstm_trainer.data.series import _handle_missing, _is_numeric, _numbers, extract_series
from lstm_trainer.data.times import time_keys
from lstm_trainer.errors import UserError


def table_to_series(
    table: Dataset,
    name: str,
    data_column: list[str] | None,
    time_column: str | None,
    id_column: str | None,
    fill_missing: str | None,
    covariates: CovariateNames | None = None,
) -> tuple[SeriesSet, dict[str, Any]]:
    """The series in `table`, and what was read (columns, repairs) for the run's parameters.

    `covariates`: also read these columns (covariates.py), each value's from its own row, so they
    follow the values' order, repairs and drops.
    """
    rows, read, source_rows = _series(table, name, data_column, time_column, id_column, fill_missing, covariates)
    if covariates:
        assert source_rows is not None
        rows.covariates = read_covariates(table, name, covariates, source_rows, rows.offsets, time_column)
    return rows, read


def _series(
    table: Dataset,
    name: str,
    data_column: list[str] | None,
    time_column: str | None,
    id_column: str | None,
    fill_missing: str | None,
    covariates: CovariateNames | None,
) -> tuple[SeriesSet, dict[str, Any], np.ndarray | None]:
    """The series, what was read, and the table row (0-based) of each value where it has one."""
    if table.num_rows == 0:
        raise UserError(f"{name} has no rows; give a file with one row per time step")
    columns = list(table.column_names)
    for flag, column in (("--time_column", time_column), ("--id_column", id_column)):
        if column is not None and column not in columns:
            raise UserError(f"{name} has no column {column!r} ({flag}); its columns are: {', '.join(columns)}")
    if id_column is not None:
        return _long(table, name, data_column[0] if data_column else None, time_column, id_column, fill_missing)
    chosen = data_column if data_column is not None else _numeric_columns(table, time_column)
    if covariates and len(chosen) > 1:
        raise UserError(
            f"covariates go with one series column: --data_column names {len(chosen)} ({', '.join(chosen)}); put the "
            "series in a long table (--id_column) with the covariates beside their values"
        )
    if len(chosen) <= 1:
        series = extract_series(table, name, chosen[0] if chosen else None, time_column, fill_missing)
        start = _start(series.times[0]) if series.times else NO_CLOCK
        read = {"data_column": series.column, "filled_values": series.repaired, "dropped_rows": series.dropped}
        read["split_rows"] = {"rows": series.rows, "times": series.times}  # for the card's spans (sources.py)
        return from_values(series.values, series.column, start), read, series.rows - 1
    wide, read = _wide(table, name, chosen, time_column, fill_missing)
    return wide, read, None


def _numeric_columns(table: Dataset, time_column: str | None) -> list[str]:
    numeric = [c for c in table.column_names if c != time_column and _is_numeric(table.features[c])]
    return numeric if len(numeric) > 1 else []  # one or none: series.py chooses, and explains a failure


def _start(text: str) -> np.datetime64:
    stamp = pd.to_datetime(text, errors="coerce", utc=True)
    return NO_CLOCK if pd.isna(stamp) else np.datetime64(stamp.tz_localize(None).floor("s"), "s")


def _long(
    table: Dataset,
    name: str,
    data_column: str | None,
    time_column: str | None,
    id_column: str,
    fill_missing: str | None,
) -> tuple[SeriesSet, dict[str, Any], np.ndarray]:
    arrow = table.with_format("arrow")[:]
    if data_column is None:
        candidates = [
            c for c in table.column_names if c not in (id_column, time_column) and _is_numeric(table.features[c])
        ]
        if len(candidates) != 1:
            found = f"several ({', '.join(candidates)})" if candidates else "none"
            raise UserError(
                f"{name}: a long table needs one value column and {found} is numeric; name it with --data_column"
            )
        data_column = candidates[0]
    elif data_column not in table.column_names:
        raise UserError(
            f"{name} has no column {data_column!r} (--data_column); its columns are: {', '.join(table.column_names)}"
        )
    if data_column in (id_column, time_column):
        raise UserError(
            f"--data_column {data_column!r} is also the id or time column; the values need their own column"
        )
    ids = arrow.column(id_column).to_pandas()
    if ids.isna().any():
        raise UserError(
            f"{name}: --id_column {id_column!r} is empty at row {int(np.argmax(ids.isna().to_numpy())) + 1}; every row needs a series id"
        )
    codes, names = pd.factorize(ids.astype(str), sort=False)
    n_rows = len(codes)
    if len(names) == n_rows and n_rows > 1:
        raise UserError(
            f"{name}: --id_column {id_column!r} has a different value on each of its {n_rows} rows, so every series "
            "would be one point long; it names rows, not series: choose the column that repeats for every step of a series"
        )
    values = _numbers(arrow.column(data_column), table.features[data_column], name, data_column)
    rows = np.arange(1, n_rows + 1)
    times = None
    if time_column is not None:
        keys, times = time_keys(arrow.column(time_column), name, time_column)
        order = np.lexsort((keys, codes))  # by series, then time; stable for equal keys
        sorted_codes, sorted_keys = codes[order], keys[order]
        twin = np.flatnonzero((np.diff(sorted_codes) == 0) & (np.diff(sorted_keys) == 0))
        if len(twin):
            i, j = order[twin[0]], order[twin[0] + 1]
            when = arrow.column(time_column)[int(i)].as_py()
            raise UserError(
                f"{name}: series {names[codes[i]]!r} (--id_column {id_column!r}) has time {str(when)!r} twice (rows "
                f"{min(i, j) + 1} and {max(i, j) + 1}); each time step of a series must appear once"
            )
    else:
        order = np.argsort(codes, kind="stable")  # by series, file order within one
    codes, values, rows = codes[order], values[order], rows[order]
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [n_rows]]).astype(np.int64)
    starts = np.full(len(names), NO_CLOCK)
    if times is not None:
        starts = times.iloc[order[bounds[:-1]]].dt.tz_localize(None).to_numpy(dtype="datetime64[s]")
    repaired = dropped = 0
    bad = ~np.isfinite(values)
    if bad.any():
        values, rows, bounds, repaired, dropped = _repair_each(
            values, rows, bounds, bad, names, name, data_column, fill_missing
        )
    rows_set = SeriesSet(values.astype(np.float32), bounds, [str(n) for n in names], starts)
    read = {"data_column": data_column, "id_column": id_column, "filled_values": repaired, "dropped_rows": dropped}
    return rows_set, read, rows - 1


def _repair_each(
    values: np.ndarray,
    rows: np.ndarray,
    bounds: np.ndarray,
    bad: np.ndarray,
    names: Any,
    name: str,
    column: str,
    policy: str | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """--fill_missing within each series that has missing values (only those are looped over): the values
    and the source rows kept, the new bounds, and how many values were filled and dropped."""
    owners = np.unique(np.searchsorted(bounds, np.flatnonzero(bad), side="right") - 1)
    if policy is None:
        s = int(owners[0])
        a, b = bounds[s], bounds[s + 1]
        _handle_missing(values[a:b], rows[a:b], f"{name}: series {names[s]!r}", column, None)  # raises, naming rows
    parts, kept, lengths, repaired = [], [], np.diff(bounds).copy(), 0
    for s in range(len(bounds) - 1):
        a, b = bounds[s], bounds[s + 1]
        part, part_rows = values[a:b], rows[a:b]
        if s in owners:
            part, keep, filled = _handle_missing(part, part_rows, f"{name}: series {names[s]!r}", column, policy)
            part_rows = part_rows[keep]
            repaired += filled
            lengths[s] = len(part)
        parts.append(part)
        kept.append(part_rows)
    new_bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return np.concatenate(parts), np.concatenate(kept), new_bounds, repaired, int(len(values) - new_bounds[-1])


def _wide(
    table: Dataset, name: str, columns: list[str], time_column: str | None, fill_missing: str | None
) -> tuple[SeriesSet, dict[str, Any]]:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(
            f"{name} has no column {missing[0]!r} (--data_column); its columns are: {', '.join(table.column_names)}"
        )
    if time_column in columns:
        raise UserError(f"--data_column and --time_column both name {time_column!r}; the series need their own columns")
    arrow = table.with_format("arrow")[:]
    order = np.arange(table.num_rows)
    times = None
    if time_column is not None:
        keys, times = time_keys(arrow.column(time_column), name, time_column)
        order = np.argsort(keys, kind="stable")
        twin = np.flatnonzero(np.diff(keys[order]) == 0)
        if len(twin):
            i, j = sorted((int(order[twin[0]]), int(order[twin[0] + 1])))
            raise UserError(
                f"{name}: --time_column {time_column!r} holds {str(arrow.column(time_column)[i].as_py())!r} twice "
                f"(rows {i + 1} and {j + 1}); each time step must appear once"
            )
    rows = order + 1
    parts, starts, repaired, dropped = [], [], 0, 0
    for column in columns:  # one pass per column: a wide table has few
        values = _numbers(arrow.column(column), table.features[column], name, column)[order]
        finite = np.flatnonzero(np.isfinite(values))
        if not len(finite):
            raise UserError(f"{name}: column {column!r} (--data_column) holds no value; drop it from --data_column")
        a, b = finite[0], finite[-1] + 1  # empty cells before and after a series: it is shorter, not broken
        part, _keep, filled = _handle_missing(
            values[a:b], rows[a:b], f"{name}: series {column!r}", column, fill_missing
        )
        repaired += filled
        dropped += (b - a) - len(part) if fill_missing == "drop" else 0
        parts.append(part.astype(np.float32))
        starts.append(NO_CLOCK if times is None else np.datetime64(times.iloc[order[a]].tz_localize(None), "s"))
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    series = SeriesSet(np.concatenate(parts), offsets, list(columns), np.array(starts, "datetime64[s]"))
    return series, {"data_column": list(columns), "filled_values": repaired, "dropped_rows": dropped}
