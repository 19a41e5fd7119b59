"""Forecasts that need no training run: the bars a learned model has to clear.

Each takes windows `inputs` [N, T] (the T values before each target, oldest first) and
returns one forecast per window [N], or [N, H] for the H steps after it where `horizon` > 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def persistence(inputs: np.ndarray, horizon: int = 1) -> np.ndarray:
    """Every step ahead = the last value."""
    last = np.asarray(inputs, dtype=np.float64)[:, -1]
    return last if horizon == 1 else np.repeat(last[:, None], horizon, axis=1)


def seasonal_naive(inputs: np.ndarray, season: int, horizon: int = 1) -> np.ndarray:
    """Each step = the value a whole number of seasons before it, in the last season of the window."""
    assert 1 <= season <= inputs.shape[1], (season, inputs.shape)
    x = np.asarray(inputs, dtype=np.float64)
    if horizon == 1:
        return x[:, -season]
    return x[:, x.shape[1] - season + np.arange(horizon) % season]


@dataclass(frozen=True)
class LinearAR:
    """next = intercept + weights . window: least squares on the training windows, in closed form.

    With targets [N, H] it is H such regressions at once, one per step ahead (a direct forecast).
    """

    weights: np.ndarray  # [T], or [T, H]
    intercept: float | np.ndarray  # a float, or [H]

    @classmethod
    def fit(cls, inputs: np.ndarray, targets: np.ndarray) -> LinearAR:
        x = np.asarray(inputs, dtype=np.float64)
        design = np.hstack([x, np.ones((len(x), 1))])  # [N, T + 1]
        # lstsq returns the minimum-norm solution where windows are collinear (fewer windows
        # than lags, or a perfectly regular series), so the fit never fails.
        solution, *_ = np.linalg.lstsq(design, np.asarray(targets, dtype=np.float64), rcond=None)
        intercept = solution[-1]
        return cls(weights=solution[:-1], intercept=float(intercept) if intercept.ndim == 0 else intercept)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(inputs, dtype=np.float64) @ self.weights + self.intercept
