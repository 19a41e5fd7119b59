"""What a forecast from the end of each series reads: the series, and for a model trained with covariates,
their values over the history and the horizon. Shared by the predict command and the Python API."""

from __future__ import annotations

import numpy as np
from datasets import Dataset

from lstm_trainer.data.covariates import CovariateNames, Covariates, CovariateScaling, read_covariates
from lstm_trainer.data.rows import SeriesSet
from lstm_trainer.data.tables import _time_keys, table_to_series
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
        ahead = read_future(future[0], future[1], names, list(rows.item_ids), horizon, id_column, time_column)
    return rows, with_future(rows.covariates, rows.offsets - rows.offsets[0], ahead, horizon)


def read_future(
    table: Dataset,
    name: str,
    names: CovariateNames,
    item_ids: list[str],
    horizon: int,
    id_column: str | None,
    time_column: str | None,
) -> Covariates:
    """The future covariates of each series over the `horizon` steps after its end, from a table with a row
    per series and step (predict's --future, the API's future_df): each series' first `horizon` rows in
    time order (file order without --time_column). (S * horizon) rows, past channels zero, statics zero."""
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
    if time_column is not None:
        keys, _ = _time_keys(arrow.column(time_column), name, time_column)
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
        chosen.append(rows)
    source_rows = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    offsets = np.arange(0, len(item_ids) * horizon + 1, horizon, dtype=np.int64)
    return read_covariates(table, name, names, source_rows, offsets, time_column, kinds=("future",))


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
