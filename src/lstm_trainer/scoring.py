"""The best model and every baseline scored on validation and test, in the data's units.

Runs once at the end of training with the model exactly as saved (see report.predict), so
the figures are those a user of output_dir/model gets. The baselines see the same windows;
the linear AR and MASE's scale are fitted on the training split only. Every split is read a
chunk of windows at a time (data/windows.py), so scoring holds one figure per window, never
the windows themselves; with several series, each window is normalised with its own series'
statistics and every score is over all series' windows, in the data's units.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator

from lstm_trainer import report
from lstm_trainer.data import PreparedData, Windows
from lstm_trainer.evaluate import LinearAR, Scores, Verdict, persistence, relative_verdict, score, seasonal_naive

# all_results.json names the splits short: val_mse, persistence_test_mase, ...
SPLIT_KEYS = {"validation": "val", "test": "test"}
# Training windows the linear AR (and the model's linear skip) is fitted on: all of them up to
# here, evenly spaced ones beyond: 200 K windows of 50 lags are ~80 MB of float64 per copy the
# solver makes and about a second of SVD, where all windows of a 50 M-point series would be 20 GB.
MAX_LINEAR_FIT_WINDOWS = 200_000


@dataclass
class SplitScores:
    model: Scores | None  # None where no model was saved, and on processes other than the main one
    persistence: Scores
    linear: Scores
    seasonal_naive: Scores | None  # None without --season


@dataclass
class RunScores:
    splits: dict[str, SplitScores]
    mase_scale: float
    verdict: Verdict | None  # None for the synthetic reference, graded by its absolute thresholds
    # The saved model's validation forecasts and their targets, in data units (for the pictures);
    # None where no model was scored.
    validation_forecast: tuple[np.ndarray, np.ndarray] | None = None

    def results(self) -> dict[str, Any]:
        """Flat keys for all_results.json: val_mae, linear_test_mase, seasonal_naive_val_mse, ..."""
        flat: dict[str, Any] = {"mase_scale": self.mase_scale}
        for split, key in SPLIT_KEYS.items():
            scores = self.splits.get(split)
            for name in ("model", "persistence", "linear", "seasonal_naive"):
                found = getattr(scores, name) if scores is not None else None
                prefix = "" if name == "model" else f"{name}_"
                for metric in fields(Scores):
                    flat[f"{prefix}{key}_{metric.name}"] = getattr(found, metric.name) if found is not None else None
        flat["verdict"] = self.verdict.text if self.verdict is not None else None
        return flat


def linear_fit_windows(windows: Windows) -> np.ndarray:
    """The training windows the linear fits read: every one, or evenly spaced ones past the cap."""
    if len(windows) <= MAX_LINEAR_FIT_WINDOWS:
        return np.arange(len(windows), dtype=np.int64)
    return np.linspace(0, len(windows) - 1, MAX_LINEAR_FIT_WINDOWS).astype(np.int64)


def score_run(
    accelerator: Accelerator, data: PreparedData, best: Path, batch_size: int, season: int | None
) -> RunScores:
    """Every split after training, scored for the saved model (main process) and the baselines (all)."""
    train = data.windows["train"]
    total, count = train.naive_mae_parts()
    scale = total / count
    inputs, targets = train.gather(linear_fit_windows(train), normalised=False)
    linear = LinearAR.fit(inputs, targets)
    del inputs, targets
    with_model = accelerator.is_main_process and (best / "model.safetensors").is_file()
    splits: dict[str, SplitScores] = {}
    forecast = None
    for split in SPLIT_KEYS:
        if split not in data.windows:
            continue
        windows = data.windows[split]
        parts: dict[str, list[np.ndarray]] = {"model": [], "persistence": [], "linear": [], "seasonal_naive": [], "target": []}
        horizon = windows.horizon
        for index in windows.chunks():
            inputs, targets = windows.gather(index, normalised=False)  # data units
            parts["target"].append(targets.astype(np.float64).ravel())
            parts["persistence"].append(_ahead(persistence, inputs, horizon))
            parts["linear"].append(_ahead(linear.predict, inputs, horizon))
            if season:
                parts["seasonal_naive"].append(_ahead(lambda x: seasonal_naive(x, season), inputs, horizon))
            if with_model:
                loc, spread = _window_statistics(windows, index)
                parts["model"].append(report.predict(best, inputs, batch_size, accelerator.device, loc, spread).ravel())
        joined = {name: np.concatenate(chunks) for name, chunks in parts.items() if chunks}
        targets = joined["target"]
        splits[split] = SplitScores(
            model=score(joined["model"], targets, scale) if with_model else None,
            persistence=score(joined["persistence"], targets, scale),
            linear=score(joined["linear"], targets, scale),
            seasonal_naive=score(joined["seasonal_naive"], targets, scale) if season else None,
        )
        if split == "validation" and with_model:
            forecast = (joined["model"], targets)
    accelerator.wait_for_everyone()
    return RunScores(splits, scale, None if data.noise_floor is not None else _verdict(splits), forecast)


def _ahead(one_step: Any, inputs: np.ndarray, horizon: int) -> np.ndarray:
    """A next-step forecaster run `horizon` steps, each forecast fed back as the newest input:
    [N, T] -> [N] (horizon 1, the forecaster itself) or [N * H], window after window, as targets are flattened."""
    if horizon == 1:
        return one_step(inputs)
    window, steps = np.asarray(inputs, dtype=np.float64), []
    for _ in range(horizon):
        steps.append(one_step(window))
        window = np.concatenate([window[:, 1:], steps[-1][:, None]], axis=1)
    return np.stack(steps, axis=1).ravel()  # [N, H] -> [N * H]


def _window_statistics(windows: Windows, index: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Each window's series (mean, std) where statistics are per series; None: the model's saved one."""
    if windows.loc is None or windows.scale is None:
        return None, None
    series = windows.series_of(index)
    return windows.loc[series], windows.scale[series]


def _verdict(splits: dict[str, SplitScores]) -> Verdict | None:
    """Judged on the held-out test split where there is one: validation chose the model."""
    split = "test" if "test" in splits else "validation"
    scores = splits[split]
    if scores.model is None or None in (scores.model.mase, scores.persistence.mase, scores.linear.mase):
        return None
    return relative_verdict(split, scores.model.mase, scores.persistence.mase, scores.linear.mase)  # type: ignore[arg-type]
