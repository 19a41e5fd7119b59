"""The fit: Accelerate's canonical loop (accumulate, backward, step, sync_gradients), with
evaluation, early stopping, checkpoints and logging, in one function; and one evaluation pass.

Per-step host work is kept small: losses are summed on the device and read back
(one sync) only at logging steps and at the end of the epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from lstm_trainer.data import INPUTS, TARGET
from lstm_trainer.errors import UserError
from lstm_trainer.model.heads import OutputHead
from lstm_trainer.outputs.export import save_model
from lstm_trainer.outputs.output_dir import BEST
from lstm_trainer.outputs.results import EpochLog, StepLog
from lstm_trainer.train import checkpoint
from lstm_trainer.train.session import Session
from lstm_trainer.train.stop import GracefulStop


class TrainingDiverged(UserError):
    """The loss became NaN or inf: the reference's 'gradient explosion' case."""


@dataclass
class TrainState:
    """Where the run is: the same on every process, saved in each checkpoint."""

    epoch: int = 0  # the epoch in progress, from 0
    global_step: int = 0  # optimizer steps so far
    initial_val_mse: float | None = None
    val_selection: list[float] = field(default_factory=list)  # --select_on smape/mase: its value per epoch
    best_step: int | None = None  # the optimizer step of the model kept in output_dir/best
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

    def add(self, loss: torch.Tensor) -> None:
        """One micro batch's loss, summed on the device: no sync."""
        self.loss_sum += loss
        self.window_sum += loss
        self.batches += 1
        self.window_batches += 1

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


@dataclass
class Fitting:
    """What the fit carries from step to step; a checkpoint saves it and a resume loads it."""

    state: TrainState
    stopper: EarlyStopping
    progress: EpochProgress
    best_checkpoint: str | None = None  # the checkpoint at the best model's step, kept by rotation


@dataclass
class FitEnd:
    """How the fit ended: `stop` names what ended it before its last epoch, if anything did."""

    stop: str | None  # "early stopping", "max_train_steps", "SIGTERM", "SIGINT"
    seconds: float  # this launch's epochs, validation and checkpoints included
    checkpoint: str | None = None  # the checkpoint written at a stop inside an epoch

    @property
    def signalled(self) -> bool:
        return self.stop is not None and self.stop.startswith("SIG")


def fit(s: Session, run: Fitting, stop: GracefulStop) -> FitEnd:
    """Train until the epoch limit, early stopping, --max_train_steps or a signal; what stopped it is returned."""
    accelerator, model, cfg = s.accelerator, s.model, s.config.train
    state, progress, dtype = run.state, run.progress, model_dtype(s.model)
    grad_norm = GradNorm(accelerator, model)
    s.reporter.begin(state.epoch, state.global_step)
    started = time.perf_counter()
    while state.epoch < cfg.num_train_epochs and not run.stopper.should_stop:
        # Accelerate's loader calls set_epoch(its own iteration count) on a one-process batch
        # sampler at each pass, and that count restarts at 0 in a resumed run: set both.
        s.train_dl.set_epoch(state.epoch)
        s.sampler.set_epoch(state.epoch)
        loader = accelerator.skip_first_batches(s.train_dl, progress.batches) if progress.batches else s.train_dl
        epoch_started, cpu_started = time.perf_counter(), time.process_time()
        model.train()
        for batch in loader:
            with accelerator.accumulate(model):
                output = model(batch[INPUTS].to(dtype))  # [B], [B, H] or [B, H, P]: see model/heads.py
                loss = s.head.loss(output, batch[TARGET])  # in float32 whatever the model's precision
                accelerator.backward(loss)
                # No-ops under DeepSpeed (its engine steps inside backward); kept so the loop
                # reads, and runs, the same with any Accelerate backend.
                s.optimizer.step()
                if s.scheduler is not None:
                    s.scheduler.step()
                s.optimizer.zero_grad()
            progress.add(loss.detach())
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            if s.timings.first_step_time is None:
                s.timings.first_step_time = time.time()
            progress.grad_norms.append(grad_norm.read())
            s.reporter.optimizer_step(state.global_step, current_lr(s.scheduler, s.optimizer))
            if state.global_step % cfg.logging_steps == 0:
                _log_window(s, state, progress)
            at_limit = cfg.max_train_steps is not None and state.global_step >= cfg.max_train_steps
            signal_name = stop.agreed(accelerator)  # every process stops at the same step, or none does
            # A signal at an epoch's last step stops after its end (validation, checkpoint) instead:
            # a ZeRO-2 engine that loaded a checkpoint cannot save another before its first step.
            stop_now = at_limit or (signal_name and state.global_step < (state.epoch + 1) * s.sampler.steps_per_epoch)
            every = cfg.checkpointing_steps
            if stop_now or (every is not None and state.global_step % every == 0):
                name = save_checkpoint(s, run)
            if stop_now and s.val_dl is None and at_limit:  # no validation: the last step's model is the one kept
                save_model(s.accelerator, s.model, s.out / BEST, s.data.normalization)
                state.best_step = state.global_step
            if stop_now:
                return FitEnd(signal_name or "max_train_steps", time.perf_counter() - started, name)
        s.timings.epoch_train_seconds.append(time.perf_counter() - epoch_started)
        s.timings.epoch_cpu_seconds.append(time.process_time() - cpu_started)
        name = _end_epoch(s, run, current_lr(s.scheduler, s.optimizer))
        s.timings.elapsed_seconds.append(time.perf_counter() - started)
        if signal_name := stop.agreed(accelerator):
            return FitEnd(signal_name, time.perf_counter() - started, name)
    return FitEnd("early stopping" if run.stopper.should_stop else None, time.perf_counter() - started)


def _log_window(s: Session, state: TrainState, progress: EpochProgress) -> None:
    """The mean loss since the last logging step, over every process: one sync, every `logging_steps`."""
    mean_loss = s.accelerator.reduce(progress.window_sum / progress.window_batches, "mean").item()
    check_finite(mean_loss, state, "training")
    log = StepLog(
        state.global_step,
        state.epoch + 1,
        s.loss_units(mean_loss),
        progress.grad_norms[-1],
        current_lr(s.scheduler, s.optimizer),
    )
    state.logged_losses.append([log.step, log.loss])
    s.reporter.step(log)
    progress.window_sum.zero_()
    progress.window_batches = 0


def _end_epoch(s: Session, run: Fitting, learning_rate: float) -> str:
    """The epoch's loss and validation MSE, the best model kept, the epoch reported and checkpointed (its name)."""
    state, progress, stopper = run.state, run.progress, run.stopper
    train_loss = s.accelerator.reduce(progress.loss_sum / max(progress.batches, 1), "mean").item()
    check_finite(train_loss, state, "end of epoch")
    train_loss = s.loss_units(train_loss)
    points: list[np.ndarray] | None = [] if s.selection is not None else None
    val_mse = None if s.val_dl is None else s.mse_units(evaluate(s.accelerator, s.model, s.val_dl, s.head, points))
    state.train_losses.append(train_loss)
    if val_mse is not None:
        state.val_mses.append(val_mse)
    selected = val_mse
    if s.selection is not None and points is not None:  # the competitions' measure, the same on every process
        selected = s.selection(np.concatenate(points))
        state.val_selection.append(selected)
    if selected is None or stopper.update(selected):  # the best so far; the last one without validation
        save_model(s.accelerator, s.model, s.out / BEST, s.data.normalization)
        run.best_checkpoint = checkpoint.checkpoint_name(state.global_step)
        state.best_step = state.global_step
    finite_norms = [n for n in progress.grad_norms if math.isfinite(n)]
    s.reporter.epoch(
        EpochLog(
            epoch=state.epoch + 1,
            step=state.global_step,
            train_loss=train_loss,
            val_mse=val_mse,
            mean_grad_norm=sum(finite_norms) / len(finite_norms) if finite_norms else float("nan"),
            learning_rate=learning_rate,
            best_train_loss=min(state.train_losses),
            best_val_mse=best_val_mse(state),
            selection=(s.config.train.select_on, state.val_selection[-1], stopper.best)
            if state.val_selection
            else None,
            bad_epochs=stopper.bad_epochs,
        )
    )
    state.epoch += 1
    progress.reset()
    return save_checkpoint(s, run)


def save_checkpoint(s: Session, run: Fitting) -> str:
    """A checkpoint of the engine and of `run`, on every process; its name."""
    shared = {
        "state": asdict(run.state),
        "early_stopping": {"best": run.stopper.best, "bad_epochs": run.stopper.bad_epochs},
        "best_checkpoint": run.best_checkpoint,
        "world_size": s.accelerator.num_processes,
        "config": s.config.to_dict(),
        "deepspeed": s.plan.identity(),
        "engine_zero_stage": s.model.zero_optimization_stage(),  # 0 for a lone fp32 process (plan.make_plan)
        "lr_scheduler": s.model.lr_scheduler.state_dict() if s.model.lr_scheduler is not None else None,
        "trackers": s.reporter.trackers,  # the W&B run and TensorBoard folder a resume continues
    }
    return checkpoint.save(
        s.accelerator,
        s.model,
        s.out,
        run.state.global_step,
        shared,
        run.progress.state_dict(),
        s.config.train.save_total_limit,
        run.best_checkpoint,
    )


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


class GradNorm:
    """The global gradient norm (before clipping) of each optimizer step.

    DeepSpeed keeps the norm it clips with under ZeRO and in its fp16/bf16 optimizers, and
    `engine.get_global_grad_norm()` returns it. At stage 0 in fp32, which is what a lone fp32
    process runs (plan.make_plan), DeepSpeed 0.19 clips with its clip_grad_norm_ and drops
    the norm (`_take_model_step`), so that call returns None. There the same norm is summed
    here from each parameter's gradient as torch finishes accumulating it on the step's last
    micro batch (torch's public post-accumulate-grad hook): on one process those are the
    gradients DeepSpeed clips. Stage 0 on several processes (only a --ds_config can ask for
    it) reduces gradients after the hooks run, so its norm is reported as n/a.
    """

    def __init__(self, accelerator: Accelerator, engine: Any) -> None:
        self.engine = engine
        self.squares: torch.Tensor | None = None
        fp32_stage0 = engine.zero_optimization_stage() == 0 and not engine.fp16_enabled()
        if fp32_stage0 and not engine.bfloat16_enabled() and accelerator.num_processes == 1:
            self.squares = torch.zeros((), device=accelerator.device)
            for param in engine.module.parameters():
                if param.requires_grad:
                    param.register_post_accumulate_grad_hook(self._add(accelerator))

    def _add(self, accelerator: Accelerator) -> Any:
        def add(param: torch.Tensor) -> None:
            if accelerator.sync_gradients and param.grad is not None and self.squares is not None:
                self.squares += param.grad.detach().float().pow(2).sum()

        return add

    def read(self) -> float:
        """The last step's norm (one device sync), nan where no norm was computed (no clipping under ZeRO)."""
        norm = self.engine.get_global_grad_norm()
        if norm is None and self.squares is not None:
            norm = self.squares.sqrt()
            self.squares = torch.zeros((), device=self.squares.device)
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


def best_val_mse(state: TrainState) -> float | None:
    """The validation MSE of the epoch kept: the lowest, or where another measure selects, that epoch's."""
    if not state.val_mses:
        return None
    chosen = state.val_selection or state.val_mses
    return state.val_mses[int(np.argmin(chosen))]


@torch.no_grad()
def evaluate(
    accelerator: Accelerator,
    model: torch.nn.Module,
    loader: DataLoader[dict[str, torch.Tensor]],
    head: OutputHead,
    points: list[np.ndarray] | None = None,
) -> float:
    """MSE of the point forecast over every window (and step ahead) of the split, whatever the process count;
    each batch's point forecasts, gathered in window order, are appended to `points` where it is given."""
    model.eval()
    dtype = model_dtype(model)
    squared_error = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    count = 0
    for batch in loader:
        prediction = head.point(model(batch[INPUTS].to(dtype))).float()
        prediction, target = accelerator.gather_for_metrics((prediction, batch[TARGET].float()))
        if points is not None:
            points.append(prediction.cpu().numpy())
        squared_error += ((prediction - target).double() ** 2).sum()
        count += target.numel()
    return (squared_error / count).item()
