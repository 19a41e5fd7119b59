"""Series rows: the layout of the Hub's time-series datasets, one row per series.

    item_id  string           the series' name
    start    timestamp[s]     the time of its first value
    target   list<float32>    its values, oldest first
    feat_dynamic_real (optional) list<list<float32>>: covariates, trained on with --future_covariates feat_dynamic_real

In memory every series lies end to end in one float32 array (`values`), series s being
values[offsets[s]:offsets[s + 1]]: 4 bytes a point, whatever the window length. Read from
an Arrow file (a `save_to_disk` folder, the Hub cache), `values` is the file's own buffer,
memory-mapped, so processes on one machine share one copy in the page cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from datasets import Dataset, Features, Sequence, Value

from lstm_trainer.data.covariates import CovariateNames, Covariates
from lstm_trainer.errors import UserError

ITEM_ID, START, TARGET_COLUMN, FEAT_DYNAMIC_REAL = "item_id", "start", "target", "feat_dynamic_real"
# Where a source has no clock (the synthetic sine, a table without --time_column), series start here
# and step one second a point: the layout needs a timestamp, and this one says "no real time".
NO_CLOCK = np.datetime64("1970-01-01T00:00:00", "s")


def series_features(covariates: bool = False) -> Features:
    """The layout's columns; `covariates`: with feat_dynamic_real, a list of series per row."""
    columns = {ITEM_ID: Value("string"), START: Value("timestamp[s]"), TARGET_COLUMN: Sequence(Value("float32"))}
    if covariates:
        columns[FEAT_DYNAMIC_REAL] = Sequence(Sequence(Value("float32")))
    return Features(columns)


@dataclass
class SeriesSet:
    """Many univariate series, end to end in one array, every value finite."""

    values: np.ndarray  # (P,) float32: all points of all series
    offsets: np.ndarray  # (S + 1,) int64: series s is values[offsets[s] : offsets[s + 1]]
    item_ids: list[str]
    starts: np.ndarray  # (S,) datetime64[s]: the time of each series' first value
    covariates: Covariates | None = None  # what drives the series, point for point (covariates.py)

    def __post_init__(self) -> None:
        assert self.values.dtype == np.float32 and self.values.ndim == 1, self.values.dtype
        assert len(self.offsets) == len(self.item_ids) + 1 == len(self.starts) + 1
        assert self.covariates is None or len(self.covariates.dynamic) == len(self.values)

    @property
    def num_series(self) -> int:
        return len(self.item_ids)

    @property
    def num_points(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def series(self, s: int) -> np.ndarray:
        return self.values[self.offsets[s] : self.offsets[s + 1]]

    def select(self, keep: np.ndarray) -> SeriesSet:
        """Only the series where `keep` (S,) is True; a copy of their values only if some are dropped."""
        if keep.all():
            return self
        chosen = np.flatnonzero(keep)
        parts = [self.series(int(s)) for s in chosen]
        values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts], dtype=np.int64)]).astype(np.int64)
        covariates = None if self.covariates is None else self.covariates.select(keep, self.offsets)
        return SeriesSet(values, offsets, [self.item_ids[s] for s in chosen], self.starts[chosen], covariates)

    def to_dataset(self, stops: np.ndarray | None = None, info: object | None = None) -> Dataset:
        """The rows as a `datasets.Dataset` (Hub layout); `stops` (S,) cuts each series at that length.

        Built from Arrow buffers directly (no Python list per value): a list array over the
        values with the series' offsets.
        """
        stops = self.lengths if stops is None else stops
        starts = self.offsets[:-1]
        if np.array_equal(stops, self.lengths) and self.offsets[0] == 0:
            flat, offsets = self.values, self.offsets
        else:
            flat = np.concatenate([self.values[a : a + n] for a, n in zip(starts, stops, strict=True)])
            offsets = np.concatenate([[0], np.cumsum(stops)]).astype(np.int64)
        assert offsets[-1] < 2**31, "a split of 2^31 points or more needs a large_list column"
        target = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat, type=pa.float32()))
        columns = {
            ITEM_ID: pa.array(self.item_ids, type=pa.string()),
            START: pa.array(self.starts.astype("datetime64[s]"), type=pa.timestamp("s")),
            TARGET_COLUMN: target,
        }
        if self.covariates is not None and self.covariates.dynamic.shape[1]:
            columns[FEAT_DYNAMIC_REAL] = self._dynamic_real(stops)
        return Dataset(pa.table(columns), info=info)

    def _dynamic_real(self, stops: np.ndarray) -> pa.ListArray:
        """The covariates as the layout's feat_dynamic_real: per series, a list of C lists of its `stops` values."""
        assert self.covariates is not None
        dynamic = self.covariates.dynamic  # (P, C)
        channels = dynamic.shape[1]
        flat = np.concatenate(
            [dynamic[a : a + n].T.reshape(-1) for a, n in zip(self.offsets[:-1], stops, strict=True)]
        ).astype(np.float32)
        inner = np.concatenate([[0], np.cumsum(np.repeat(stops, channels))]).astype(np.int32)  # a list per channel
        outer = (np.arange(len(stops) + 1) * channels).astype(np.int32)  # C lists per series
        return pa.ListArray.from_arrays(pa.array(outer), pa.ListArray.from_arrays(pa.array(inner), pa.array(flat)))


def from_values(values: np.ndarray, item_id: str = "0", start: np.datetime64 = NO_CLOCK) -> SeriesSet:
    """One series."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    return SeriesSet(values, np.array([0, len(values)], np.int64), [item_id], np.array([start], "datetime64[s]"))


def flat_values(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A list<float> Arrow column as (values, offsets), without copying where Arrow allows.

    One chunk of float32 without nulls (what `save_to_disk` writes for up to 1,000 series, and
    the Hub's Parquet files give once cached) is used in place: a view of the memory-mapped
    file. Several chunks, or other float types, are copied once into one float32 array.
    """
    chunks = [chunk for chunk in column.chunks if len(chunk)]
    if len(chunks) == 1:
        chunk = chunks[0]
        first, last = chunk.offsets[0].as_py(), chunk.offsets[-1].as_py()
        flat = chunk.values.slice(first, last - first)
        if flat.type == pa.float32() and flat.null_count == 0:
            offsets = chunk.offsets.to_numpy().astype(np.int64) - first
            return flat.to_numpy(zero_copy_only=True), offsets
    lengths = (
        np.concatenate([np.asarray(chunk.value_lengths().fill_null(0)) for chunk in chunks]) if chunks else np.zeros(0)
    )
    flat_chunks = [chunk.flatten() for chunk in chunks]
    values = (
        np.concatenate([c.cast(pa.float32()).to_numpy(zero_copy_only=False) for c in flat_chunks])
        if flat_chunks
        else np.zeros(0, np.float32)
    )
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return np.ascontiguousarray(values, dtype=np.float32), offsets


def dynamic_real(part: Dataset, name: str, names: CovariateNames, lengths: np.ndarray) -> Covariates:
    """Series rows' covariates (the Hub layout): `feat_dynamic_real`, a list of C series per row, each as
    long as its target. Named as a whole (feat_dynamic_real: all C, called feat_dynamic_real_0 ...) or by
    channel (feat_dynamic_real_1); GluonTS takes them as known in the future, so --future_covariates."""
    if names.static or names.calendar or names.past:
        raise UserError(
            f"{name} holds series rows, whose covariates are {FEAT_DYNAMIC_REAL} (known in the future): name them "
            f"with --future_covariates {FEAT_DYNAMIC_REAL}; past, static and calendar covariates need a table"
        )
    if FEAT_DYNAMIC_REAL not in part.column_names:
        raise UserError(f"{name} has no {FEAT_DYNAMIC_REAL} column, where series rows keep their covariates")
    rows = part.data.table.column(FEAT_DYNAMIC_REAL).to_pylist()
    blocks: list[np.ndarray] = []
    for s, (row, length) in enumerate(zip(rows, lengths, strict=True)):
        block = np.asarray(row if row is not None else [], dtype=np.float64)
        if block.ndim != 2 or block.shape[1] != length or (blocks and block.shape[0] != blocks[0].shape[1]):
            raise UserError(
                f"{name}: {FEAT_DYNAMIC_REAL} of series number {s + 1} is not a list of covariates each as long as "
                f"its target ({length} values) and as many as the other series'; fix the rows"
            )
        if not np.isfinite(block).all():
            raise UserError(
                f"{name}: {FEAT_DYNAMIC_REAL} of series number {s + 1} has missing (NaN) or infinite values; a "
                "covariate needs a value at every step: repair it at the source"
            )
        blocks.append(block.T)  # (length, C)
    dynamic = np.concatenate(blocks) if blocks else np.zeros((0, 0))
    channels = dynamic.shape[1]
    chosen: list[int] = []
    for asked in names.future:
        if asked == FEAT_DYNAMIC_REAL:
            chosen += range(channels)
        elif (
            asked.startswith(f"{FEAT_DYNAMIC_REAL}_")
            and asked.rsplit("_", 1)[1].isdigit()
            and int(asked.rsplit("_", 1)[1]) < channels
        ):
            chosen.append(int(asked.rsplit("_", 1)[1]))
        else:
            raise UserError(
                f"{name} holds series rows: --future_covariates {asked!r} is not {FEAT_DYNAMIC_REAL} or one of its "
                f"{channels} channels ({FEAT_DYNAMIC_REAL}_0 ... {FEAT_DYNAMIC_REAL}_{channels - 1})"
            )
    named = CovariateNames(future=tuple(f"{FEAT_DYNAMIC_REAL}_{k}" for k in chosen))
    if len(set(chosen)) != len(chosen):
        raise UserError(f"--future_covariates names a {FEAT_DYNAMIC_REAL} channel twice; name each once")
    return Covariates(named, dynamic[:, chosen].astype(np.float32), np.zeros((len(lengths), 0), np.float32))
