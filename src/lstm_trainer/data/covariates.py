"""Covariates: what drives a series, read beside it, scaled from the training part, gathered with each window.

Three kinds, as Darts names them (NeuralForecast: hist_exog, futr_exog, stat_exog):

    past     known up to the forecast origin (an observed temperature): read over the window only
    future   known over the horizon too (calendar, planned prices): read over the window and the H steps
             it forecasts; --calendar_features made from the time column are future ones
    static   one value per series (a store's size): given to every step of its windows

In memory the dynamic ones lie beside the series values, one row a point (`dynamic` (P, C), past
columns first), so a window's covariates are the same index arithmetic as its values (windows.py).
Each column is z-scored with the mean and std of the training parts of all series together (a
temperature means the same in every series), recorded in normalization.json with the names, so
predict and the backtest apply the same transform.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from datasets import Dataset

from lstm_trainer.config import DataConfig
from lstm_trainer.data.series import _is_numeric
from lstm_trainer.errors import UserError


@dataclass(frozen=True)
class CovariateNames:
    """The covariates a run reads, by kind; the model's input channels are in this order:
    past, then future (table columns, then calendar features), then static."""

    past: tuple[str, ...] = ()
    future: tuple[str, ...] = ()
    static: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: DataConfig) -> CovariateNames:
        return cls(
            tuple(config.past_covariates or ()),
            tuple(config.future_covariates or ()),
            tuple(config.static_covariates or ()),
            tuple(config.calendar_features or ()),
        )

    def __bool__(self) -> bool:
        return bool(self.past or self.future or self.static or self.calendar)

    @property
    def counts(self) -> tuple[int, int, int]:
        """(past, future, static) input channels: what the model is built with."""
        return len(self.past), len(self.future) + len(self.calendar), len(self.static)

    @property
    def dynamic(self) -> tuple[str, ...]:
        """The channels beside the values, in order: past, future columns, calendar features."""
        return (*self.past, *self.future, *self.calendar)

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "past": list(self.past),
            "future": list(self.future),
            "static": list(self.static),
            "calendar": list(self.calendar),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CovariateNames:
        return cls(*(tuple(str(v) for v in record.get(kind, [])) for kind in ("past", "future", "static", "calendar")))


@dataclass
class Covariates:
    """Every series' covariates in the data's units: `dynamic` (P, C) aligned with the series values, `statics` (S, Cs)."""

    names: CovariateNames
    dynamic: np.ndarray  # (P, Cp + Cf) float32
    statics: np.ndarray  # (S, Cs) float32

    def select(self, keep: np.ndarray, offsets: np.ndarray) -> Covariates:
        """The covariates of the series where `keep` (S,) is True (their rows as SeriesSet.select takes them)."""
        chosen = np.flatnonzero(keep)
        parts = [self.dynamic[offsets[s] : offsets[s + 1]] for s in chosen]
        width = self.dynamic.shape[1]
        dynamic = np.concatenate(parts) if parts else np.zeros((0, width), np.float32)
        return Covariates(self.names, dynamic, self.statics[chosen])


@dataclass(frozen=True)
class CovariateScaling:
    """Each covariate's (mean, std), fitted on the training part: model value = (value - mean) / std."""

    names: CovariateNames
    dynamic: tuple[tuple[float, float], ...]  # one per CovariateNames.dynamic channel
    statics: tuple[tuple[float, float], ...] = field(default=())

    @classmethod
    def fit(cls, covariates: Covariates, spans: np.ndarray) -> CovariateScaling:
        """From the rows the training windows read (`spans` (S, 2) into the values) and every series' statics."""
        train = np.concatenate([covariates.dynamic[a:b] for a, b in spans if b > a]).astype(np.float64)
        return cls(covariates.names, _stats(train), _stats(covariates.statics.astype(np.float64)))

    def apply(self, covariates: Covariates) -> tuple[np.ndarray, np.ndarray]:
        """`dynamic` (P, C) and `statics` (S, Cs) in the model's units, float32."""
        return _scaled(covariates.dynamic, self.dynamic), _scaled(covariates.statics, self.statics)

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": self.names.to_dict(),
            "dynamic": {n: {"mean": m, "std": s} for n, (m, s) in zip(self.names.dynamic, self.dynamic, strict=True)},
            "static": {n: {"mean": m, "std": s} for n, (m, s) in zip(self.names.static, self.statics, strict=True)},
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> CovariateScaling:
        names = CovariateNames.from_dict(record["names"])
        pairs = [
            tuple((float(record[kind][n]["mean"]), float(record[kind][n]["std"])) for n in which)
            for kind, which in (("dynamic", names.dynamic), ("static", names.static))
        ]
        return cls(names, *pairs)


def _stats(values: np.ndarray) -> tuple[tuple[float, float], ...]:
    # A covariate constant in training carries nothing to learn from: shifted to 0, not divided by 0.
    return tuple(
        (float(m), float(s) if s > 0 else 1.0) for m, s in zip(values.mean(axis=0), values.std(axis=0), strict=True)
    )


def _scaled(values: np.ndarray, stats: tuple[tuple[float, float], ...]) -> np.ndarray:
    if not stats:
        return np.zeros((len(values), 0), np.float32)
    mean, std = np.array([m for m, _ in stats]), np.array([s for _, s in stats])
    return ((values.astype(np.float64) - mean) / std).astype(np.float32)


def read_covariates(
    table: Dataset,
    name: str,
    names: CovariateNames,
    source_rows: np.ndarray,
    offsets: np.ndarray,
    time_column: str | None,
    *,
    kinds: tuple[str, ...] = ("past", "future", "static"),
) -> Covariates:
    """The covariates of each value of the series read from `table`: `source_rows` (P,) is the table row
    (0-based) each value came from, so the covariates follow the values' order, repairs and drops.

    `kinds` leaves some out (predict's --future table has no past ones: those channels are zero there).
    """
    flags = {"past": "--past_covariates", "future": "--future_covariates", "static": "--static_covariates"}
    columns = list(table.column_names)
    arrow = table.with_format("arrow")[:]
    wanted = {kind: getattr(names, kind) for kind in flags}
    for kind in kinds:
        for column in wanted[kind]:
            if column not in columns:
                raise UserError(
                    f"{name} has no column {column!r} ({flags[kind]}); its columns are: {', '.join(columns)}"
                )
    channels = []
    for kind in ("past", "future"):
        for column in wanted[kind]:
            if kind in kinds:
                channels.append(_column(arrow, table, name, column, flags[kind], source_rows))
            else:
                channels.append(np.zeros(len(source_rows)))
    if names.calendar:
        if time_column is None:
            raise UserError("--calendar_features are made from the times of the steps: name them with --time_column")
        channels += calendar_features(arrow.column(time_column), name, time_column, names.calendar, source_rows)
    dynamic = np.stack(channels, axis=1).astype(np.float32) if channels else np.zeros((len(source_rows), 0), np.float32)
    statics = np.zeros((len(offsets) - 1, len(names.static)), np.float32)
    if "static" in kinds:
        for c, column in enumerate(names.static):
            values = _column(arrow, table, name, column, flags["static"], source_rows)
            firsts = values[offsets[:-1]]
            varying = np.flatnonzero(
                np.maximum.reduceat(values, offsets[:-1]) != np.minimum.reduceat(values, offsets[:-1])
            )
            if len(varying):
                raise UserError(
                    f"{name}: static covariate {column!r} changes within series number {int(varying[0]) + 1}; a static "
                    "covariate holds one value per series (use --past_covariates or --future_covariates for one that changes)"
                )
            statics[:, c] = firsts
    return Covariates(names, dynamic, statics)


def _column(arrow: pa.Table, table: Dataset, name: str, column: str, flag: str, source_rows: np.ndarray) -> np.ndarray:
    """A numeric covariate column at `source_rows`, float64, every value finite, or one line saying where it is not."""
    if not _is_numeric(table.features[column]):
        raise UserError(
            f"{name}: covariate {column!r} ({flag}) holds {table.features[column].dtype}, not numbers; "
            "give a numeric column (a category as a number code)"
        )
    values = arrow.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False)[source_rows]
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.sort(source_rows[bad]) + 1
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        raise UserError(
            f"{name}: covariate {column!r} ({flag}) has {int(bad.sum())} missing (empty or NaN) or infinite "
            f"value{'s' if bad.sum() > 1 else ''}, at row{'s' if len(rows) > 1 else ''} {shown}; a covariate needs a "
            "value at every step: fill it at the source"
        )
    return values


def calendar_features(
    column: pa.ChunkedArray, name: str, time_column: str, features: tuple[str, ...], source_rows: np.ndarray
) -> list[np.ndarray]:
    """Each feature of `features` (config.CALENDAR_FEATURES) at the times of `source_rows`, as numbers."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        raise UserError(
            f"{name}: --calendar_features need times in --time_column {time_column!r}, which holds numbers; "
            "give ISO 8601 times (2024-01-31) or leave out --calendar_features"
        )
    raw = column.to_pandas().iloc[source_rows]
    times = pd.DatetimeIndex(
        pd.to_datetime(raw, utc=True)
        if pa.types.is_temporal(column.type)
        else pd.to_datetime(raw.astype("string"), format="ISO8601", errors="coerce", utc=True)
    )
    return [calendar_values(times, feature) for feature in features]


# The flag's names (pandas' older ones, as users know them) -> the DatetimeIndex attributes pandas keeps.
PANDAS_NAMES = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}


def calendar_values(times: pd.DatetimeIndex, feature: str) -> np.ndarray:
    if feature == "weekofyear":
        return times.isocalendar().week.to_numpy(dtype=np.float64)
    return np.asarray(getattr(times, PANDAS_NAMES.get(feature, feature)), dtype=np.float64)
