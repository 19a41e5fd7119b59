"""The reference's noisy multi-frequency sine wave, as a windowed `datasets.DatasetDict`.

One series is generated and cut chronologically: the training part comes first, the
validation part after it, and each part is windowed on its own, so no window crosses a
split and no validation target is ever a training input.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, DatasetInfo, Features, Sequence, Value

from lstm_trainer.config import DataConfig

INPUTS, TARGET = "inputs", "target"
SPLITS = ("train", "validation")


def features(seq_length: int) -> Features:
    """One row: `seq_length` past values and the value that follows them."""
    return Features({INPUTS: Sequence(Value("float32"), length=seq_length), TARGET: Value("float32")})


def synthetic_series(config: DataConfig, seed: int) -> np.ndarray:
    """sin(0.5t) + 0.5 sin(2t) + 0.3 sin(5t) + N(0, noise_std), long enough for both splits.

    The time step is the reference's: it spans 0..4*pi over the training windows, and the
    validation part continues the same clock.
    """
    train_len = config.num_train_samples + config.seq_length
    total_len = train_len + config.num_val_samples + config.seq_length
    t = np.arange(total_len) * (4 * np.pi / (train_len - 1))
    signal = np.sin(0.5 * t) + 0.5 * np.sin(2.0 * t) + 0.3 * np.sin(5.0 * t)
    noise = np.random.default_rng(seed).normal(0.0, config.noise_std, size=total_len)
    return (signal + noise).astype(np.float32)


def make_windows(series: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (seq_length inputs, next value) pair inside `series`: len(series) - seq_length rows."""
    assert len(series) > seq_length, "a split must hold at least one window"
    inputs = np.lib.stride_tricks.sliding_window_view(series[:-1], seq_length)  # (N, seq_length)
    targets = series[seq_length:]  # (N,)
    return np.ascontiguousarray(inputs, dtype=np.float32), targets.astype(np.float32)


def windows_to_dataset(series: np.ndarray, seq_length: int, info: DatasetInfo) -> Dataset:
    inputs, targets = make_windows(series, seq_length)
    return Dataset.from_dict({INPUTS: inputs, TARGET: targets}, features=features(seq_length), info=info)


def build_synthetic(config: DataConfig, seed: int) -> DatasetDict:
    """The reference data set; its generation parameters travel in each split's DatasetInfo."""
    series = synthetic_series(config, seed)
    cut = config.num_train_samples + config.seq_length
    params: dict[str, Any] = {"source": "synthetic", "seed": seed, **asdict(config)}
    info = DatasetInfo(
        description=json.dumps(params, sort_keys=True),
        features=features(config.seq_length),
        config_name="synthetic",
    )
    return DatasetDict(
        {
            "train": windows_to_dataset(series[:cut], config.seq_length, info.copy()),
            "validation": windows_to_dataset(series[cut:], config.seq_length, info.copy()),
        }
    )


def dataset_params(dataset: Dataset) -> dict[str, Any]:
    """The generation or source parameters stored with a split (empty if it carries none)."""
    try:
        return dict(json.loads(dataset.info.description or "{}"))
    except json.JSONDecodeError:
        return {}
