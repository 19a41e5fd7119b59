"""What a run prints, on the main process only: the values in force, progress, the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelerate import Accelerator

from lstm_trainer.config import RunConfig
from lstm_trainer.ds_config import ResolvedDeepSpeed
from lstm_trainer.loop import EpochStats, StepLog


def start(accelerator: Accelerator, config: RunConfig, ds: ResolvedDeepSpeed, steps_per_epoch: int, out: Path) -> None:
    zero = ds.config["zero_optimization"].get("stage")
    optimizer = ds.config.get("optimizer", {})
    scheduler = ds.config.get("scheduler", {})
    lines = [
        f"lstm-trainer: {config.model.cell.upper()} hidden {config.model.hidden_size} x {config.model.num_layers} layers, "
        f"dropout {config.model.dropout}",
        f"  processes {accelerator.num_processes} on {accelerator.device.type}, DeepSpeed ZeRO-{zero}, "
        f"precision {ds.mixed_precision}",
        f"  global batch {ds.total_batch_size} = micro batch {ds.micro_batch_size} x accumulation "
        f"{ds.gradient_accumulation_steps} x processes {accelerator.num_processes}; {steps_per_epoch} optimizer steps an epoch",
        f"  optimizer {optimizer.get('type', 'AdamW')} {optimizer.get('params', {})}",
        f"  scheduler {scheduler.get('type', 'none')} {scheduler.get('params', {})}",
        f"  gradient clipping {ds.config.get('gradient_clipping', 'none')}, epochs up to "
        f"{config.train.num_train_epochs}, early stopping patience {config.train.early_stopping_patience}",
        *(f"  changed: {change}" for change in ds.changes),
        f"  values in force written to {out / 'run_config.json'}",
    ]
    accelerator.print("\n".join(lines))


def step(accelerator: Accelerator, log: StepLog) -> None:
    accelerator.print(
        f"step {log.step:6d} | epoch {log.epoch:3d} | loss {log.loss:.6f} | grad norm {log.grad_norm:.4f} "
        f"({log.health}) | lr {log.learning_rate:.2e}"
    )


def epoch(
    accelerator: Accelerator, number: int, stats: EpochStats, val_mse: float, best: float, bad_epochs: int, improved: bool
) -> None:
    mark = " (best, saved)" if improved else f" (no improvement for {bad_epochs})"
    accelerator.print(
        f"epoch {number:3d} | train loss {stats.train_loss:.6f} | val mse {val_mse:.6f}{mark} | "
        f"best {best:.6f} | mean grad norm {stats.mean_grad_norm:.4f} | lr {stats.learning_rate:.2e}"
    )


def finish(accelerator: Accelerator, results: dict[str, Any], out: Path) -> None:
    floor = results["noise_floor"]
    floor_text = f"{floor:.6f}" if floor is not None else "unknown"
    stop = "early stopping" if results["stopped_early"] else "epoch limit"
    accelerator.print(
        "\n".join(
            [
                "",
                "Training Summary:",
                f"  - Initial Loss: {results['initial_train_loss']:.6f}",
                f"  - Final Loss: {results['final_train_loss']:.6f}",
                f"  - Best Loss: {results['best_train_loss']:.6f}",
                f"  - Loss Reduction: {results['train_loss_reduction_percent']:.2f}%",
                "",
                "Validation Summary:",
                f"  - Initial Val MSE (untrained): {results['initial_val_mse']:.6f}",
                f"  - Final Val MSE: {results['final_val_mse']:.6f}",
                f"  - Best Val MSE: {results['best_val_mse']:.6f}",
                f"  - Val MSE Reduction: {results['val_mse_reduction_percent']:.2f}%",
                f"  - Persistence baseline (next = last value): {results['persistence_val_mse']:.6f}",
                f"  - Noise floor (noise_std^2): {floor_text}",
                "",
                f"Epochs completed: {results['epochs_completed']} ({stop}) in {results['train_seconds']:.1f} s",
                f"Model Quality: {results['quality']} (best val MSE {results['best_val_mse']:.6f}; "
                f"persistence {results['persistence_val_mse']:.6f}, floor {floor_text})",
                f"Best model: {out / 'best'}; results: {out / 'all_results.json'}",
            ]
        )
    )
