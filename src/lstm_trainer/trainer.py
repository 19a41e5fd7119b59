"""A whole run: set up, fit with early stopping, keep the best model, report.

`run` is what `train.py` calls; it returns the dict it writes to all_results.json.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DummyOptim, DummyScheduler, set_seed

from lstm_trainer import report
from lstm_trainer.config import RunConfig
from lstm_trainer.data import INPUTS, TARGET, build_synthetic, dataset_params
from lstm_trainer.dataloaders import eval_loader, train_loader
from lstm_trainer.distributed import make_accelerator, relaunch_for_cpu_processes
from lstm_trainer.ds_config import ResolvedDeepSpeed
from lstm_trainer.files import replace_dir
from lstm_trainer.loop import StepLog, TrainState, evaluate, train_epoch
from lstm_trainer.metrics import persistence_mse, quality_grade, reduction_percent
from lstm_trainer.model import LSTMForecaster


@dataclass
class EarlyStopping:
    """Counts epochs without a better validation MSE (reference: patience 10)."""

    patience: int
    best: float = math.inf
    bad_epochs: int = 0

    def update(self, value: float) -> bool:
        """Record one epoch's value; True if it is the best so far."""
        if value < self.best:
            self.best, self.bad_epochs = value, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


def run(config: RunConfig) -> dict[str, Any]:
    relaunch_for_cpu_processes()
    accelerator, ds = make_accelerator(config)
    try:
        return _run(accelerator, ds, config)
    finally:
        accelerator.end_training()  # tears the process group down, on success or error


def _run(accelerator: Accelerator, ds: ResolvedDeepSpeed, config: RunConfig) -> dict[str, Any]:
    train_cfg = config.train
    out = Path(train_cfg.output_dir)
    set_seed(train_cfg.seed)
    with accelerator.main_process_first():
        dataset = build_synthetic(config.data, train_cfg.seed)
    model = LSTMForecaster(config.model)
    train_dl = train_loader(dataset["train"], ds.micro_batch_size, ds.total_batch_size, train_cfg.seed)
    sampler = train_dl.batch_sampler  # ours; prepare wraps it in a per-process shard
    steps_per_epoch = sampler.steps_per_epoch
    val_dl = eval_loader(dataset["validation"], train_cfg.eval_batch_size)
    optimizer, scheduler = _optimizer_and_scheduler(model, ds, train_cfg.learning_rate)
    model, optimizer, train_dl, val_dl, scheduler = accelerator.prepare(model, optimizer, train_dl, val_dl, scheduler)

    validation = dataset["validation"].with_format("numpy")[:]
    baselines = {
        "persistence_val_mse": persistence_mse(validation[INPUTS], validation[TARGET]),
        "noise_floor": _noise_floor(dataset["validation"]),
    }
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        run_info = {"config": config.to_dict(), "world_size": accelerator.num_processes, "deepspeed": ds.config}
        (out / "run_config.json").write_text(json.dumps(run_info, indent=2) + "\n")
    report.start(accelerator, config, ds, steps_per_epoch, out)

    state = TrainState()
    stopper = EarlyStopping(train_cfg.early_stopping_patience)
    initial_val = evaluate(accelerator, model, val_dl)
    train_losses: list[float] = []
    val_mses: list[float] = []

    def on_log(log: StepLog) -> None:
        state.step_logs.append(log)
        report.step(accelerator, log)

    started = time.perf_counter()
    for epoch in range(train_cfg.num_train_epochs):
        state.epoch = epoch
        sampler.set_epoch(epoch)
        stats = train_epoch(accelerator, model, optimizer, scheduler, train_dl, state, train_cfg.logging_steps, on_log)
        val_mse = evaluate(accelerator, model, val_dl)
        train_losses.append(stats.train_loss)
        val_mses.append(val_mse)
        improved = stopper.update(val_mse)
        if improved:
            save_model(accelerator, model, out / "best")
        report.epoch(accelerator, epoch + 1, stats, val_mse, stopper.best, stopper.bad_epochs, improved)
        if stopper.should_stop:
            break
    train_seconds = time.perf_counter() - started

    results: dict[str, Any] = {
        "initial_train_loss": train_losses[0],
        "final_train_loss": train_losses[-1],
        "best_train_loss": min(train_losses),
        "train_loss_reduction_percent": reduction_percent(train_losses[0], train_losses[-1]),
        "initial_val_mse": initial_val,
        "final_val_mse": val_mses[-1],
        "best_val_mse": stopper.best,
        "val_mse_reduction_percent": reduction_percent(initial_val, stopper.best),
        **baselines,
        "quality": quality_grade(stopper.best),
        "epochs_completed": len(val_mses),
        "stopped_early": stopper.should_stop,
        "optimizer_steps": state.global_step,
        "world_size": accelerator.num_processes,
        "global_batch_size": ds.total_batch_size,
        "per_device_train_batch_size": ds.micro_batch_size,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "mixed_precision": ds.mixed_precision,
        "train_seconds": train_seconds,
        "train_loss_history": train_losses,
        "val_mse_history": val_mses,
    }
    if accelerator.is_main_process:
        (out / "all_results.json").write_text(json.dumps(results, indent=2) + "\n")
    report.finish(accelerator, results, out)
    return results


def save_model(accelerator: Accelerator, model: torch.nn.Module, path: Path) -> None:
    """Write the model's fp32 weights and config to `path`, replacing it whole.

    Every process takes part (under ZeRO-3 the weights must be gathered); the main one writes.
    """
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped: LSTMForecaster = accelerator.unwrap_model(model)
        export = LSTMForecaster(unwrapped.config)
        export.load_state_dict({k: v.float() for k, v in state_dict.items()})
        with replace_dir(path) as tmp:
            export.save_pretrained(tmp)
    accelerator.wait_for_everyone()


def _optimizer_and_scheduler(
    model: torch.nn.Module, ds: ResolvedDeepSpeed, learning_rate: float | None
) -> tuple[torch.optim.Optimizer, Any]:
    """DeepSpeed builds what the JSON names; Accelerate's placeholders stand in until prepare."""
    if "optimizer" in ds.config:
        optimizer: torch.optim.Optimizer = DummyOptim(model.parameters())
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate or 5e-4)
    scheduler = DummyScheduler(optimizer) if "scheduler" in ds.config else None
    return optimizer, scheduler


def _noise_floor(split: Any) -> float | None:
    """For synthetic data the best possible MSE is the noise variance; unknown otherwise."""
    params = dataset_params(split)
    if params.get("source") == "synthetic":
        return float(params["noise_std"]) ** 2
    return None
