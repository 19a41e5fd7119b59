"""The forecasting competitions' accuracy measures: each series scored alone, then the mean over series.

As M3, Tourism and M4 define them (Makridakis & Hibon 2000; Athanasopoulos et al. 2011;
Makridakis et al. 2020), so a figure here reads next to the published tables:

    sMAPE  mean over the forecast steps of 200 |y - f| / (|y| + |f|)  (0 where both are 0)
    MASE   mean |y - f| over the in-sample MAE of the seasonal naive forecast (lag = the season;
           lag 1 where there is no season or the history is not longer than one)
    OWA    (sMAPE / sMAPE of Naive2 + MASE / MASE of Naive2) / 2, each term a mean over series
           (M4's overall weighted average: below 1 beats Naive2)

Naive2 is the naive forecast of the seasonally adjusted series (classical multiplicative
decomposition, applied where a 90% autocorrelation test finds the season), M4's benchmark.
Pure NumPy: histories, actuals and forecasts in, records out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_trainer.data.seasonality import seasonal_indices


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """One series' sMAPE in percent (0 to 200)."""
    y, f = np.asarray(actual, np.float64), np.asarray(forecast, np.float64)
    denominator = np.abs(y) + np.abs(f)
    terms = np.divide(200.0 * np.abs(y - f), denominator, out=np.zeros_like(y), where=denominator > 0)
    return float(terms.mean())


def mase_scale(history: np.ndarray, season: int | None) -> float:
    """The in-sample MAE of the seasonal naive forecast (lag `season`, 1 where the history is too short)."""
    x = np.asarray(history, np.float64)
    lag = season if season and len(x) > season else 1
    if len(x) <= lag:
        return float("nan")
    return float(np.mean(np.abs(x[lag:] - x[:-lag])))


def mase(history: np.ndarray, actual: np.ndarray, forecast: np.ndarray, season: int | None) -> float:
    """One series' MASE; NaN where its history never changes (nothing to scale by)."""
    scale = mase_scale(history, season)
    error = float(np.mean(np.abs(np.asarray(actual, np.float64) - np.asarray(forecast, np.float64))))
    return error / scale if scale > 0 else float("nan")


def naive2(history: np.ndarray, horizon: int, season: int | None) -> np.ndarray:
    """M4's Naive2: the last seasonally adjusted value, carried forward and reseasonalised [horizon]."""
    x = np.asarray(history, np.float64)
    indices = seasonal_indices(x, season)
    phase = np.arange(len(x) + horizon) % len(indices)
    return np.full(horizon, x[-1] / indices[phase[len(x) - 1]]) * indices[phase[len(x) :]]


@dataclass(frozen=True)
class CompetitionScores:
    """One method's forecasts of every series, each series scored alone, then averaged over series."""

    smape: float
    mase: float  # over the series whose history changes (MASE is undefined on the others)
    owa: float | None  # relative to Naive2; None where Naive2 was not scored, or forecast without error
    series: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {"smape": self.smape, "mase": self.mase, "owa": self.owa, "series": self.series}


@dataclass(frozen=True)
class PerSeries:
    """sMAPE and MASE [S] of each series: what the means are taken of, and the per-series CSV."""

    smape: np.ndarray
    mase: np.ndarray

    def summary(self, naive2: PerSeries | None = None) -> CompetitionScores:
        mean_smape, mean_mase = float(np.mean(self.smape)), float(np.nanmean(self.mase))
        owa = None
        if naive2 is not None:
            reference = float(np.mean(naive2.smape)), float(np.nanmean(naive2.mase))
            # A Naive2 without error (series constant over the horizon) leaves nothing to be relative to.
            if min(reference) > 0:
                owa = 0.5 * (mean_smape / reference[0] + mean_mase / reference[1])
        return CompetitionScores(mean_smape, mean_mase, owa, len(self.smape))


def per_series(
    histories: list[np.ndarray], actuals: list[np.ndarray], forecasts: list[np.ndarray], season: int | None
) -> PerSeries:
    """sMAPE and MASE of each series' forecast against its actual future, MASE scaled by its own history."""
    assert len(histories) == len(actuals) == len(forecasts)
    return PerSeries(
        np.array([smape(y, f) for y, f in zip(actuals, forecasts, strict=True)]),
        np.array([mase(x, y, f, season) for x, y, f in zip(histories, actuals, forecasts, strict=True)]),
    )


def naive2_per_series(
    histories: list[np.ndarray], actuals: list[np.ndarray], season: int | None
) -> tuple[PerSeries, list[np.ndarray]]:
    """Naive2's scores on every series and its forecasts: the reference OWA is relative to."""
    forecasts = [naive2(x, len(y), season) for x, y in zip(histories, actuals, strict=True)]
    return per_series(histories, actuals, forecasts, season), forecasts


def per_series_of_windows(
    series: np.ndarray, actual: np.ndarray, forecast: np.ndarray, scales: np.ndarray
) -> PerSeries:
    """Many windows of many series: each window's sMAPE and MAE over its `scales[series]` (MASE),
    averaged over each series' windows first, then kept per series (series without windows left out).

    `series` [N] is each window's series index, `actual` and `forecast` [N] or [N, H], `scales` [S].
    """
    y = np.asarray(actual, np.float64).reshape(len(series), -1)
    f = np.asarray(forecast, np.float64).reshape(len(series), -1)
    denominator = np.abs(y) + np.abs(f)
    terms = np.divide(200.0 * np.abs(y - f), denominator, out=np.zeros_like(y), where=denominator > 0)
    counts = np.bincount(series, minlength=len(scales)).astype(np.float64)
    have = counts > 0
    smapes = np.bincount(series, terms.mean(axis=1), minlength=len(scales))[have] / counts[have]
    maes = np.bincount(series, np.abs(y - f).mean(axis=1), minlength=len(scales))[have] / counts[have]
    scale = np.asarray(scales, np.float64)[have]
    mases = np.divide(maes, scale, out=np.full_like(maes, np.nan), where=scale > 0)
    return PerSeries(smapes, mases)
