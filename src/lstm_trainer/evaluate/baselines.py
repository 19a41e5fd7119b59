"""Forecasts that need no training run: the bars a learned model has to clear.

Each takes windows `inputs` [N, T] (the T values before each target, oldest first) and
returns one forecast per window [N].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def persistence(inputs: np.ndarray) -> np.ndarray:
    """Next = last value."""
    return np.asarray(inputs, dtype=np.float64)[:, -1]


def seasonal_naive(inputs: np.ndarray, season: int) -> np.ndarray:
    """Next = the value one season before it (the target's step minus `season`)."""
    assert 1 <= season <= inputs.shape[1], (season, inputs.shape)
    return np.asarray(inputs, dtype=np.float64)[:, -season]


@dataclass(frozen=True)
class LinearAR:
    """next = intercept + weights . window: least squares on the training windows, in closed form."""

    weights: np.ndarray  # [T]
    intercept: float

    @classmethod
    def fit(cls, inputs: np.ndarray, targets: np.ndarray) -> LinearAR:
        x = np.asarray(inputs, dtype=np.float64)
        design = np.hstack([x, np.ones((len(x), 1))])  # [N, T + 1]
        # lstsq returns the minimum-norm solution where windows are collinear (fewer windows
        # than lags, or a perfectly regular series), so the fit never fails.
        solution, *_ = np.linalg.lstsq(design, np.asarray(targets, dtype=np.float64), rcond=None)
        return cls(weights=solution[:-1], intercept=float(solution[-1]))

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(inputs, dtype=np.float64) @ self.weights + self.intercept
