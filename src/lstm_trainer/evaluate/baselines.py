"""Forecasts that need no training run: the bars a learned model has to clear.

Each takes windows `inputs` [N, T] (the T values before each target, oldest first) and
returns one forecast per window [N], or [N, H] for the H steps after it where `horizon` > 1.
The third baseline, the linear autoregression, is model/linear_ar.py's `LinearAR`: the
forecaster fits the same least squares for its linear skip.
"""

from __future__ import annotations

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
