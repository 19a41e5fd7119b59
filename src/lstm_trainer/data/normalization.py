"""Z-score normalisation: fitted on the training split only, saved beside the model.

The model sees `(x - mean) / std` and predicts in those units; `invert` turns a prediction
back into the data's own units. `normalization.json` sits next to `model.safetensors`, so
whoever loads the model (the trainer's test scoring, a predict command) applies the same
transform. Light on purpose (no torch import): `apply`/`invert` work on floats, NumPy arrays
and tensors alike.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from lstm_trainer.data.seasonality import factors, seasonal_indices

FILE = "normalization.json"
if TYPE_CHECKING:  # for the types only: this module stays torch-free at run time
    import torch

    from lstm_trainer.data.covariates import CovariateScaling

# What apply and invert take, and give back the same kind of: a float, a NumPy array or a tensor.
T = TypeVar("T", float, np.ndarray, "torch.Tensor")


@dataclass(frozen=True)
class Normalization:
    """model value = (value - mean) / std. `Normalization.identity()` leaves values as they are.

    With several series each has its own (mean, std) in `series`, by item_id, fitted on its own
    training part; `mean` and `std` are then those of all training values together, the
    fallback for a series the model never saw.
    """

    mean: float
    std: float
    series: dict[str, tuple[float, float]] | None = None
    # --deseasonalize: each series' multiplicative seasonal indices by item_id, position 0 its first
    # value; the z-score applies to value / index (data/seasonality.py).
    seasonal: dict[str, tuple[float, ...]] | None = None
    # The covariates' names and (mean, std), fitted on the training part (covariates.py); None: none.
    covariates: CovariateScaling | None = None

    def __post_init__(self) -> None:
        assert math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0, (self.mean, self.std)

    @classmethod
    def identity(cls) -> Normalization:
        return cls(0.0, 1.0)

    @classmethod
    def fit(cls, values: np.ndarray) -> Normalization:
        """Mean and (population) standard deviation of `values`, in float64."""
        values = np.asarray(values, dtype=np.float64)
        return cls(float(values.mean()), float(values.std()))

    @property
    def is_identity(self) -> bool:
        return self.mean == 0.0 and self.std == 1.0 and self.series is None and self.seasonal is None

    def seasonal_indices(self, item_id: str, history: np.ndarray) -> np.ndarray | None:
        """The seasonal indices of a series whose `history` starts at its first value: those fitted in
        training for an id it knows, else fitted on `history` the same way. None: no adjustment."""
        if self.seasonal is None:
            return None
        if item_id in self.seasonal:
            return np.asarray(self.seasonal[item_id], np.float64)
        return seasonal_indices(history, len(next(iter(self.seasonal.values()))))

    def for_series(self, item_id: str | None) -> Normalization:
        """The transform of one series (the pooled one for an id it does not know)."""
        if self.series is None or item_id not in self.series:
            return Normalization(self.mean, self.std)
        mean, std = self.series[item_id]
        return Normalization(mean, std)

    def for_history(self, item_id: str, history: np.ndarray, indices: np.ndarray | None) -> Normalization:
        """The transform of one series given its history from its first value: `for_series` for an id it
        knows; for an id a many-series model never saw, the statistics training fits on a series' own
        values (after `indices`, its seasonal factors, where set), so a new series of another scale is
        forecast as a known one of that scale would be. The pooled ones only where the history is constant."""
        if self.series is None or item_id in self.series:
            return self.for_series(item_id)
        values = np.asarray(history, np.float64)
        if indices is not None:  # as training adjusts a series (data/prepare.py)
            values = values / factors(indices, np.arange(len(values)))
        mean, std = float(values.mean()), float(values.std())
        # A NaN or infinite value makes the std NaN: only a finite, positive one scales.
        return Normalization(mean, std) if math.isfinite(std) and std > 0 else self.for_series(None)

    def apply(self, x: T) -> T:
        return (x - self.mean) / self.std

    def invert(self, x: T) -> T:
        return x * self.std + self.mean

    def mse_in_data_units(self, mse: float) -> float:
        """An MSE measured on normalised values, in the data's units (errors scale by std)."""
        return mse * self.std**2

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"mean": self.mean, "std": self.std}
        if self.series is not None:
            record["series"] = {key: {"mean": m, "std": s} for key, (m, s) in self.series.items()}
        if self.seasonal is not None:
            record["seasonal"] = {key: list(v) for key, v in self.seasonal.items()}
        if self.covariates is not None:
            record["covariates"] = self.covariates.to_dict()
        return record

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        record = {**self.to_dict(), "formula": "model value = (value - mean) / std; value = model value * std + mean"}
        path.write_text(json.dumps(record, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Normalization | None:
        """The normalisation saved in `folder`, or None where there is no normalization.json."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            series = record.get("series")  # absent in files written before per-series statistics
            per_series = (
                None if series is None else {str(key): (float(v["mean"]), float(v["std"])) for key, v in series.items()}
            )
            seasonal = record.get("seasonal")
            indices = None if seasonal is None else {str(k): tuple(float(x) for x in v) for k, v in seasonal.items()}
            covariates = None
            if "covariates" in record:
                from lstm_trainer.data.covariates import CovariateScaling

                covariates = CovariateScaling.from_dict(record["covariates"])
            return cls(float(record["mean"]), float(record["std"]), per_series, indices, covariates)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AssertionError):
            from lstm_trainer.errors import UserError

            raise UserError(f'model file {path} is corrupted (needs finite "mean" and positive "std")') from None
