"""The best model and every baseline scored on validation and test, in the data's units.

Runs once at the end of training with the model exactly as saved (see inference.py), so
the figures are those a user of output_dir/model gets. The baselines see the same windows;
the linear AR and MASE's scale are fitted on the training split only. With a horizon H > 1
every forecast covers the H steps after its window, scored overall and per step ahead; a
probabilistic head is also scored on CRPS and interval coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator

from lstm_trainer.data import INPUTS, TARGET, PreparedData, split_values
from lstm_trainer.evaluate import (
    COVERAGES,
    IntervalScores,
    LinearAR,
    Scores,
    Verdict,
    interval_scores,
    naive_scale,
    persistence,
    relative_verdict,
    score,
    score_by_step,
    seasonal_naive,
)
from lstm_trainer.inference import predict

# all_results.json names the splits short: val_mse, persistence_test_mase, ...
SPLIT_KEYS = {"validation": "val", "test": "test"}
FORECASTS = ("model", "persistence", "linear", "seasonal_naive")


@dataclass
class ForecastScores:
    """One forecast on one split: over every step ahead, per step (horizon > 1 only), and its intervals."""

    overall: Scores
    by_step: list[Scores] | None = None
    intervals: IntervalScores | None = None  # a probabilistic model only
    intervals_by_step: list[IntervalScores] | None = None


@dataclass
class SplitScores:
    model: ForecastScores | None  # None where no model was saved, and on processes other than the main one
    persistence: ForecastScores
    linear: ForecastScores
    seasonal_naive: ForecastScores | None  # None without --season


@dataclass
class RunScores:
    splits: dict[str, SplitScores]
    mase_scale: float
    verdict: Verdict | None  # None for the synthetic reference, graded by its absolute thresholds

    def results(self) -> dict[str, Any]:
        """Flat keys for all_results.json: val_mae, linear_test_mase, seasonal_naive_val_mse, ...

        Per-step lists (`val_mse_by_step`, ...) only for a horizon > 1, and `val_crps`,
        `val_coverage_80`, ... only for a probabilistic model: a reference run's file is as before.
        """
        flat: dict[str, Any] = {"mase_scale": self.mase_scale}
        for split, key in SPLIT_KEYS.items():
            scores = self.splits.get(split)
            for name in FORECASTS:
                found: ForecastScores | None = getattr(scores, name) if scores is not None else None
                prefix = "" if name == "model" else f"{name}_"
                for metric in fields(Scores):
                    flat[f"{prefix}{key}_{metric.name}"] = getattr(found.overall, metric.name) if found is not None else None
                if found is not None and found.by_step is not None:
                    for metric in fields(Scores):
                        flat[f"{prefix}{key}_{metric.name}_by_step"] = [getattr(s, metric.name) for s in found.by_step]
                if found is not None and found.intervals is not None:
                    flat.update(_interval_keys(f"{prefix}{key}", found.intervals, found.intervals_by_step))
        flat["verdict"] = self.verdict.text if self.verdict is not None else None
        return flat


def _interval_keys(prefix: str, scores: IntervalScores, by_step: list[IntervalScores] | None) -> dict[str, Any]:
    flat: dict[str, Any] = {f"{prefix}_crps": scores.crps}
    flat.update({f"{prefix}_coverage_{level}": scores.coverage[level] for level in COVERAGES})
    if by_step is not None:
        flat[f"{prefix}_crps_by_step"] = [s.crps for s in by_step]
        flat.update({f"{prefix}_coverage_{level}_by_step": [s.coverage[level] for s in by_step] for level in COVERAGES})
    return flat


def score_forecast(predictions: np.ndarray, targets: np.ndarray, scale: float, forecast: Any = None) -> ForecastScores:
    """Scores of point `predictions` against `targets` ([N] or [N, H]); `forecast` (an evaluate.Forecast
    of the same windows) adds CRPS and coverage where it is probabilistic."""
    multi = targets.ndim == 2 and targets.shape[1] > 1
    result = ForecastScores(score(predictions, targets, scale), score_by_step(predictions, targets, scale) if multi else None)
    if forecast is not None and forecast.is_probabilistic:
        steps = targets.reshape(len(targets), -1)  # [N, H]
        result.intervals = interval_scores(forecast, steps)
        if multi:
            by_step = [interval_scores(forecast.step(h), steps[:, h : h + 1]) for h in range(steps.shape[1])]
            result.intervals_by_step = [s for s in by_step if s is not None]
    return result


def score_run(
    accelerator: Accelerator, data: PreparedData, best: Path, batch_size: int, season: int | None
) -> RunScores:
    """Every split after training, scored for the saved model (main process) and the baselines (all)."""
    train = data.windows["train"].with_format("numpy")[:]
    scale = naive_scale(split_values(data.windows["train"]))
    linear = LinearAR.fit(train[INPUTS], train[TARGET])
    splits: dict[str, SplitScores] = {}
    for split in SPLIT_KEYS:
        if split not in data.windows:
            continue
        rows = data.windows[split].with_format("numpy")[:]  # data units
        inputs, targets = rows[INPUTS], rows[TARGET].astype(np.float64)
        horizon = 1 if targets.ndim == 1 else targets.shape[1]
        model = None
        if accelerator.is_main_process and (best / "model.safetensors").is_file():
            forecast = predict(best, inputs, batch_size, accelerator.device)
            model = score_forecast(forecast.point.reshape(targets.shape), targets, scale, forecast)
        splits[split] = SplitScores(
            model=model,
            persistence=score_forecast(persistence(inputs, horizon), targets, scale),
            linear=score_forecast(linear.predict(inputs), targets, scale),
            seasonal_naive=score_forecast(seasonal_naive(inputs, season, horizon), targets, scale) if season else None,
        )
    accelerator.wait_for_everyone()
    return RunScores(splits, scale, None if data.noise_floor is not None else _verdict(splits))


def _verdict(splits: dict[str, SplitScores]) -> Verdict | None:
    """Judged on the held-out test split where there is one: validation chose the model."""
    split = "test" if "test" in splits else "validation"
    scores = splits[split]
    if scores.model is None:
        return None
    model, persistence_, linear = scores.model.overall, scores.persistence.overall, scores.linear.overall
    if None in (model.mase, persistence_.mase, linear.mase):
        return None
    return relative_verdict(split, model.mase, persistence_.mase, linear.mase)  # type: ignore[arg-type]
