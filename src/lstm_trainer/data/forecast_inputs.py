"""What a forecast from the end of each series reads: the series, and for a model trained with covariates,
their values over the history and the horizon. Shared by the predict command and the Python API."""

from __future__ import annotations

from datasets import Dataset

from lstm_trainer.data.covariates import Covariates, CovariateScaling, read_future, with_future
from lstm_trainer.data.rows import SeriesSet
from lstm_trainer.data.tables import table_to_series
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
