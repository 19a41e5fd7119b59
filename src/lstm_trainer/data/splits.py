"""Each series cut in time: train first, then validation, then test, by fraction of its own length
or, as the forecasting competitions do, the last `test_size` values of every series for the test
and the `val_size` before them for validation.

Validation and test windows take their inputs from the values before their split (`context`),
so every value of a later split is a target and inputs still always precede their target.
A series whose training part holds a whole window (seq_length + horizon values) trains on
whole windows; a shorter one trains on windows left-padded with its first value, each with at
least one real input (or `min_inputs` where that is set and the series has them), so a short series
is learned from and forecast rather than dropped: a series needs `horizon` + 1 training values
and `horizon` in each later split. The synthetic reference windows each part on its own (no
context), as the reference did. A series too short even for that is dropped and reported by
id; the run stops only when none is left.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstm_trainer.data.rows import SeriesSet
from lstm_trainer.data.windows import Windows
from lstm_trainer.errors import UserError

# How many dropped series a message names before it says "...".
SHOWN_IDS = 5


@dataclass
class SplitPlan:
    """Per series, [start, stop) of each split, in positions within the series, in time order."""

    bounds: dict[str, np.ndarray]  # split -> (S, 2) int64
    context: bool = True  # later splits' first windows read the seq_length values before them
    dropped: list[str] = field(default_factory=list)  # item ids left out, and why (one line)

    def windows(
        self, rows: SeriesSet, split: str, seq_length: int, horizon: int, min_inputs: int | None = None
    ) -> Windows:
        start, stop = self.bounds[split][:, 0], self.bounds[split][:, 1]
        if not self.context:  # each part windowed on its own, whole windows only (the synthetic reference)
            first = start + seq_length
            counts = np.maximum(stop - first - horizon + 1, 0)
            return Windows(rows.values, rows.offsets[:-1] + first, counts, seq_length, horizon)
        first = start + train_inputs(stop - start, seq_length, horizon, min_inputs) if split == "train" else start
        counts = np.maximum(stop - first - horizon + 1, 0)
        series_starts = rows.offsets[:-1]
        return Windows(rows.values, series_starts + first, counts, seq_length, horizon, starts=series_starts)


def train_inputs(length: np.ndarray, seq_length: int, horizon: int, min_inputs: int | None) -> np.ndarray:
    """Real inputs the first training window of each series holds: `min_inputs` where set, else a whole
    window where the training part of `length` values holds one, and 1 (the rest padding) where not.

    A series too short for `min_inputs` still gets one window, with every value before its last
    `horizon` as inputs: the cut keeps only series of `horizon` + 1 training values or more, and
    each of them must train (without a window it had no scale, and forecast nothing sane)."""
    length = np.asarray(length, np.int64)
    if min_inputs is not None:
        return np.clip(length - horizon, 1, min(min_inputs, seq_length)).astype(np.int64)
    return np.where(length >= seq_length + horizon, seq_length, 1).astype(np.int64)


def split_lengths(n: np.ndarray, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """Values per split for series of lengths `n` (round half to even, as Python's round)."""
    n = np.asarray(n, np.int64)
    n_val = np.round(n * val_fraction).astype(np.int64)
    n_test = np.round(n * test_fraction).astype(np.int64)
    lengths = {"train": n - n_val - n_test, "validation": n_val}
    if test_fraction > 0:
        lengths["test"] = n_test
    return lengths


def plan_by_fraction(
    rows: SeriesSet, val_fraction: float, test_fraction: float, seq_length: int, horizon: int, name: str
) -> tuple[SeriesSet, SplitPlan]:
    """The split of every series long enough for it; the others dropped (an error if none is left)."""
    lengths = split_lengths(rows.lengths, val_fraction, test_fraction)
    return _cut(
        rows, lengths, seq_length, horizon, name, f"--val_fraction {val_fraction} / --test_fraction {test_fraction}"
    )


def plan_by_size(
    rows: SeriesSet, val_size: int, test_size: int, seq_length: int, horizon: int, name: str
) -> tuple[SeriesSet, SplitPlan]:
    """The competitions' cut: the last `test_size` values of every series test, the `val_size` before
    them validate, everything before trains; series too short for it dropped (an error if none is left)."""
    n = rows.lengths.astype(np.int64)
    lengths = {"train": n - val_size - test_size}
    if val_size > 0:  # 0: the final fit, nothing held out for validation
        lengths["validation"] = np.full(len(n), val_size, np.int64)
    if test_size > 0:
        lengths["test"] = np.full(len(n), test_size, np.int64)
    return _cut(rows, lengths, seq_length, horizon, name, f"--val_size {val_size} / --test_size {test_size}")


def _cut(
    rows: SeriesSet, lengths: dict[str, np.ndarray], seq_length: int, horizon: int, name: str, cut: str
) -> tuple[SeriesSet, SplitPlan]:
    needs = {split: (1 + horizon if split == "train" else horizon) for split in lengths}
    ok = np.logical_and.reduce([lengths[s] >= needs[s] for s in lengths])
    if not ok.any():
        raise UserError(_too_short(rows, lengths, needs, horizon, name, cut))
    dropped: list[str] = []
    if not ok.all():
        bad = np.flatnonzero(~ok)
        shown = ", ".join(f"{rows.item_ids[s]!r} ({rows.lengths[s]} values)" for s in bad[:SHOWN_IDS])
        more = ", ..." if len(bad) > SHOWN_IDS else ""
        dropped = [
            f"{len(bad)} of {rows.num_series} series dropped, too short for {cut} and --horizon {horizon} (each "
            f"split needs {horizon} values, and training {horizon + 1}): {shown}{more}"
        ]
        rows = rows.select(ok)
        lengths = {split: length[ok] for split, length in lengths.items()}
    bounds, start = {}, np.zeros(rows.num_series, np.int64)
    for split, length in lengths.items():
        bounds[split] = np.stack([start, start + length], axis=1)
        start = start + length
    return rows, SplitPlan(bounds, context=True, dropped=dropped)


def _too_short(
    rows: SeriesSet, lengths: dict[str, np.ndarray], needs: dict[str, int], horizon: int, name: str, cut: str
) -> str:
    if rows.num_series == 1:
        split = next(s for s in lengths if lengths[s][0] < needs[s])
        return (
            f"{name}: the series has {rows.lengths[0]} values, too short for {cut} and --horizon {horizon}: the "
            f"{split} split gets {lengths[split][0]} values and needs at least {needs[split]}; give a longer series, "
            "lower --horizon, or change the split sizes"
        )
    return (
        f"{name}: every one of its {rows.num_series} series is too short for {cut} and --horizon {horizon} (the "
        f"longest has {int(rows.lengths.max())} values; each split needs {horizon}, and training {horizon + 1}); "
        "lower --horizon, or change the split sizes"
    )
