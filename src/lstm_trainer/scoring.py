"""The best model and every baseline scored on validation and test, in the data's units.

Runs once at the end of training with the model exactly as saved (see report.predict), so
the figures are those a user of output_dir/model gets. The baselines see the same windows;
the linear AR and MASE's scale are fitted on the training split only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import Accelerator

from lstm_trainer import report
from lstm_trainer.data import INPUTS, TARGET, PreparedData, split_values
from lstm_trainer.evaluate import LinearAR, Scores, Verdict, naive_scale, persistence, relative_verdict, score, seasonal_naive

# all_results.json names the splits short: val_mse, persistence_test_mase, ...
SPLIT_KEYS = {"validation": "val", "test": "test"}


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
        model = None
        if accelerator.is_main_process and (best / "model.safetensors").is_file():
            model = score(report.predict(best, inputs, batch_size, accelerator.device), targets, scale)
        splits[split] = SplitScores(
            model=model,
            persistence=score(persistence(inputs), targets, scale),
            linear=score(linear.predict(inputs), targets, scale),
            seasonal_naive=score(seasonal_naive(inputs, season), targets, scale) if season else None,
        )
    accelerator.wait_for_everyone()
    return RunScores(splits, scale, None if data.noise_floor is not None else _verdict(splits))


def _verdict(splits: dict[str, SplitScores]) -> Verdict | None:
    """Judged on the held-out test split where there is one: validation chose the model."""
    split = "test" if "test" in splits else "validation"
    scores = splits[split]
    if scores.model is None or None in (scores.model.mase, scores.persistence.mase, scores.linear.mase):
        return None
    return relative_verdict(split, scores.model.mase, scores.persistence.mase, scores.linear.mase)  # type: ignore[arg-type]
