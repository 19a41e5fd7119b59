"""Seasonal adjustment as the M4 competition's benchmarks do it: classical multiplicative decomposition,
applied only where a 90% autocorrelation test finds the season.

With `--deseasonalize` each series is divided by its seasonal indices, fitted on its training part,
before the z-score (prepare.py, windows.py); the model learns the adjusted series and its forecast
is multiplied back (model/inference.py). Theta, ETS and N-BEATS' M4 entries all forecast the
adjusted series: on M3 monthly it took a global LSTM's sMAPE from 14.03 to 13.63 (one seed, same
run otherwise; docs/benchmarks.md). Pure NumPy.
"""

from __future__ import annotations

import numpy as np


def is_seasonal(history: np.ndarray, season: int | None) -> bool:
    """M4's test: the autocorrelation at the season lag outside the 90% band (needs 3 seasons of history)."""
    x = np.asarray(history, np.float64)
    if not season or season <= 1 or len(x) < 3 * season:
        return False
    x = x - x.mean()
    denominator = float(np.sum(x * x))
    if denominator == 0:
        return False
    r = np.array([np.sum(x[k:] * x[:-k]) / denominator for k in range(1, season + 1)])
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(x))
    return bool(abs(r[-1]) > limit)


def seasonal_indices(history: np.ndarray, season: int | None) -> np.ndarray:
    """Multiplicative seasonal indices [season] (mean 1) by classical decomposition, indexed by position
    modulo the season from the history's first value; all ones where the test finds no season or a
    value is not positive (a ratio to the trend means nothing there)."""
    x = np.asarray(history, np.float64)
    if not season or season <= 1:
        return np.ones(1)
    if not is_seasonal(x, season) or (x <= 0).any():
        return np.ones(season)
    weights = np.full(season + 1, 1.0 / season)  # the centred 2 x m moving average (m even) ...
    weights[0] = weights[-1] = 0.5 / season
    if season % 2:  # ... or the plain m moving average (m odd)
        weights = np.full(season, 1.0 / season)
    trend = np.convolve(x, weights, mode="valid")
    offset = (len(weights) - 1) // 2
    ratios = x[offset : offset + len(trend)] / trend
    indices = np.array([np.mean(ratios[(j - offset) % season :: season]) for j in range(season)])
    return indices / indices.mean()


def factors(indices: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The seasonal factor at each position (counted from the series' first value), any shape."""
    return np.asarray(indices, np.float64)[np.asarray(positions) % len(indices)]
