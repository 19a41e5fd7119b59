"""pandas DataFrames in and out: a long table of series (id, time, value) to what the trainer reads, forecasts back.

Long format, as NeuralForecast takes it: one row per series and time step. Nothing here
trains or forecasts; the trainer and `Predictor` do, exactly as the command line calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstm_trainer.errors import UserError


@dataclass(frozen=True)
class Columns:
    """Which columns of the user's DataFrame hold what; None for no id (one series) or no time (row order)."""

    target: str = "y"
    id: str | None = "unique_id"
    time: str | None = "ds"
    covariates: tuple[str, ...] = ()  # past, future and static covariate columns

    def used(self) -> list[str]:
        return [c for c in (self.id, self.time, self.target, *self.covariates) if c is not None]

    def check(self, df: Any, what: str = "df", target: bool = True) -> pd.DataFrame:
        """`df` itself where it is a non-empty DataFrame with every named column (a future_df: no target, and
        the future covariates are checked where they are read), else one line saying what is wrong."""
        if not isinstance(df, pd.DataFrame):
            raise UserError(f"{what} must be a pandas DataFrame in long format, got {type(df).__name__}")
        if df.empty:
            raise UserError(f"{what} has no rows; give one row per series and time step")
        needed = self.used() if target else [c for c in (self.id, self.time) if c is not None]
        missing = [c for c in needed if c not in df.columns]
        if missing:
            role = {self.id: "id_col", self.time: "time_col", self.target: "target_col"}.get(missing[0], "a covariate")
            raise UserError(
                f"{what} has no column {missing[0]!r} ({role}); its columns are: {', '.join(map(str, df.columns))}"
            )
        twice = [c for c in needed if (df.columns == c).sum() > 1]
        if twice:
            raise UserError(f"{what} has two columns named {twice[0]!r}; rename one (which one is meant is not clear)")
        numeric = [self.target] if target else []
        for column in numeric:
            _check_numbers(df, what, column)
        if self.id is not None and df[self.id].dtype == object:
            kinds = {type(v).__name__: v for v in df[self.id].dropna()}
            if len(kinds) > 1:
                (a, x), (b, y) = list(kinds.items())[:2]
                raise UserError(
                    f"{what} column {self.id!r} (id_col) mixes {a} and {b} ids (such as {x!r} and {y!r}); give "
                    "every id the same type"
                )
        return df

    def names(self) -> dict[str, str | None]:
        """The column options the API takes (id_col=, ...): what a saved model's folder records."""
        return {"target_col": self.target, "id_col": self.id, "time_col": self.time}


def _check_numbers(df: pd.DataFrame, what: str, column: str) -> None:
    """A value column that holds numbers, or one line naming the first row (its index label) that does not."""
    values = df[column]
    if pd.api.types.is_bool_dtype(values) or not (pd.api.types.is_numeric_dtype(values) or values.dtype == object):
        raise UserError(f"{what} column {column!r} holds {values.dtype} values, not numbers; give a numeric column")
    if values.dtype != object:
        return
    converted = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & converted.isna()
    if bad.any():
        label, value = values.index[bad.to_numpy().argmax()], values[bad].iloc[0]
        raise UserError(
            f"{what} column {column!r} holds {value!r} at index {label!r}, not a number; give numbers "
            "(NaN for a missing value)"
        )


def write_table(df: pd.DataFrame, columns: Columns, path: Path) -> Path:
    """The columns the run reads, as a Parquet file the trainer takes as --dataset (types kept: times stay times)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df[columns.used()].to_parquet(tmp, index=False)
    tmp.replace(path)  # whole or not at all, as every file a run writes
    return path


def future_times(df: pd.DataFrame, columns: Columns, ids: list[str], steps: int) -> list[np.ndarray] | None:
    """The times of the `steps` values after each series' last (by id, as `ids` names them, str), or None
    where there is no time column. A calendar frequency (month ends, business days) is taken from the
    last few times where pandas can name it, else the last interval is repeated."""
    if columns.time is None:
        return None
    keys = df[columns.id].astype(str) if columns.id is not None else pd.Series("", index=df.index)
    out = []
    by_id = {str(k): g for k, g in df[columns.time].groupby(keys.to_numpy(), sort=False)}
    for item in ids:
        times = by_id[item if columns.id is not None else ""].sort_values()
        if len(times) < 2:
            raise UserError(
                f"series {item!r} has one time step, so the times after it are unknown; give it two or more rows"
            )
        last = times.iloc[-1]
        freq = _frequency(times.iloc[-5:]) if pd.api.types.is_datetime64_any_dtype(times) and len(times) >= 3 else None
        if freq is not None:
            out.append(pd.date_range(last, periods=steps + 1, freq=freq)[1:].to_numpy())
        else:
            delta = last - times.iloc[-2]
            out.append(np.array([last + delta * k for k in range(1, steps + 1)]))
    return out


def _frequency(times: pd.Series) -> Any:
    """pandas' name for the spacing of `times` (a string or an offset, as its version gives), or None."""
    import warnings

    with warnings.catch_warnings():  # pandas 3 warns that a later version returns an offset: both work below
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return pd.infer_freq(times)


def original_ids(df: pd.DataFrame, columns: Columns) -> dict[str, Any]:
    """Each series' id as the user's DataFrame holds it, by its text (the trainer names series by text)."""
    if columns.id is None:
        return {}
    return {str(v): v for v in pd.unique(df[columns.id])}
