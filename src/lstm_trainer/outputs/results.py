"""What a run reports, as one typed object: `trainer.run` returns a `Results`.

all_results.json is `Results.to_dict()`. Its keys are flat (`val_mse`, `persistence_test_mase`,
`val_coverage_80_by_step`, ...) and stay what they were when the results were a dict, so users'
files and scripts that read them keep working; the code reads attributes.

On the way, the loop (train/) hands the outputs a `StepLog` every logging step and an
`EpochLog` every epoch; they live here, below train/, so that the outputs need not import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lstm_trainer.config import Plan
from lstm_trainer.evaluate import COVERAGES, IntervalScores, Scores
from lstm_trainer.evaluate.accuracy import CompetitionScores
from lstm_trainer.evaluate.metrics import gradient_health, quality_grade, reduction_percent
from lstm_trainer.evaluate.scoring import ForecastScores, RunScores, SplitScores
from lstm_trainer.outputs.cost import Cost


@dataclass
class StepLog:
    """What is reported every `logging_steps` optimizer steps."""

    step: int
    epoch: int
    loss: float
    grad_norm: float
    learning_rate: float

    @property
    def health(self) -> str:
        return gradient_health(self.grad_norm)


@dataclass
class EpochLog:
    """What is reported at the end of every epoch: its training, its validation, and early stopping's count."""

    epoch: int  # from 1
    step: int  # optimizer steps so far
    train_loss: float
    val_mse: float | None  # None with --val_size 0: nothing held out
    mean_grad_norm: float
    learning_rate: float
    best_train_loss: float
    best_val_mse: float | None
    bad_epochs: int  # epochs since the best validation score: 0 where this one is the best
    # With --select_on smape or mase: (its name, this epoch's value, the best so far), what selection reads.
    selection: tuple[str, float, float] | None = None

    @property
    def improved(self) -> bool:
        return self.bad_epochs == 0


@dataclass
class EngineSettings:
    """What DeepSpeed's engine ran with, read back from it (trainer._engine_settings), beside what was asked."""

    zero_stage: int
    offload_optimizer_device: str
    offload_param_device: str
    gradient_clipping: float
    optimizer: str  # the class that does the update, under ZeRO's partitioning wrapper


@dataclass
class Results:
    """Everything a run reports. Losses and MSEs are in the data's units (trainer.Session says when not)."""

    train_loss_history: list[float]  # per epoch: the head's loss (MSE, negative log-likelihood or pinball)
    val_mse_history: list[float]  # per epoch
    initial_val_mse: float | None  # before training
    best_val_mse: float | None  # early stopping's best, the model in output_dir/best; None before a whole epoch
    logged_train_losses: list[list[float]]  # [optimizer step, loss] at every logging step
    optimizer_steps: int
    stopped_early: bool
    stopped_at_max_steps: bool
    train_seconds: float  # this launch's epochs, validation and checkpoints included
    scores: RunScores  # the best model and the baselines on validation and test, scored once at the end
    noise_floor: float | None  # the synthetic series' noise variance: no forecast can beat it; None for real data
    world_size: int  # processes
    plan: Plan  # batch, precision and the DeepSpeed JSON, as train/plan.py resolved them
    cost: Cost
    deepspeed: EngineSettings
    # The optimizer step of the model kept (the best epoch's end, or the last step without validation):
    # what a final fit on everything (--val_size 0) trains for. None before anything was kept.
    best_step: int | None = None
    # --select_on smape or mase: that measure on validation per epoch (what chose the model); else empty.
    val_selection_history: list[float] = field(default_factory=list)

    @property
    def epochs_completed(self) -> int:
        return len(self.train_loss_history)

    @property
    def initial_train_loss(self) -> float | None:
        return self.train_loss_history[0] if self.train_loss_history else None

    @property
    def final_train_loss(self) -> float | None:
        return self.train_loss_history[-1] if self.train_loss_history else None

    @property
    def best_train_loss(self) -> float | None:
        return min(self.train_loss_history) if self.train_loss_history else None

    @property
    def train_loss_reduction_percent(self) -> float | None:
        train = self.train_loss_history
        # A negative log-likelihood can start below zero, where a reduction in percent means nothing.
        return reduction_percent(train[0], train[-1]) if train and train[0] > 0 else None

    @property
    def final_val_mse(self) -> float | None:
        return self.val_mse_history[-1] if self.val_mse_history else None

    @property
    def val_mse_reduction_percent(self) -> float | None:
        if self.best_val_mse is None or not self.initial_val_mse:
            return None
        return reduction_percent(self.initial_val_mse, self.best_val_mse)

    @property
    def worse_than_untrained(self) -> str | None:
        """A warning where the model kept is worse on validation than the one training started from."""
        reduction = self.val_mse_reduction_percent
        if reduction is None or reduction >= 0:
            return None
        return (
            f"warning: the model kept is {-reduction:.2f}% worse on validation MSE than before training; "
            "lower --learning_rate, or check the data's scale and --seq_length"
        )

    @property
    def quality(self) -> str | None:
        """Against the baselines for a real series; the reference's absolute MSE grade for its synthetic sine."""
        if self.scores.verdict is not None:
            return self.scores.verdict.grade
        return quality_grade(self.best_val_mse) if self.best_val_mse is not None else None

    def to_dict(self) -> dict[str, Any]:
        """all_results.json, keys in the order the file has always had."""
        return {
            "initial_train_loss": self.initial_train_loss,
            "final_train_loss": self.final_train_loss,
            "best_train_loss": self.best_train_loss,
            "train_loss_reduction_percent": self.train_loss_reduction_percent,
            "initial_val_mse": self.initial_val_mse,
            "final_val_mse": self.final_val_mse,
            "best_val_mse": self.best_val_mse,
            "val_mse_reduction_percent": self.val_mse_reduction_percent,
            **score_keys(self.scores),
            "noise_floor": self.noise_floor,
            "quality": self.quality,
            "epochs_completed": self.epochs_completed,
            "stopped_early": self.stopped_early,
            "optimizer_steps": self.optimizer_steps,
            "best_step": self.best_step,
            "world_size": self.world_size,
            "global_batch_size": self.plan.total_batch_size,
            "per_device_train_batch_size": self.plan.micro_batch_size,
            "gradient_accumulation_steps": self.plan.gradient_accumulation_steps,
            "mixed_precision": self.plan.mixed_precision,
            "ds_config": self.plan.source,  # which DeepSpeed JSON, and who chose it
            "train_seconds": self.train_seconds,
            "train_loss_history": self.train_loss_history,
            "val_mse_history": self.val_mse_history,
            "val_selection_history": self.val_selection_history,
            "logged_train_losses": self.logged_train_losses,
            **self.cost.to_dict(),
            "stopped_at_max_steps": self.stopped_at_max_steps,
            "deepspeed": asdict(self.deepspeed),
        }


def score_keys(scores: RunScores) -> dict[str, Any]:
    """Flat keys for every score: `{forecast_}{split}_{metric}`, e.g. val_mae, linear_test_mase.

    Every forecast's MSE, MAE and MASE on both splits, None where there is none (no test split,
    no --season, no saved model); `..._by_step` lists only for a horizon > 1 and `val_crps`,
    `val_coverage_80`, ... only for a probabilistic model, so a reference run's file is as before.
    """
    flat: dict[str, Any] = {"mase_scale": scores.mase_scale}
    for split, split_scores in (("val", scores.validation), ("test", scores.test)):
        for forecast in fields(SplitScores):  # model, persistence, linear, seasonal_naive
            name = forecast.name
            if name == "naive2":
                continue
            found: ForecastScores | None = getattr(split_scores, name) if split_scores is not None else None
            prefix = split if name == "model" else f"{name}_{split}"
            for metric in fields(Scores):
                flat[f"{prefix}_{metric.name}"] = getattr(found.overall, metric.name) if found is not None else None
            if found is not None and found.by_step is not None:
                for metric in fields(Scores):
                    flat[f"{prefix}_{metric.name}_by_step"] = [getattr(s, metric.name) for s in found.by_step]
            if found is not None and found.intervals is not None:
                flat.update(_interval_keys(prefix, found.intervals, found.intervals_by_step))
            if found is not None and found.per_series is not None:
                flat.update(_per_series_keys(prefix, found.per_series))
        if split_scores is not None and split_scores.naive2 is not None:
            flat.update(_per_series_keys(f"naive2_{split}", split_scores.naive2))
    flat["verdict"] = scores.verdict.text if scores.verdict is not None else None
    return flat


def _per_series_keys(prefix: str, scores: CompetitionScores) -> dict[str, Any]:
    """The competitions' measures (each series alone, then the mean over series): sMAPE in percent,
    MASE over each series' in-sample seasonal naive MAE, OWA against Naive2."""
    return {
        f"{prefix}_smape": scores.smape,
        f"{prefix}_series_mase": scores.mase,
        f"{prefix}_owa": scores.owa,
        f"{prefix}_series": scores.series,
    }


def _interval_keys(prefix: str, scores: IntervalScores, by_step: list[IntervalScores] | None) -> dict[str, Any]:
    flat: dict[str, Any] = {f"{prefix}_crps": scores.crps}
    flat.update({f"{prefix}_coverage_{level}": scores.coverage[level] for level in COVERAGES})
    if by_step is not None:
        flat[f"{prefix}_crps_by_step"] = [s.crps for s in by_step]
        flat.update({f"{prefix}_coverage_{level}_by_step": [s.coverage[level] for s in by_step] for level in COVERAGES})
    return flat
