"""Each series cut in time: train first, then validation, then test, by fraction of its own length.

Validation and test windows take their inputs from the values before their split (`context`),
so every value of a later split is a target and inputs still always precede their target:
only the training part needs a whole window (seq_length + horizon values), the others need
`horizon` values each. The synthetic reference windows each part on its own (no context), as
the reference did. A series too short for its splits is dropped and reported by id; the run
stops only when none is left.
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

    def windows(self, rows: SeriesSet, split: str, seq_length: int, horizon: int) -> Windows:
        start, stop = self.bounds[split][:, 0], self.bounds[split][:, 1]
        own_inputs = split == "train" or not self.context
        first = start + (seq_length if own_inputs else 0)
        counts = np.maximum(stop - first - horizon + 1, 0)
        return Windows(rows.values, rows.offsets[:-1] + first, counts, seq_length, horizon)


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
    needs = {split: (seq_length + horizon if split == "train" else horizon) for split in lengths}
    ok = np.logical_and.reduce([lengths[s] >= needs[s] for s in lengths])
    if not ok.any():
        raise UserError(_too_short(rows, lengths, needs, val_fraction, test_fraction, seq_length, horizon, name))
    dropped: list[str] = []
    if not ok.all():
        bad = np.flatnonzero(~ok)
        shown = ", ".join(f"{rows.item_ids[s]!r} ({rows.lengths[s]} values)" for s in bad[:SHOWN_IDS])
        more = ", ..." if len(bad) > SHOWN_IDS else ""
        dropped = [
            f"{len(bad)} of {rows.num_series} series dropped, too short for --seq_length {seq_length}"
            f"{f' and --horizon {horizon}' if horizon > 1 else ''} (each needs at least "
            f"{_minimum(needs, val_fraction, test_fraction)} values): {shown}{more}"
        ]
        rows = rows.select(ok)
        lengths = {split: length[ok] for split, length in lengths.items()}
    bounds, start = {}, np.zeros(rows.num_series, np.int64)
    for split, length in lengths.items():
        bounds[split] = np.stack([start, start + length], axis=1)
        start = start + length
    return rows, SplitPlan(bounds, context=True, dropped=dropped)


def _minimum(needs: dict[str, int], val_fraction: float, test_fraction: float) -> int:
    minimum = sum(needs.values())
    while True:
        lengths = split_lengths(np.array([minimum]), val_fraction, test_fraction)
        if all(int(lengths[s][0]) >= needs[s] for s in needs):
            return minimum
        minimum += 1


def _too_short(
    rows: SeriesSet,
    lengths: dict[str, np.ndarray],
    needs: dict[str, int],
    val_fraction: float,
    test_fraction: float,
    seq_length: int,
    horizon: int,
    name: str,
) -> str:
    minimum = _minimum(needs, val_fraction, test_fraction)
    window = f"seq_length + {horizon}" if horizon > 1 else "seq_length + 1"
    if rows.num_series == 1:
        split = next(s for s in lengths if lengths[s][0] < needs[s])
        return (
            f"{name}: the series has {rows.lengths[0]} values, too short for --seq_length {seq_length}: the {split} "
            f"split gets {lengths[split][0]} values and needs at least {needs[split]}"
            f"{f' ({window})' if split == 'train' else ''}; give at least {minimum} "
            f"values, or lower --seq_length, or change --val_fraction / --test_fraction"
        )
    return (
        f"{name}: every one of its {rows.num_series} series is too short for --seq_length {seq_length}"
        f"{f' and --horizon {horizon}' if horizon > 1 else ''} (the longest has {int(rows.lengths.max())} values; "
        f"each needs at least {minimum}); lower --seq_length, or change --val_fraction / --test_fraction"
    )
