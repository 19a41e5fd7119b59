"""What a run trains on: the windows, the normalisation fitted on their training split, and the
windows as the model sees them.

Statistics come from the training split only (validation and test values never shape the
transform). The windows a source yields, and what `build` / `push` write, stay in the data's
own units; the z-score is applied here, in memory, for the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from lstm_trainer.config import DataConfig
from lstm_trainer.data.sources import load_windows
from lstm_trainer.data.windows import INPUTS, TARGET, dataset_params, persistence_mse, split_values, window_length
from lstm_trainer.errors import UserError
from lstm_trainer.normalization import Normalization


@dataclass
class PreparedData:
    windows: DatasetDict  # train / validation / optional test, in the data's units
    normalization: Normalization
    model_inputs: DatasetDict  # the same windows, normalised: what the loaders read
    params: dict[str, Any]  # the source's generation or reading parameters

    def persistence_mse(self, split: str) -> float | None:
        """'Next value = last value' on a split, in data units (None if there is no such split)."""
        return persistence_mse(self.windows[split]) if split in self.windows else None

    @property
    def noise_floor(self) -> float | None:
        """For synthetic data the best possible MSE is the noise variance; unknown otherwise."""
        if self.params.get("source") == "synthetic":
            return float(self.params["noise_std"]) ** 2
        return None

    def describe(self) -> str:
        sizes = ", ".join(f"{split} {len(data)}" for split, data in self.windows.items())
        length = window_length(self.windows["train"])
        norm = self.normalization
        scaling = (
            "values as they are (no normalisation)"
            if norm.is_identity
            else f"z-score from the train split (mean {norm.mean:.6g}, std {norm.std:.6g}); every MSE in the data's units"
        )
        return f"  data {source_text(self.params)}: {sizes} windows of {length} steps; {scaling}"


def prepare_data(config: DataConfig, seed: int) -> PreparedData:
    windows = load_windows(config, seed)
    params = dataset_params(windows["train"])
    normalization = choose_normalization(windows, config, params)
    return PreparedData(windows, normalization, normalize(windows, normalization), params)


def choose_normalization(windows: DatasetDict, config: DataConfig, params: dict[str, Any]) -> Normalization:
    """z-score fitted on the training split; none for the reference's synthetic data under `auto`.

    The sine wave is already centred with unit-order amplitude, and the reference trains on it
    raw: normalising would change its loss values and nothing else, so `auto` leaves it alone.
    """
    mode = config.normalization
    if mode == "auto":
        mode = "none" if params.get("source") == "synthetic" else "zscore"
    if mode == "none":
        return Normalization.identity()
    values = split_values(windows["train"])
    if float(values.std()) == 0.0:
        raise UserError(
            f"{config.dataset}: the training split is constant (every value {values[0]:g}), so it cannot be "
            "z-scored and there is nothing to learn; check --data_column, or pass --normalization none"
        )
    return Normalization.fit(values)


def normalize(windows: DatasetDict, normalization: Normalization) -> DatasetDict:
    """Every split through the same transform, in memory (nothing is written to the source's folder)."""
    if normalization.is_identity:
        return windows

    def one(split: Dataset) -> Dataset:
        rows = split.with_format("numpy")[:]
        scaled = {name: normalization.apply(rows[name].astype(np.float64)).astype(np.float32) for name in (INPUTS, TARGET)}
        return Dataset.from_dict(scaled, features=split.features, info=split.info.copy())

    return DatasetDict({name: one(split) for name, split in windows.items()})


def source_text(params: dict[str, Any]) -> str:
    """A short human description of where windows came from."""
    source = params.get("source")
    if source == "synthetic":
        return f"synthetic sine (seed {params.get('seed')}, noise_std {params.get('noise_std')})"
    if source in ("file", "folder", "hub"):
        where = params.get("file") or params.get("folder") or params.get("repo_id")
        return f"{where}, column {params.get('data_column')!r}"
    return "windows"
