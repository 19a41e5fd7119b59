"""One training epoch and one evaluation pass: the canonical Accelerate loop.

Per-step host work is kept small: losses are summed on the device and read back
(one sync) only at logging steps and at the end of the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader

from lstm_trainer.data import INPUTS, TARGET
from lstm_trainer.errors import UserError
from lstm_trainer.metrics import gradient_health


class TrainingDiverged(UserError):
    """The loss became NaN or inf: the reference's 'gradient explosion' case."""


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
class TrainState:
    """Counters that run across epochs."""

    epoch: int = 0
    global_step: int = 0
    step_logs: list[StepLog] = field(default_factory=list)


@dataclass
class EpochStats:
    train_loss: float
    mean_grad_norm: float
    learning_rate: float


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def grad_norm_of(model: torch.nn.Module) -> float:
    """The global gradient norm (before clipping) of the last optimizer step, as DeepSpeed measured it."""
    norm = model.get_global_grad_norm() if hasattr(model, "get_global_grad_norm") else None
    if norm is None:
        return float("nan")
    return float(norm.item() if torch.is_tensor(norm) else norm)


def current_lr(scheduler: object, optimizer: torch.optim.Optimizer) -> float:
    if scheduler is not None and hasattr(scheduler, "get_last_lr"):
        return float(scheduler.get_last_lr()[0])
    return float(optimizer.param_groups[0]["lr"])


def check_finite(loss: float, state: TrainState, where: str) -> None:
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at epoch {state.epoch + 1}, optimizer step {state.global_step} ({where}); "
            "lower the learning rate (e.g. --learning_rate 1e-4) or gradient_clipping in --ds_config "
            "(e.g. 0.5), and check the initialisation and data normalisation"
        )


def train_epoch(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: object,
    loader: DataLoader,
    state: TrainState,
    logging_steps: int,
    on_log: Callable[[StepLog], None],
) -> EpochStats:
    model.train()
    dtype = model_dtype(model)
    epoch_sum = torch.zeros((), device=accelerator.device)
    window_sum = torch.zeros((), device=accelerator.device)
    epoch_batches = window_batches = 0
    grad_norms: list[float] = []
    for batch in loader:
        with accelerator.accumulate(model):
            prediction = model(batch[INPUTS].to(dtype))  # [B]
            loss = F.mse_loss(prediction.float(), batch[TARGET].float())
            accelerator.backward(loss)
            # No-ops under DeepSpeed (its engine steps inside backward); kept so the loop
            # reads, and runs, the same with any Accelerate backend.
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad()
        detached = loss.detach()
        epoch_sum += detached
        window_sum += detached
        epoch_batches += 1
        window_batches += 1
        if not accelerator.sync_gradients:
            continue
        state.global_step += 1
        grad_norms.append(grad_norm_of(model))
        if state.global_step % logging_steps == 0:
            mean_loss = accelerator.reduce(window_sum / window_batches, "mean").item()
            check_finite(mean_loss, state, "training")
            on_log(StepLog(state.global_step, state.epoch + 1, mean_loss, grad_norms[-1], current_lr(scheduler, optimizer)))
            window_sum.zero_()
            window_batches = 0
    train_loss = accelerator.reduce(epoch_sum / max(epoch_batches, 1), "mean").item()
    check_finite(train_loss, state, "end of epoch")
    finite_norms = [n for n in grad_norms if math.isfinite(n)]
    mean_norm = sum(finite_norms) / len(finite_norms) if finite_norms else float("nan")
    return EpochStats(train_loss, mean_norm, current_lr(scheduler, optimizer))


@torch.no_grad()
def evaluate(accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader) -> float:
    """MSE over every window of the split, whatever the process count."""
    model.eval()
    dtype = model_dtype(model)
    squared_error = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    count = 0
    for batch in loader:
        prediction = model(batch[INPUTS].to(dtype)).float()
        prediction, target = accelerator.gather_for_metrics((prediction, batch[TARGET].float()))
        squared_error += ((prediction - target).double() ** 2).sum()
        count += target.numel()
    return (squared_error / count).item()
