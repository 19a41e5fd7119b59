"""Windows: the rows the model trains on, `seq_length` past values and the value after them
(or the `horizon` values after them: target [H] instead of a number, see `make_windows`).

Every source (the synthetic sine, a file, a folder, the Hub) ends up as a `DatasetDict` of
these rows, in the data's own units, with the source's parameters in each split's
`DatasetInfo.description` (JSON), so they travel with `save_to_disk`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from datasets import Dataset, DatasetInfo, Features, Sequence, Value

from lstm_trainer import metrics

INPUTS, TARGET = "inputs", "target"
SPLITS = ("train", "validation")
# Splits a run uses, in time order; "test" is optional and scored once at the end.
ALL_SPLITS = ("train", "validation", "test")


def features(seq_length: int, horizon: int = 1) -> Features:
    """One row: `seq_length` past values and the value that follows them (the `horizon` values, H > 1)."""
    target = Value("float32") if horizon == 1 else Sequence(Value("float32"), length=horizon)
    return Features({INPUTS: Sequence(Value("float32"), length=seq_length), TARGET: target})


def make_windows(series: np.ndarray, seq_length: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every (seq_length inputs, next value) pair inside `series`: len(series) - seq_length rows.

    With `horizon` H > 1 the target is the H values after the inputs, [N, H], and there are
    H - 1 rows fewer (the last targets must lie inside the series). The contract the rest of
    the package relies on: target [N] for H == 1, exactly as before, and [N, H] otherwise.
    """
    assert len(series) >= seq_length + horizon, "a split must hold at least one window"
    n = len(series) - seq_length - horizon + 1
    inputs = np.lib.stride_tricks.sliding_window_view(series[: seq_length + n - 1], seq_length)  # (N, seq_length)
    if horizon == 1:
        targets = series[seq_length:]  # (N,)
    else:
        targets = np.lib.stride_tricks.sliding_window_view(series[seq_length:], horizon)  # (N, H)
    return np.ascontiguousarray(inputs, dtype=np.float32), np.ascontiguousarray(targets, dtype=np.float32)


def windows_to_dataset(series: np.ndarray, seq_length: int, info: DatasetInfo, horizon: int = 1) -> Dataset:
    inputs, targets = make_windows(series, seq_length, horizon)
    return Dataset.from_dict({INPUTS: inputs, TARGET: targets}, features=features(seq_length, horizon), info=info)


def target_horizon(dataset: Dataset) -> int:
    """Values per target: 1 for next-step windows, H for windows built with a horizon."""
    feature = dataset.features[TARGET]
    return int(getattr(feature, "length", 1)) if isinstance(feature, Sequence) else 1


def params_info(params: dict[str, Any], seq_length: int, horizon: int = 1) -> DatasetInfo:
    """A DatasetInfo that carries the source parameters (as JSON) with a split."""
    return DatasetInfo(
        description=json.dumps(params, sort_keys=True),
        features=features(seq_length, horizon),
        config_name=str(params.get("source", "default")),
    )


def dataset_params(dataset: Dataset) -> dict[str, Any]:
    """The generation or source parameters stored with a split (empty if it carries none)."""
    try:
        return dict(json.loads(dataset.info.description or "{}"))
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}


def window_length(dataset: Dataset) -> int:
    feature = dataset.features[INPUTS]
    length = getattr(feature, "length", -1)
    return int(length) if length and length > 0 else len(dataset[0][INPUTS])


def split_values(dataset: Dataset) -> np.ndarray:
    """The stretch of series a split's windows were cut from: the first window, then every target.

    Windows are consecutive (stride 1), so this is exactly the split's part of the series; it is
    what normalisation statistics and summaries are computed on, whatever the source.
    """
    rows = dataset.with_format("numpy")
    first = np.asarray(rows[0][INPUTS], dtype=np.float64)
    targets = np.asarray(rows.with_format("numpy", columns=[TARGET])[:][TARGET], dtype=np.float64)
    if targets.ndim == 2:  # horizon windows: each row's first target, then the last row's others
        targets = np.concatenate([targets[:, 0], targets[-1, 1:]])
    return np.concatenate([first, targets])


def persistence_mse(dataset: Dataset) -> float:
    """MSE of the naive forecast 'next value = last value' over a split's windows."""
    rows = dataset.with_format("numpy")[:]
    return metrics.persistence_mse(rows[INPUTS], rows[TARGET])
