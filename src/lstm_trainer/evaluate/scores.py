"""MSE, MAE and MASE of forecasts, in the data's own units: over every step ahead, or per step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    mse: float
    mae: float
    # MAE over the training split's one-step naive MAE (Hyndman & Koehler 2006): below 1 beats
    # what "next = last" achieved in sample, and figures compare across series and units.
    # None where the training split never changes (the scale is 0).
    mase: float | None


def naive_scale(train_values: np.ndarray) -> float:
    """The in-sample MAE of the one-step naive forecast on the training split: MASE's denominator."""
    values = np.asarray(train_values, dtype=np.float64)
    assert values.ndim == 1 and len(values) >= 2, values.shape
    return float(np.mean(np.abs(np.diff(values))))


def score(predictions: np.ndarray, targets: np.ndarray, scale: float) -> Scores:
    """Scores of `predictions` against `targets` ([N] or [N, H], every value counted once), MASE
    relative to `scale` (see naive_scale: the one-step naive MAE, for every step ahead, as M4 does)."""
    predictions, targets = np.asarray(predictions, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    assert predictions.shape == targets.shape, (predictions.shape, targets.shape)
    error = (predictions - targets).reshape(-1)
    assert len(error) > 0, error.shape
    mae = float(np.mean(np.abs(error)))
    return Scores(mse=float(np.mean(error**2)), mae=mae, mase=mae / scale if scale > 0 else None)


def score_by_step(predictions: np.ndarray, targets: np.ndarray, scale: float) -> list[Scores]:
    """One `Scores` per step ahead, for `predictions` and `targets` [N, H]."""
    return [score(predictions[:, h], targets[:, h], scale) for h in range(targets.shape[1])]
