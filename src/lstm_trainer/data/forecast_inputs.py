"""What a forecast from the end of each series reads: the series, and for a model trained with covariates,
their values over the history and the horizon. Shared by the predict command and the Python API."""

from __future__ import annotations

import numpy as np
import pandas as pd
from datasets import Dataset

from lstm_trainer.data.covariates import CovariateNames, Covariates, CovariateScaling, read_covariates
from lstm_trainer.data.rows import SeriesSet
from lstm_trainer.data.tables import table_to_series
from lstm_trainer.data.times import time_keys
from lstm_trainer.errors import UserError


def forecast_inputs(
    table: Dataset,
    name: str,
    data_column: list[str] | None,
    time_column: str | None,
    id_column: str | None,
    fill_missing: str | None,
    scaling: CovariateScaling | None,
    horizon: int,
    future: tuple[Dataset, str] | None = None,
) -> tuple[SeriesSet, Covariates | None]:
    """The series of `table` and, for a covariate model (`scaling`, from its normalization.json), each
    series' covariates over its history (from `table`, beside the values) and the model's `horizon`
    steps after it (from `future`: a table and its name for messages, needed for future covariates)."""
    names = scaling.names if scaling is not None else None
    if not names and future is not None:
        raise UserError(f"{future[1]} gives future covariates, and this model was trained without any; leave it out")
    rows, _ = table_to_series(table, name, data_column, time_column, id_column, fill_missing, names)
    if not names:
        return rows, None
    assert rows.covariates is not None
    ahead = None
    if names.future or names.calendar:
        if future is None:
            needed = ", ".join((*names.future, *names.calendar))
            raise UserError(
                f"this model was trained with future covariates ({needed}): give their values over the {horizon} "
                "steps after each series' end: predict --future FILE, or the API's future_df= (a table with the id and time columns and those)"
            )
        ends = _last_times(table, name, list(rows.item_ids), id_column, time_column) if time_column else None
        ahead = read_future(future[0], future[1], names, list(rows.item_ids), horizon, id_column, time_column, ends)
    return rows, with_future(rows.covariates, rows.offsets - rows.offsets[0], ahead, horizon)


def read_future(
    table: Dataset,
    name: str,
    names: CovariateNames,
    item_ids: list[str],
    horizon: int,
    id_column: str | None,
    time_column: str | None,
    ends: dict[str, float] | None = None,
) -> Covariates:
    """The future covariates of each series over the `horizon` steps after its end, from a table with a row
    per series and step (predict's --future, the API's future_df): each series' first `horizon` rows in
    time order (file order without --time_column). (S * horizon) rows, past channels zero, statics zero.
    `ends`: each series' last history time (as `time_keys` gives it); its future rows must come after it,
    one per step, or the covariates would be read against the wrong steps."""
    columns = list(table.column_names)
    for flag, column in (("--id_column", id_column), ("--time_column", time_column)):
        if column is not None and column not in columns:
            raise UserError(f"{name} has no column {column!r} ({flag}); its columns are: {', '.join(columns)}")
    arrow = table.with_format("arrow")[:]
    ids = (
        arrow.column(id_column).to_pandas().astype(str).to_numpy()
        if id_column is not None
        else np.full(table.num_rows, item_ids[0] if len(item_ids) == 1 else "")
    )
    order = np.arange(table.num_rows)
    keys, times = None, None
    if time_column is not None:
        keys, times = time_keys(arrow.column(time_column), name, time_column)
        order = np.lexsort((keys,))  # stable within equal times
    chosen = []
    for item in item_ids:
        rows = order[ids[order] == item][:horizon]
        if len(rows) < horizon:
            what = (
                f"series {item!r} has {len(rows)} row{'s' if len(rows) != 1 else ''}"
                if id_column
                else f"it has {len(rows)} rows"
            )
            raise UserError(
                f"{name}: the future covariates cover fewer steps than the model's horizon of {horizon}: {what}; "
                f"give {horizon} rows after each series' end with {', '.join(names.future + names.calendar)}"
            )
        if keys is not None:
            _check_steps(name, item, rows, keys, times, ends)
        chosen.append(rows)
    source_rows = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    offsets = np.arange(0, len(item_ids) * horizon + 1, horizon, dtype=np.int64)
    return read_covariates(table, name, names, source_rows, offsets, time_column, kinds=("future",))


def _check_steps(
    name: str, item: str, rows: np.ndarray, keys: np.ndarray, times: pd.Series | None, ends: dict[str, float] | None
) -> None:
    """A series' future rows (in time order): one per step, all after its history's last time."""

    def shown(key: float) -> str:
        if times is None:
            return f"{key:g}"
        stamp = pd.Timestamp(int(key))  # nanoseconds, UTC (time_keys)
        return str(stamp.date()) if stamp == stamp.normalize() else stamp.isoformat()

    same = np.flatnonzero(np.diff(keys[rows]) == 0)
    if len(same):
        raise UserError(
            f"{name}: series {item!r} has two future rows at {shown(keys[rows[same[0]]])}; give one row per step"
        )
    end = ends.get(item) if ends is not None else None
    if end is not None and keys[rows[0]] <= end:
        raise UserError(
            f"{name}: series {item!r}'s future rows start at {shown(keys[rows[0]])}, not after its history's last "
            f"time {shown(end)}; give the rows of the steps after each series' end"
        )


def _last_times(
    table: Dataset, name: str, item_ids: list[str], id_column: str | None, time_column: str
) -> dict[str, float]:
    """Each series' last time in the history `table`, as `time_keys` gives it."""
    arrow = table.with_format("arrow")[:]
    keys, _ = time_keys(arrow.column(time_column), name, time_column)
    if id_column is None:
        return {item_ids[0]: keys.max().item()} if len(item_ids) == 1 and len(keys) else {}
    ids = arrow.column(id_column).to_pandas().astype(str).to_numpy()
    return {str(k): v for k, v in pd.Series(keys).groupby(ids).max().items()}


def with_future(history: Covariates, offsets: np.ndarray, future: Covariates | None, horizon: int) -> Covariates:
    """Each series' covariates over its history (`offsets` into `history.dynamic`) followed by its `horizon`
    future rows (zero where `future` is None: a model with past and static covariates only)."""
    parts = []
    width = history.dynamic.shape[1]
    for s in range(len(offsets) - 1):
        parts.append(history.dynamic[offsets[s] : offsets[s + 1]])
        parts.append(
            future.dynamic[s * horizon : (s + 1) * horizon]
            if future is not None
            else np.zeros((horizon, width), np.float32)
        )
    dynamic = np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
    return Covariates(history.names, dynamic, history.statics)
