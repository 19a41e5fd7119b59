"""The season length from a time column's frequency: the cycle a forecaster of that frequency expects.

Monthly 12, quarterly 4, weekly 52, daily 7 (the week), business days 5, hourly 24 (the day),
half-hourly 48, yearly 1 (no season): the seasonal periods statsforecast, GluonTS and the M4
competition use for these frequencies. Plain integer times carry no calendar: None, and the
caller asks for --season.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# Days between consecutive times -> season, for a step that pandas names no frequency for (gaps, mixed).
BY_DAYS = ((1 / 48, 48), (1 / 24, 24), (1.0, 7), (7.0, 52), (30.4, 12), (91.3, 4), (365.25, 1))
# pandas' frequency names (their leading letters) -> season.
BY_NAME = {"MS": 12, "ME": 12, "M": 12, "QS": 4, "QE": 4, "Q": 4, "W": 52, "D": 7, "B": 5, "h": 24, "H": 24}
BY_NAME |= {"YS": 1, "YE": 1, "Y": 1, "AS": 1, "A": 1, "BMS": 12, "BME": 12, "BM": 12, "BQS": 4, "BQ": 4, "BQE": 4}


def infer_season(times: pd.Series, ids: pd.Series | None = None) -> int | None:
    """The season of the longest series' times, or None where they are not dates (or too few to tell)."""
    if pd.api.types.is_numeric_dtype(times) or pd.api.types.is_bool_dtype(times):
        return None
    stamps = pd.to_datetime(times, errors="coerce", format="mixed")
    if stamps.isna().any():
        return None
    if ids is not None:
        longest = ids.value_counts().index[0]
        stamps = stamps[(ids == longest).to_numpy()]
    ordered = pd.DatetimeIndex(np.sort(stamps.unique()))
    if len(ordered) < 3:
        return None
    with warnings.catch_warnings():  # pandas 3 warns that a later version returns an offset: both work below
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        name = pd.infer_freq(ordered)
    if name is not None:
        offset = pd.tseries.frequencies.to_offset(name)
        code = offset.rule_code.split("-")[0]
        if code in ("min", "T") and offset.n == 30:
            return 48
        if offset.n == 1 and code in BY_NAME:
            return BY_NAME[code]
    days = float(np.median(np.diff(ordered.asi8))) / 86_400e9
    for step, season in BY_DAYS:
        if abs(days - step) <= 0.1 * step:
            return season
    return None
