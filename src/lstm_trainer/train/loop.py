"""One training epoch and one evaluation pass: the canonical Accelerate loop.

Per-step host work is kept small: losses are summed on the device and read back
(one sync) only at logging steps and at the end of the epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from lstm_trainer.data import INPUTS, TARGET
from lstm_trainer.errors import UserError
from lstm_trainer.model.heads import OutputHead
from lstm_trainer.outputs.results import StepLog


class TrainingDiverged(UserError):
    """The loss became NaN or inf: the reference's 'gradient explosion' case."""


@dataclass
class EpochStats:
    """What `train_epoch` measured over one epoch."""

    train_loss: float
    mean_grad_norm: float
    learning_rate: float


@dataclass
class TrainState:
    """Where the run is: the same on every process, saved in each checkpoint."""

    epoch: int = 0  # the epoch in progress, from 0
    global_step: int = 0  # optimizer steps so far
    initial_val_mse: float | None = None
    train_losses: list[float] = field(default_factory=list)
    val_mses: list[float] = field(default_factory=list)
    logged_losses: list[list[float]] = field(default_factory=list)  # [step, loss] at every logging step


class EpochProgress:
    """This process's running sums inside the current epoch, so a resume mid-epoch adds
    up to exactly what an uninterrupted epoch would have."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.batches = 0  # micro batches this process has trained on in this epoch
        self.loss_sum = torch.zeros((), device=self.device)
        self.window_sum = torch.zeros((), device=self.device)
        self.window_batches = 0
        self.grad_norms: list[float] = []

    def state_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "loss_sum": self.loss_sum.item(),
            "window_sum": self.window_sum.item(),
            "window_batches": self.window_batches,
            "grad_norms": self.grad_norms,
        }

    @staticmethod
    def merged(ranks: list[dict[str, Any]], world_size: int) -> dict[str, Any]:
        """The saved sums of every old process, spread evenly over `world_size` new ones.

        The global batch is kept, so the micro batches the old processes took are the same
        windows the new ones skip; each takes 1/world_size of them and of their losses, and
        the mean over processes is then the mean over every micro batch of the epoch.
        """
        batches = sum(rank["batches"] for rank in ranks)
        window_batches = sum(rank["window_batches"] for rank in ranks)
        assert batches % world_size == 0 and window_batches % world_size == 0, (batches, window_batches, world_size)
        return {
            "batches": batches // world_size,
            "loss_sum": sum(rank["loss_sum"] for rank in ranks) / world_size,
            "window_sum": sum(rank["window_sum"] for rank in ranks) / world_size,
            "window_batches": window_batches // world_size,
            "grad_norms": ranks[0]["grad_norms"],  # the global norm: the same on every process
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = state["batches"]
        self.loss_sum = torch.tensor(state["loss_sum"], device=self.device)
        self.window_sum = torch.tensor(state["window_sum"], device=self.device)
        self.window_batches = state["window_batches"]
        self.grad_norms = list(state["grad_norms"])


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def keep_stage0_grad_norm(engine: Any) -> None:
    """Make a stage-0 engine keep the gradient norm it computes when clipping, as ZeRO does.

    At stage 0 in fp32 DeepSpeed clips with torch's clip_grad_norm_ and drops the norm it
    returns, so get_global_grad_norm() would have nothing to report. (Without clipping no
    norm is computed at any stage but ZeRO's.)
    """
    if engine.zero_optimization_stage() != 0 or engine.fp16_enabled() or engine.bfloat16_enabled():
        return
    from deepspeed.runtime.utils import clip_grad_norm_

    def clip_and_keep_norm() -> None:
        engine._global_grad_norm = clip_grad_norm_(
            engine.module.parameters(), max_norm=engine.gradient_clipping(), mpu=engine.mpu
        )

    engine.clip_fp32_gradients = clip_and_keep_norm


def grad_norm_of(model: torch.nn.Module) -> float:
    """The global gradient norm (before clipping) of the last optimizer step, as DeepSpeed measured it."""
    get_norm = getattr(model, "get_global_grad_norm", None)
    norm = get_norm() if get_norm is not None else None
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
    scheduler: Any,  # DeepSpeed's, wrapped by Accelerate, or None
    loader: DataLoader[dict[str, torch.Tensor]],
    head: OutputHead,
    state: TrainState,
    progress: EpochProgress,
    logging_steps: int,
    on_log: Callable[[StepLog], None],
    after_step: Callable[[], bool],
    on_step: Callable[[int, float], None] | None = None,
) -> EpochStats | None:
    """Train over `loader` (the rest of the epoch when resuming); None if `after_step` asked to stop.

    The loss is `head`'s: MSE for a point forecast, the NLL of a distribution, the pinball loss.

    `on_log` runs every `logging_steps` optimizer steps; `on_step(step, lr)` after every one,
    with host values only (no device sync), for progress bars and the learning-rate picture.
    """
    model.train()
    dtype = model_dtype(model)
    for batch in loader:
        with accelerator.accumulate(model):
            output = model(batch[INPUTS].to(dtype))  # [B], [B, H] or [B, H, P]: see model/heads.py
            loss = head.loss(output, batch[TARGET])  # in float32 whatever the model's precision
            accelerator.backward(loss)
            # No-ops under DeepSpeed (its engine steps inside backward); kept so the loop
            # reads, and runs, the same with any Accelerate backend.
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            optimizer.zero_grad()
        detached = loss.detach()
        progress.loss_sum += detached
        progress.window_sum += detached
        progress.batches += 1
        progress.window_batches += 1
        if not accelerator.sync_gradients:
            continue
        state.global_step += 1
        progress.grad_norms.append(grad_norm_of(model))
        if on_step is not None:
            on_step(state.global_step, current_lr(scheduler, optimizer))
        if state.global_step % logging_steps == 0:
            mean_loss = accelerator.reduce(progress.window_sum / progress.window_batches, "mean").item()
            check_finite(mean_loss, state, "training")
            on_log(
                StepLog(
                    state.global_step,
                    state.epoch + 1,
                    mean_loss,
                    progress.grad_norms[-1],
                    current_lr(scheduler, optimizer),
                )
            )
            progress.window_sum.zero_()
            progress.window_batches = 0
        if after_step():
            return None
    train_loss = accelerator.reduce(progress.loss_sum / max(progress.batches, 1), "mean").item()
    check_finite(train_loss, state, "end of epoch")
    finite_norms = [n for n in progress.grad_norms if math.isfinite(n)]
    mean_norm = sum(finite_norms) / len(finite_norms) if finite_norms else float("nan")
    return EpochStats(train_loss, mean_norm, current_lr(scheduler, optimizer))


@torch.no_grad()
def evaluate(
    accelerator: Accelerator, model: torch.nn.Module, loader: DataLoader[dict[str, torch.Tensor]], head: OutputHead
) -> float:
    """MSE of the point forecast over every window (and step ahead) of the split, whatever the process count."""
    model.eval()
    dtype = model_dtype(model)
    squared_error = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    count = 0
    for batch in loader:
        prediction = head.point(model(batch[INPUTS].to(dtype))).float()
        prediction, target = accelerator.gather_for_metrics((prediction, batch[TARGET].float()))
        squared_error += ((prediction - target).double() ** 2).sum()
        count += target.numel()
    return (squared_error / count).item()
