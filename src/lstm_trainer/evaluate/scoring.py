"""The best model and every baseline scored on validation and test, in the data's units.

Runs once at the end of training with the model exactly as saved (see model/inference.py), so
the figures are those a user of output_dir/model gets. The baselines see the same windows;
the linear AR and MASE's scale are fitted on the training split only. With a horizon H > 1
every forecast covers the H steps after its window, scored overall and per step ahead; a
probabilistic head is also scored on CRPS and interval coverage. Every split is read a chunk
of windows at a time (data/windows.py), so scoring holds forecasts, never the windows
themselves; with several series, each window is normalised with its own series' statistics
and every score is over all series' windows, in the data's units.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator

from lstm_trainer.data import PreparedData, Windows
from lstm_trainer.data.seasonality import seasonal_indices
from lstm_trainer.evaluate import (
    Forecast,
    IntervalScores,
    LinearAR,
    Scores,
    Verdict,
    interval_scores,
    persistence,
    relative_verdict,
    score,
    score_by_step,
    seasonal_naive,
)
from lstm_trainer.evaluate.accuracy import CompetitionScores, mase_scale, per_series_of_windows
from lstm_trainer.model.inference import Predictor

FORECASTS = ("model", "persistence", "linear", "seasonal_naive")
# Training windows the linear AR (and the model's linear skip) is fitted on: all of them up to
# here, evenly spaced ones beyond: 200 K windows of 50 lags are ~80 MB of float64 per copy the
# solver makes and about a second of SVD, where all windows of a 50 M-point series would be 20 GB.
MAX_LINEAR_FIT_WINDOWS = 200_000


@dataclass
class ForecastScores:
    """One forecast on one split: over every step ahead, per step (horizon > 1 only), and its intervals."""

    overall: Scores
    by_step: list[Scores] | None = None
    intervals: IntervalScores | None = None  # a probabilistic model only
    intervals_by_step: list[IntervalScores] | None = None
    # The competitions' measures, each series alone then the mean over series (evaluate/accuracy.py);
    # None on the synthetic reference, one series cut in windows where pooled scores say it all.
    per_series: CompetitionScores | None = None


@dataclass
class ValidationForecast:
    """The saved model's first step ahead on every validation window, in data units: what the pictures show."""

    predictions: np.ndarray  # [N]
    targets: np.ndarray  # [N]
    interval: tuple[np.ndarray, np.ndarray] | None = None  # a probabilistic model's central 80% interval


@dataclass
class SplitScores:
    """The model and every baseline on one split."""

    model: ForecastScores | None  # None where no model was saved, and on processes other than the main one
    persistence: ForecastScores
    linear: ForecastScores
    seasonal_naive: ForecastScores | None  # None without --season
    # M4's Naive2 per series, the reference of every OWA (None where per-series scores are not taken).
    naive2: CompetitionScores | None = None

    def rows(self) -> list[tuple[str, ForecastScores]]:
        """(name, scores) of each forecast scored, in the order tables show them: the model, then the baselines."""
        named = (
            ("model", self.model),
            ("persistence", self.persistence),
            ("seasonal naive", self.seasonal_naive),
            ("linear AR", self.linear),
        )
        return [(name, scores) for name, scores in named if scores is not None]


@dataclass
class RunScores:
    validation: SplitScores | None  # None with --val_size 0: nothing held out
    test: SplitScores | None  # None where the data has no test split (the synthetic sine)
    mase_scale: float
    verdict: Verdict | None  # None for the synthetic reference, graded by its absolute thresholds

    def splits(self) -> list[tuple[str, SplitScores]]:
        """("validation", its scores) and, where the data has one, ("test", its scores)."""
        return [(name, split) for name, split in (("validation", self.validation), ("test", self.test)) if split]


def score_forecast(predictions: np.ndarray, targets: np.ndarray, scale: float, forecast: Any = None) -> ForecastScores:
    """Scores of point `predictions` against `targets` ([N] or [N, H]); `forecast` (an evaluate.Forecast
    of the same windows) adds CRPS and coverage where it is probabilistic."""
    multi = targets.ndim == 2 and targets.shape[1] > 1
    result = ForecastScores(
        score(predictions, targets, scale), score_by_step(predictions, targets, scale) if multi else None
    )
    if forecast is not None and forecast.is_probabilistic:
        steps = targets.reshape(len(targets), -1)  # [N, H]
        result.intervals = interval_scores(forecast, steps)
        if multi:
            by_step = [interval_scores(forecast.step(h), steps[:, h : h + 1]) for h in range(steps.shape[1])]
            result.intervals_by_step = [s for s in by_step if s is not None]
    return result


def linear_fit_windows(windows: Windows) -> np.ndarray:
    """The training windows the linear fits read: every one, or evenly spaced ones past the cap."""
    if len(windows) <= MAX_LINEAR_FIT_WINDOWS:
        return np.arange(len(windows), dtype=np.int64)
    return np.linspace(0, len(windows) - 1, MAX_LINEAR_FIT_WINDOWS).astype(np.int64)


def fit_on_training(train: Windows) -> tuple[LinearAR, float]:
    """The linear AR baseline fitted on the training windows (data units), and MASE's scale: the
    one-step naive MAE pooled over every series' training part. Every split is scored with them."""
    linear = LinearAR.fit(*train.gather(linear_fit_windows(train), normalised=False))
    total, count = train.naive_mae_parts()
    return linear, total / count


def score_run(
    accelerator: Accelerator, data: PreparedData, best: Path, batch_size: int, season: int | None
) -> tuple[RunScores, ValidationForecast | None]:
    """Every split after training, scored for the saved model (main process) and the baselines (all),
    and the model's validation forecast for the pictures (None where no model was scored)."""
    linear, scale = fit_on_training(data.windows["train"])
    by_series = _per_series_setup(data, season)
    with_model = accelerator.is_main_process and (best / "model.safetensors").is_file()
    # The model as saved (fp32, no DeepSpeed): the figures are what a user of output_dir/model gets.
    predictor = Predictor.load(best, accelerator.device) if with_model else None
    splits: dict[str, SplitScores] = {}
    shown = None
    for split in ("validation", "test"):
        if split not in data.windows:
            continue
        windows = data.windows[split]
        horizon = windows.horizon
        parts: dict[str, list[np.ndarray]] = {name: [] for name in ("target", "naive2", "series", *FORECASTS)}
        forecasts: list[Forecast] = []
        for index in windows.chunks():
            given, targets = windows.window_inputs(index)  # data units; targets [n] or [n, H]
            inputs = given.values  # [n, T]
            parts["target"].append(targets.astype(np.float64))
            parts["persistence"].append(persistence(inputs, horizon))
            parts["linear"].append(linear.predict(inputs))
            if season:
                parts["seasonal_naive"].append(seasonal_naive(inputs, season, horizon))
            if by_series is not None:
                into, ahead = windows.with_normalization(*by_series[1:]).factors(index)
                parts["naive2"].append(inputs[:, -1:] / into[:, -1:] * ahead)  # [n, H]
                parts["series"].append(windows.series_of(index))
            if predictor is not None:
                forecasts.append(predictor.forecast(given, batch_size=batch_size))
        joined = {name: np.concatenate(chunks) for name, chunks in parts.items() if chunks}
        targets = joined["target"]
        model = None
        if forecasts:
            forecast = Forecast.concatenate(forecasts)
            model = score_forecast(forecast.point.reshape(targets.shape), targets, scale, forecast)
            if split == "validation":
                bounds = forecast.interval(80)
                first = targets if targets.ndim == 1 else targets[:, 0]
                interval = (bounds[0][:, 0], bounds[1][:, 0]) if bounds is not None else None
                shown = ValidationForecast(forecast.point[:, 0], first, interval)
        scored = SplitScores(
            model=model,
            persistence=score_forecast(joined["persistence"], targets, scale),
            linear=score_forecast(joined["linear"], targets, scale),
            seasonal_naive=score_forecast(joined["seasonal_naive"], targets, scale) if season else None,
        )
        if by_series is not None:
            scales, series = by_series[0], joined["series"]
            reference = per_series_of_windows(series, targets, joined["naive2"], scales)
            scored.naive2 = reference.summary(reference)
            forecast_points = {"persistence": joined["persistence"], "linear": joined["linear"]}
            if season:
                forecast_points["seasonal_naive"] = joined["seasonal_naive"]
            if model is not None:
                forecast_points["model"] = forecast.point.reshape(targets.shape)
            for name, points in forecast_points.items():
                found: ForecastScores = getattr(scored, name)
                found.per_series = per_series_of_windows(series, targets, points, scales).summary(reference)
        splits[split] = scored
    accelerator.wait_for_everyone()
    verdict = None if data.noise_floor is not None else _verdict(splits)
    return RunScores(splits.get("validation"), splits.get("test"), scale, verdict), shown


class SelectionScore:
    """The per-series measure early stopping selects on (--select_on smape or mase), from the point
    forecasts of every validation window as the model sees them (normalised, seasonally adjusted):
    back in the data's units, each series scored alone, then the mean over series, as at the end."""

    def __init__(self, data: PreparedData, season: int | None, measure: str) -> None:
        windows = data.windows["validation"]
        index = np.arange(len(windows), dtype=np.int64)
        setup = _per_series_setup(data, season)
        assert setup is not None and measure in ("smape", "mase"), "real data only (config.py checks)"
        self.measure, self.scales = measure, setup[0]
        self.series = windows.series_of(index)
        given, targets = windows.window_inputs(index)
        self.targets = targets.astype(np.float64).reshape(len(index), -1)
        # The windows' statistics and factors, as the model's forecast reads them (all 0 and 1 where the
        # values are not normalised, as the loop's windows then are not).
        self.loc = given.loc[:, None] if given.loc is not None else 0.0
        self.spread = given.scale[:, None] if given.scale is not None else 1.0
        self.factors = given.seasonal[1] if given.seasonal is not None else np.ones_like(self.targets)

    def __call__(self, points: np.ndarray) -> float:
        """`points` [N] or [N, H]: the normalised point forecasts of the validation windows, in order."""
        points = np.asarray(points, np.float64).reshape(self.targets.shape)
        forecast = (points * self.spread + self.loc) * self.factors
        scores = per_series_of_windows(self.series, self.targets, forecast, self.scales).summary()
        return float(getattr(scores, self.measure))


def _per_series_setup(
    data: PreparedData, season: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Per-series scoring's inputs: each series' MASE scale (its training part's seasonal naive MAE)
    and (loc, scale, seasonal indices) windows need to give Naive2's factors; None on the synthetic sine."""
    if data.noise_floor is not None:
        return None
    train = data.windows["train"]
    spans = train.spans()
    values = data.rows.values
    scales = np.array([mase_scale(values[a:b], season) for a, b in spans])
    seasonal = train.seasonal
    if seasonal is None:  # Naive2 adjusts for the season all the same, where its test finds one
        width = season if season and season > 1 else 1
        seasonal = np.stack([_indices(values[a:b], season, width) for a, b in spans])
    count = len(spans)
    return scales, np.zeros(count), np.ones(count), seasonal


def _indices(history: np.ndarray, season: int | None, width: int) -> np.ndarray:
    indices = seasonal_indices(history, season)
    return indices if len(indices) == width else np.ones(width)


def _verdict(splits: dict[str, SplitScores]) -> Verdict | None:
    """Judged on the held-out test split where there is one: validation chose the model."""
    split = "test" if "test" in splits else "validation"
    if split not in splits:  # --val_size 0 --test_size 0: nothing held out, nothing to judge on
        return None
    scores = splits[split]
    if scores.model is None:
        return None
    # Judged on what the user reads: the per-series mean MASE where series are scored one by one.
    per_series = [scores.model.per_series, scores.persistence.per_series, scores.linear.per_series]
    if all(found is not None for found in per_series):
        model_, persistence_, linear_ = (found.mase for found in per_series if found is not None)
        return relative_verdict(split, model_, persistence_, linear_, "mean per-series MASE")
    model, persistence, linear = scores.model.overall, scores.persistence.overall, scores.linear.overall
    if model.mase is None or persistence.mase is None or linear.mase is None:
        return None
    return relative_verdict(split, model.mase, persistence.mase, linear.mase)
