"""The reference's noisy multi-frequency sine wave, as a windowed `datasets.DatasetDict`.

One series is generated and cut chronologically: the training part comes first, the
validation part after it, and each part is windowed on its own, so no window crosses a
split and no validation target is ever a training input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from datasets import DatasetDict

from lstm_trainer.config import DataConfig
from lstm_trainer.data.windows import params_info, windows_to_dataset

# The fields of DataConfig that shape the synthetic data; recorded with it and on its card.
SYNTHETIC_FIELDS = ("seq_length", "num_train_samples", "num_val_samples", "noise_std")


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


def synthetic_params(config: DataConfig, seed: int) -> dict[str, Any]:
    return {"source": "synthetic", "seed": seed, **{name: getattr(config, name) for name in SYNTHETIC_FIELDS}}


def build_synthetic(config: DataConfig, seed: int) -> DatasetDict:
    """The reference data set; its generation parameters travel in each split's DatasetInfo."""
    series = synthetic_series(config, seed)
    cut = config.num_train_samples + config.seq_length
    info = params_info(synthetic_params(config, seed), config.seq_length, config.horizon)
    return DatasetDict(
        {
            "train": windows_to_dataset(series[:cut], config.seq_length, info.copy(), config.horizon),
            "validation": windows_to_dataset(series[cut:], config.seq_length, info.copy(), config.horizon),
        }
    )
