"""What a run shows: printed lines, progress bars, tracker logs and, at the end, pictures.

The functions print, on the local main process only: the values in force, every logging
step, every epoch, the summary. `Reporter` is what the trainer calls at those moments; it
prints through them and feeds the progress bars, the trackers and the plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator

from lstm_trainer.config import Plan, RunConfig
from lstm_trainer.evaluate.scoring import ValidationForecast
from lstm_trainer.outputs import plots, tracking
from lstm_trainer.outputs.progress import ProgressBars, say
from lstm_trainer.outputs.render import baseline_table, interval_lines, number, step_lines, test_lines
from lstm_trainer.outputs.results import EpochLog, Results, StepLog
from lstm_trainer.threads import header_line as threads_line


def _print(accelerator: Accelerator, text: str) -> None:
    if accelerator.is_local_main_process:
        say(text)


def start(accelerator: Accelerator, config: RunConfig, plan: Plan, steps_per_epoch: int, out: Path) -> None:
    zero_section = plan.config["zero_optimization"]
    zero = f"ZeRO-{zero_section.get('stage')}"
    if zero_section.get("stage") != plan.zero_stage:
        zero += f" (ZeRO-{plan.zero_stage} on 2+ processes)"
    for part in ("optimizer", "param"):
        device = zero_section.get(f"offload_{part}", {}).get("device", "none")
        if device != "none":
            zero += f", {part} offload to {device}"
    optimizer = plan.config.get("optimizer", {})
    scheduler = plan.config.get("scheduler", {})
    lines = [
        f"lstm-trainer: {config.model.cell.upper()} hidden {config.model.hidden_size} x {config.model.num_layers} layers, "
        f"dropout {config.model.dropout}",
        f"  processes {accelerator.num_processes} on {accelerator.device.type}, DeepSpeed {zero}, "
        f"precision {plan.mixed_precision}",
        f"  DeepSpeed config {plan.source}",
        f"  global batch {plan.total_batch_size} = micro batch {plan.micro_batch_size} x accumulation "
        f"{plan.gradient_accumulation_steps} x processes {accelerator.num_processes}; {steps_per_epoch} optimizer steps an epoch",
        f"  optimizer {optimizer.get('type', 'AdamW')} {optimizer.get('params', {})}",
        f"  scheduler {scheduler.get('type', 'none')} {scheduler.get('params', {})}",
        f"  gradient clipping {plan.config.get('gradient_clipping', 'none')}, epochs up to "
        f"{config.train.num_train_epochs}, early stopping patience {config.train.early_stopping_patience}",
        f"  {threads_line()}",
        *(f"  changed: {change}" for change in plan.changes),
        *(f"  note: {note}" for note in plan.notes),
        f"  values in force written to {out / 'run_config.json'}",
    ]
    _print(accelerator, "\n".join(lines))


def step(accelerator: Accelerator, log: StepLog) -> None:
    _print(
        accelerator,
        f"step {log.step:6d} | epoch {log.epoch:3d} | loss {log.loss:.6f} | grad norm {log.grad_norm:.4f} "
        f"({log.health}) | lr {log.learning_rate:.2e}",
    )


def epoch(accelerator: Accelerator, log: EpochLog) -> None:
    if log.val_mse is None or log.best_val_mse is None:  # --val_size 0: nothing to validate on
        val = "no validation (saved)"
    else:
        mark = " (best, saved)" if log.improved else f" (no improvement for {log.bad_epochs})"
        val = f"val mse {log.val_mse:.6f}{mark} | best {log.best_val_mse:.6f}"
        if log.selection is not None:  # selected on another measure: it, then the MSE
            name, value, best = log.selection
            val = f"val {name} {value:.4f}{mark} | best {best:.4f} | val mse {log.val_mse:.6f}"
    _print(
        accelerator,
        f"epoch {log.epoch:3d} | train loss {log.train_loss:.6f} | {val} | "
        f"mean grad norm {log.mean_grad_norm:.4f} | lr {log.learning_rate:.2e}",
    )


def finish(
    accelerator: Accelerator, results: Results, out: Path, data: str | None = None, z_units: bool = False
) -> None:
    """The end-of-run summary. `z_units`: validation MSEs are in per-series z-scores, so persistence (in
    the data's units) is not put beside them: the table of the model and the baselines compares both."""
    floor_text = number(results.noise_floor) if results.noise_floor is not None else "unknown"
    verdict, validation = results.scores.verdict, results.scores.validation
    persistence = validation.persistence.overall.mse if validation is not None else None
    if results.stopped_early:
        stop = "early stopping"
    elif results.stopped_at_max_steps:
        stop = "--max_train_steps"
    else:
        stop = "epoch limit"
    _print(
        accelerator,
        "\n".join(
            [
                "",
                *([f"Data: {data}"] if data else []),
                "Training Summary:",
                f"  - Initial Loss: {number(results.initial_train_loss)}",
                f"  - Final Loss: {number(results.final_train_loss)}",
                f"  - Best Loss: {number(results.best_train_loss)}",
                f"  - Loss Reduction: {number(results.train_loss_reduction_percent, '.2f%')}",
                "",
                *(
                    [
                        "Validation Summary:",
                        f"  - Initial Val MSE (before training): {number(results.initial_val_mse)}",
                        f"  - Final Val MSE: {number(results.final_val_mse)}",
                        f"  - Best Val MSE: {number(results.best_val_mse)}",
                        f"  - Val MSE Reduction: {number(results.val_mse_reduction_percent, '.2f%')}",
                        "  - Persistence baseline (next = last value): "
                        + ("in the table below, in the data's units" if z_units else number(persistence)),
                        f"  - Noise floor (noise_std^2): {floor_text}",
                    ]
                    if validation is not None
                    else ["Validation: none (--val_size 0): nothing held out, the last step's model is kept"]
                ),
                *test_lines(results.scores.test),
                *baseline_table(results.scores),
                *interval_lines(results.scores),
                *step_lines(results.scores.validation),
                "",
                f"Epochs completed: {results.epochs_completed} ({stop}) in {results.train_seconds:.1f} s",
                "Model Quality: not judged (nothing held out)"
                if verdict is None and validation is None
                else f"Model Quality: {results.quality or 'n/a'} (best val MSE {number(results.best_val_mse)}; "
                f"persistence {number(persistence)}, floor {floor_text})"
                if verdict is None
                else f"Model Quality (relative): {verdict.text}",
                # Printed once per machine; files are written by the first machine only.
                f"Best model: {out / 'best'}; results: {out / 'all_results.json'}"
                if accelerator.is_main_process
                else f"Best model and results: in {out} on the main machine (machine_rank 0)",
            ]
        ),
    )


class Reporter:
    """The trainer's one handle on everything a run shows.

    Called at the start (construction), when training begins (`begin`), after every optimizer
    step (`optimizer_step`), every logging step (`step`), every epoch (`epoch`) and at the end
    (`finish`). Trackers log on the main process only; bars draw on the local main one only.
    """

    def __init__(
        self,
        accelerator: Accelerator,
        config: RunConfig,
        plan: Plan,
        steps_per_epoch: int,
        out: Path,
        run_info: dict[str, Any],
        resume_trackers: dict[str, str] | None = None,
    ) -> None:
        self.accelerator, self.config, self.out, self.steps_per_epoch = accelerator, config, out, steps_per_epoch
        data = run_info.get("data", {})
        self.data_line = (
            f"{data['series']:,} series, {data['points']:,} points" if "series" in data and "points" in data else None
        )
        self.z_units = bool(
            self.data_line and data["series"] > 1 and data.get("normalization", {}).get("std", 1.0) != 1.0
        )
        if self.data_line and self.z_units:
            # Training and validation losses are then in each series' own z-score units (train/trainer.py).
            self.data_line += "; training and validation losses in per-series z-score units, final scores in data units"
        start(accelerator, config, plan, steps_per_epoch, out)
        # The tracker runs this one logs to, kept in each checkpoint so a resume continues them.
        self.trackers = tracking.start(accelerator, config.train, run_info, resume_trackers)
        self.bars: ProgressBars | None = None
        # (optimizer step, learning rate) for every step this process trained, for the schedule's picture.
        self.learning_rates: list[tuple[int, float]] = []

    def begin(self, epoch: int, global_step: int) -> None:
        """Training starts at `epoch` (from 0) after `global_step` optimizer steps: not 0 when resuming."""
        self.bars = ProgressBars(
            self.accelerator.is_local_main_process,
            self.config.train.num_train_epochs,
            self.steps_per_epoch,
            start_epoch=epoch,
            steps_done=global_step - epoch * self.steps_per_epoch,
        )

    def optimizer_step(self, global_step: int, learning_rate: float) -> None:
        self.learning_rates.append((global_step, learning_rate))
        if self.bars is not None:
            self.bars.step()

    def step(self, log: StepLog) -> None:
        step(self.accelerator, log)
        if self.bars is not None:
            self.bars.running_loss(log.loss)
        tracking.log_step(self.accelerator, log)

    def epoch(self, log: EpochLog) -> None:
        epoch(self.accelerator, log)
        tracking.log_epoch(self.accelerator, log)
        if self.bars is not None:
            self.bars.end_epoch(log.epoch, log.train_loss, log.val_mse, log.best_val_mse)

    def finish(self, results: Results, forecast: ValidationForecast | None) -> None:
        """The summary, then the pictures: the best model's validation `forecast` (its first step ahead)."""
        if self.bars is not None:
            self.bars.close()
        finish(self.accelerator, results, self.out, self.data_line, self.z_units)
        pictures: dict[str, Path] = {}
        if self.accelerator.is_main_process and results.val_mse_history and forecast is not None:
            pictures = plots.save_all(
                self.out,
                results,
                self.learning_rates,
                forecast.predictions,
                forecast.targets,
                forecast.interval,
                self.data_line,
            )
            _print(self.accelerator, f"Pictures: {', '.join(str(path) for path in pictures.values())}")
        tracking.log_summary(self.accelerator, results, pictures)
        if results.worse_than_untrained:
            _print(self.accelerator, results.worse_than_untrained)
        verdict = results.scores.verdict
        if verdict is not None and verdict.warning:
            # Last, so a run worse than a baseline does not end on a line that reads as success.
            _print(self.accelerator, verdict.warning)
