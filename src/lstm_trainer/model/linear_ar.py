"""A linear autoregression fitted by least squares: the forecaster's linear skip starts from it
(model/forecaster.py), and evaluate/ scores it as the linear baseline. NumPy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
