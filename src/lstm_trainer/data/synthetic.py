"""The reference's noisy multi-frequency sine wave: one series row, cut in two.

The training part comes first, the validation part after it, and each is windowed on its
own (no context across the cut), as the reference did: `num_train_samples` and
`num_val_samples` windows, no window crosses the split and no validation target is ever a
training input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstm_trainer.config import DataConfig
from lstm_trainer.data.rows import SeriesSet, from_values
from lstm_trainer.data.splits import SplitPlan

# The fields of DataConfig that shape the synthetic data; recorded with it and on its card.
SYNTHETIC_FIELDS = ("seq_length", "num_train_samples", "num_val_samples", "noise_std")
# Points generated at a time: float64 temporaries of 8 MB each, not of the whole series
# (a 50-million-point series would need ~2 GB of them at once). The values are bit-identical
# to one whole-series call: the same elementwise formula, the same noise stream.
CHUNK = 1 << 20


def series_length(config: DataConfig) -> tuple[int, int]:
    """(training part, whole series) in points: each part holds its windows plus one window's inputs."""
    train_len = config.num_train_samples + config.seq_length + config.horizon - 1
    return train_len, train_len + config.num_val_samples + config.seq_length + config.horizon - 1


def synthetic_series(config: DataConfig, seed: int) -> np.ndarray:
    """sin(0.5t) + 0.5 sin(2t) + 0.3 sin(5t) + N(0, noise_std), long enough for both splits.

    The time step is the reference's: it spans 0..4*pi over the training windows, and the
    validation part continues the same clock.
    """
    train_len, total_len = series_length(config)
    step = 4 * np.pi / (train_len - 1)
    rng = np.random.default_rng(seed)
    out = np.empty(total_len, np.float32)
    for a in range(0, total_len, CHUNK):
        t = np.arange(a, min(a + CHUNK, total_len)) * step
        signal = np.sin(0.5 * t) + 0.5 * np.sin(2.0 * t) + 0.3 * np.sin(5.0 * t)
        out[a : a + len(t)] = signal + rng.normal(0.0, config.noise_std, size=len(t))
    return out


def synthetic_params(config: DataConfig, seed: int) -> dict[str, Any]:
    params = {"source": "synthetic", "seed": seed, **{name: getattr(config, name) for name in SYNTHETIC_FIELDS}}
    if config.horizon > 1:  # the reference's own parameters stay as they were for horizon 1
        params["horizon"] = config.horizon
    return params


def build_synthetic(config: DataConfig, seed: int) -> tuple[SeriesSet, SplitPlan]:
    """The reference series as one row, and its cut: train [0, cut), validation [cut, end)."""
    values = synthetic_series(config, seed)
    cut, total = series_length(config)
    plan = SplitPlan({"train": np.array([[0, cut]]), "validation": np.array([[cut, total]])}, context=False)
    return from_values(values, item_id="synthetic"), plan
