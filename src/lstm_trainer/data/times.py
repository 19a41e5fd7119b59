"""The one reading of a time column: sortable keys, the same for one series and many, with the same messages."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from lstm_trainer.errors import UserError


def time_keys(column: pa.ChunkedArray, name: str, time_column: str) -> tuple[np.ndarray, pd.Series | None]:
    """Sortable keys of the time column (float64 numbers, or int64 nanoseconds), and the parsed times where they are times."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        keys = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        missing = np.flatnonzero(np.isnan(keys))
        times = None
    else:
        raw = column.to_pandas()
        times = (
            pd.to_datetime(raw, utc=True)
            if pa.types.is_temporal(column.type)
            else pd.to_datetime(raw.astype("string"), format="ISO8601", errors="coerce", utc=True)
        )
        missing = np.flatnonzero(times.isna().to_numpy())
        if len(missing) and not raw.isna().iloc[missing[0]]:
            raise UserError(
                f"{name}: --time_column {time_column!r} row {missing[0] + 1} holds {raw.iloc[missing[0]]!r}, which is "
                "neither a number nor an ISO 8601 time (e.g. 2024-01-31 or 2024-01-31T12:00)"
            )
        keys = times.to_numpy(dtype="datetime64[ns]").astype(np.int64)  # exact: float64 would merge nanoseconds
    if len(missing):
        raise UserError(
            f"{name}: --time_column {time_column!r} is empty at row {missing[0] + 1}; every row needs a time"
        )
    return keys, times
