"""A whole run: set up, fit with early stopping and checkpoints, keep the best model, report.

`run` is what `train.py` calls; it returns the `Results` it writes to all_results.json.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DummyOptim, DummyScheduler, set_seed

from lstm_trainer.config import DEEPSPEED_SETTINGS, RunConfig
from lstm_trainer.data import PreparedData, prepare_data
from lstm_trainer.data.loaders import GlobalBatchSampler, eval_loader, train_loader
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate import scoring
from lstm_trainer.files import replace_dir
from lstm_trainer.model.forecaster import LSTMForecaster
from lstm_trainer.model.heads import OutputHead
from lstm_trainer.outputs import hub, report, tracking
from lstm_trainer.outputs.export import model_card, save_model
from lstm_trainer.outputs.output_dir import RunLock
from lstm_trainer.outputs.results import Results, RunSetup
from lstm_trainer.train import checkpoint, perf, reshard, steps
from lstm_trainer.train.distributed import (
    engine_settings,
    main_process_first_or_raise,
    make_accelerator,
    release_process_state,
)
from lstm_trainer.train.ds_config import ResolvedDeepSpeed
from lstm_trainer.train.loop import (
    EpochLog,
    EpochProgress,
    StepLog,
    TrainState,
    evaluate,
    keep_stage0_grad_norm,
    train_epoch,
)
from lstm_trainer.train.preflight import preflight

BEST, MODEL = "best", "model"
# Flags a resumed run may change; any other difference means another experiment.
RESUMABLE_CHANGES = {
    "output_dir",
    "num_train_epochs",
    "early_stopping_patience",
    "logging_steps",
    "eval_batch_size",
    "max_train_steps",
    "checkpointing_steps",
    "save_total_limit",
    "num_threads",
    "resume_from_checkpoint",
    "report_to",
    "project_name",
    "run_name",
    "push_to_hub",
    "hub_model_id",
    "hub_private_repo",
    "hub_revision",
}


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


def run(config: RunConfig, lock: RunLock | None = None) -> Results:
    """Train as `config` says; `lock` is output_dir's lock if the caller already took it."""
    lock = lock or preflight(config)
    try:
        accelerator, ds = make_accelerator(config)
        try:
            return _run(accelerator, ds, config)
        except BaseException as err:
            tracking.fail(accelerator, 130 if isinstance(err, KeyboardInterrupt) else getattr(err, "exit_code", 1))
            raise
        finally:
            accelerator.end_training()  # tears the process group down, on success or error
    finally:
        release_process_state()
        if lock is not None:
            lock.release()


def _run(accelerator: Accelerator, ds: ResolvedDeepSpeed, config: RunConfig) -> Results:
    """setup -> fit -> finish."""
    out = Path(config.train.output_dir)
    # Checked before anything is written, so a bad --resume_from_checkpoint changes nothing.
    resume_from = (
        checkpoint.resolve(out, config.train.resume_from_checkpoint) if config.train.resume_from_checkpoint else None
    )
    session = _setup(accelerator, ds, config, out)
    fit = Fit(session)
    if resume_from is not None:
        fit.resume(resume_from)
    else:
        fit.state.initial_val_mse = session.mse_units(
            evaluate(accelerator, session.model, session.val_dl, session.head)
        )
    fit.run()
    return _finish(session, fit)


@dataclass
class Session:
    """What setup made and fit and finish share: the prepared engine, loaders and data of one run."""

    accelerator: Accelerator
    config: RunConfig
    ds: ResolvedDeepSpeed
    data: PreparedData
    model: Any  # the DeepSpeed engine around LSTMForecaster
    head: OutputHead  # the loss and the point forecast
    optimizer: Any
    scheduler: Any
    train_dl: Any
    val_dl: Any
    sampler: GlobalBatchSampler  # ours, inside the loader Accelerate prepared
    reporter: report.Reporter
    timings: perf.RunTimings
    out: Path

    # Losses are measured on normalised values. With one series every MSE (and NLL, pinball
    # loss) is reported in the data's units; with several, each series is scaled by its own
    # statistics and the losses stay in those units (a series in thousands would otherwise
    # drown one in units), while scoring reports every split over all series' windows in the
    # data's units.
    def mse_units(self, mse: float) -> float:
        return mse if self.data.per_series else self.data.normalization.mse_in_data_units(mse)

    def loss_units(self, loss: float) -> float:
        return loss if self.data.per_series else self.head.loss_in_data_units(loss, self.data.normalization.std)


def _setup(accelerator: Accelerator, ds: ResolvedDeepSpeed, config: RunConfig, out: Path) -> Session:
    """Data, model (its linear skip fitted), loaders, optimizer, all prepared; run_config.json written."""
    train_cfg = config.train
    set_seed(train_cfg.seed)
    timings = perf.RunTimings()
    built = time.perf_counter()
    data = main_process_first_or_raise(accelerator, lambda: prepare_data(config.data, train_cfg.seed))
    timings.dataset_seconds = time.perf_counter() - built
    ds = steps.fit_to_data(ds, train_cfg, len(data.windows["train"]), accelerator.num_processes)
    steps.apply_to_accelerator(accelerator, ds)
    windows = data.windows  # gathered normalised, as the model sees them
    model = LSTMForecaster(config.model, config.data.seq_length, config.data.horizon)
    # All training windows up to scoring's cap (evenly spaced ones beyond), normalised.
    fit_inputs, fit_targets = windows["train"].gather(scoring.linear_fit_windows(windows["train"]))
    model.fit_linear_skip(torch.from_numpy(fit_inputs), torch.from_numpy(fit_targets))
    del fit_inputs, fit_targets
    train_dl = train_loader(windows["train"], ds.micro_batch_size, ds.total_batch_size, train_cfg.seed)
    sampler = train_dl.batch_sampler  # ours; prepare wraps it in a per-process shard
    val_dl = eval_loader(windows["validation"], train_cfg.eval_batch_size)
    optimizer, scheduler = _optimizer_and_scheduler(model, ds, train_cfg.learning_rate)
    head = model.output_head  # holds no weights, so prepare leaves it be
    model, optimizer, train_dl, val_dl, scheduler = accelerator.prepare(model, optimizer, train_dl, val_dl, scheduler)
    keep_stage0_grad_norm(model)

    run_info = {
        "config": config.to_dict(),
        "world_size": accelerator.num_processes,
        "ds_config": ds.source,
        "deepspeed": ds.config,
        # Per-series statistics (one pair per series) live in normalization.json, not in every tracker's config.
        "data": {
            **data.params,
            "normalization": {k: v for k, v in data.normalization.to_dict().items() if k != "series"},
        },
    }
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        checkpoint.remove_interrupted(out)
        (out / "run_config.json").write_text(json.dumps(run_info, indent=2) + "\n")
    reporter = report.Reporter(accelerator, config, ds, sampler.steps_per_epoch, out, run_info)
    accelerator.print(data.describe())
    return Session(
        accelerator,
        config,
        ds,
        data,
        model,
        head,
        optimizer,
        scheduler,
        train_dl,
        val_dl,
        sampler,
        reporter,
        timings,
        out,
    )


class Fit:
    """The epochs: train, evaluate, keep the best model, checkpoint; stop early, at the epoch or step limit."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.state = TrainState()
        self.stopper = EarlyStopping(session.config.train.early_stopping_patience)
        self.progress = EpochProgress(session.accelerator.device)
        self.best_checkpoint: str | None = None
        self.hit_step_limit = False
        self.seconds = 0.0

    def resume(self, path: Path) -> None:
        s = self.s
        shared = _resume(s.accelerator, s.model, s.config, s.ds, path, self.progress)
        self.state = TrainState(**shared["state"])
        self.stopper = EarlyStopping(s.config.train.early_stopping_patience, **shared["early_stopping"])
        self.best_checkpoint = shared["best_checkpoint"]
        s.accelerator.print(f"resumed from {path}: epoch {self.state.epoch + 1}, step {self.state.global_step}")

    def run(self) -> None:
        s, state, train_cfg = self.s, self.state, self.s.config.train
        s.reporter.begin(state.epoch, state.global_step)
        started = time.perf_counter()
        while state.epoch < train_cfg.num_train_epochs and not self.stopper.should_stop and not self.hit_step_limit:
            # Accelerate's loader calls set_epoch(its own iteration count) on a one-process batch
            # sampler at each pass, and that count restarts at 0 in a resumed run: set both.
            s.train_dl.set_epoch(state.epoch)
            s.sampler.set_epoch(state.epoch)
            batches = self.progress.batches
            loader = s.accelerator.skip_first_batches(s.train_dl, batches) if batches else s.train_dl
            epoch_started, cpu_started = time.perf_counter(), time.process_time()
            stats = train_epoch(
                s.accelerator, s.model, s.optimizer, s.scheduler, loader, s.head, state, self.progress,
                train_cfg.logging_steps, self._on_log, self._after_step, on_step=s.reporter.optimizer_step,
            )  # fmt: skip
            if stats is None:
                self.hit_step_limit = True
                break
            s.timings.epoch_train_seconds.append(time.perf_counter() - epoch_started)
            s.timings.epoch_cpu_seconds.append(time.process_time() - cpu_started)
            stats.train_loss = s.loss_units(stats.train_loss)
            val_mse = s.mse_units(evaluate(s.accelerator, s.model, s.val_dl, s.head))
            state.train_losses.append(stats.train_loss)
            state.val_mses.append(val_mse)
            if self.stopper.update(val_mse):  # the best so far
                save_model(s.accelerator, s.model, s.out / BEST, s.data.normalization, s.config.data.seq_length)
                self.best_checkpoint = checkpoint.checkpoint_name(state.global_step)
            s.reporter.epoch(EpochLog(
                epoch=state.epoch + 1, step=state.global_step, train_loss=stats.train_loss, val_mse=val_mse,
                mean_grad_norm=stats.mean_grad_norm, learning_rate=stats.learning_rate,
                best_train_loss=min(state.train_losses), best_val_mse=self.stopper.best, bad_epochs=self.stopper.bad_epochs,
            ))  # fmt: skip
            state.epoch += 1
            self.progress.reset()
            self.save_checkpoint()
            s.timings.elapsed_seconds.append(time.perf_counter() - started)
            self.hit_step_limit = (
                train_cfg.max_train_steps is not None and state.global_step >= train_cfg.max_train_steps
            )
        self.seconds = time.perf_counter() - started

    def save_checkpoint(self) -> str:
        s, state = self.s, self.state
        shared = {
            "state": asdict(state),
            "early_stopping": {"best": self.stopper.best, "bad_epochs": self.stopper.bad_epochs},
            "best_checkpoint": self.best_checkpoint,
            "world_size": s.accelerator.num_processes,
            "config": s.config.to_dict(),
            "deepspeed": s.ds.identity(),
            "engine_zero_stage": s.model.zero_optimization_stage(),  # 0 for a lone process (ds_config.resolve)
            "lr_scheduler": s.model.lr_scheduler.state_dict() if s.model.lr_scheduler is not None else None,
        }
        return checkpoint.save(
            s.accelerator, s.model, s.out, state.global_step, shared, self.progress.state_dict(),
            s.config.train.save_total_limit, self.best_checkpoint,
        )  # fmt: skip

    def _after_step(self) -> bool:
        """Mid-epoch checkpoints, and the --max_train_steps stop; True to stop."""
        train_cfg, timings = self.s.config.train, self.s.timings
        if timings.first_step_time is None:
            timings.first_step_time = time.time()
        at_limit = train_cfg.max_train_steps is not None and self.state.global_step >= train_cfg.max_train_steps
        every = train_cfg.checkpointing_steps
        if at_limit or (every is not None and self.state.global_step % every == 0):
            self.save_checkpoint()
        return at_limit

    def _on_log(self, log: StepLog) -> None:
        log.loss = self.s.loss_units(log.loss)
        self.state.logged_losses.append([log.step, log.loss])
        self.s.reporter.step(log)


def _finish(s: Session, fit: Fit) -> Results:
    """Score the best model and the baselines, export it, write all_results.json, push, report."""
    accelerator, out, train_cfg, state = s.accelerator, s.out, s.config.train, fit.state
    scores, validation_forecast = scoring.score_run(
        accelerator, s.data, out / BEST, train_cfg.eval_batch_size, s.config.data.season
    )
    results = Results(
        train_loss_history=state.train_losses,
        val_mse_history=state.val_mses,
        initial_val_mse=state.initial_val_mse,
        best_val_mse=fit.stopper.best if state.val_mses else None,
        logged_train_losses=state.logged_losses,
        optimizer_steps=state.global_step,
        stopped_early=fit.stopper.should_stop,
        stopped_at_max_steps=fit.hit_step_limit,
        train_seconds=fit.seconds,
        scores=scores,
        noise_floor=s.data.noise_floor,
        setup=RunSetup(
            accelerator.num_processes,
            s.ds.total_batch_size,
            s.ds.micro_batch_size,
            s.ds.gradient_accumulation_steps,
            s.ds.mixed_precision,
            s.ds.source,
        ),
        cost=perf.measure(accelerator, s.timings),
        deepspeed=engine_settings(s.model),
    )
    if accelerator.is_main_process:
        if (out / BEST).is_dir():
            # The portable artifact: the best model, whole, under output_dir/model.
            with replace_dir(out / MODEL) as tmp:
                shutil.copytree(out / BEST, tmp, dirs_exist_ok=True)
                zero_stage = s.ds.config["zero_optimization"].get("stage", 0)
                (tmp / "README.md").write_text(model_card(s.config.to_dict(), results, zero_stage))
        (out / "all_results.json").write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    if train_cfg.push_to_hub and accelerator.is_main_process and (out / MODEL).is_dir():
        assert train_cfg.hub_model_id is not None  # TrainConfig requires it with --push_to_hub
        url = hub.push_model(out / MODEL, train_cfg.hub_model_id, train_cfg.hub_private_repo, train_cfg.hub_revision)
        accelerator.print(f"model pushed to {url}")
    # Last, so that the verdict (and a warning where the model loses to a baseline) ends the output.
    s.reporter.finish(results, validation_forecast)
    return results


def _resume(
    accelerator: Accelerator, model: Any, config: RunConfig, ds: ResolvedDeepSpeed, path: Path, progress: EpochProgress
) -> dict[str, Any]:
    """Load a verified checkpoint into the prepared objects; the run-wide state is returned."""
    shared, per_rank = checkpoint.read_state(path, accelerator.process_index)
    # Older checkpoints ran the stage they asked for.
    saved_stage = shared.get("engine_zero_stage", shared.get("deepspeed", {}).get("zero_stage"))
    restaged = saved_stage is not None and saved_stage != model.zero_optimization_stage()
    resharded = shared["world_size"] != accelerator.num_processes or restaged
    if resharded and not (path / reshard.PORTABLE).is_file():
        raise UserError(
            f"checkpoint {path} was written by {shared['world_size']} processes and this run has "
            f"{accelerator.num_processes}, and it predates whole-state checkpoints; resume with "
            f"--num_processes {shared['world_size']}, or start a new run"
        )
    saved, now = shared["config"], config.to_dict()
    changed = [
        f"--{key} {saved[group][key]} -> {now[group][key]}"
        for group in now
        for key in now[group]
        if key not in RESUMABLE_CHANGES
        and saved.get(group, {}).get(key) != now[group][key]
        # Older checkpoints hold None for a value the JSON decided; the resolved values are compared below.
        and not (key in DEEPSPEED_SETTINGS and saved.get(group, {}).get(key) is None)
    ]
    # Values an accelerate config can set, which no flag shows (absent in older checkpoints).
    saved_ds = shared.get("deepspeed", {})
    changed += [
        f"{key} {saved_ds[key]} -> {value}"
        for key, value in ds.identity().items()
        # Accumulation follows the process count, which a resharded resume changes on purpose.
        if saved_ds.get(key, value) != value and not (resharded and key == "gradient_accumulation_steps")
    ]
    if changed:
        raise UserError(
            f"checkpoint {path} was trained with other settings ({'; '.join(changed)}); "
            "resume with the flags in its run_config.json and the same accelerate config, or start a new run"
        )
    if resharded:
        if ds.identity()["zero_stage"] == 3:
            raise UserError(
                f"checkpoint {path} was written by {shared['world_size']} processes; a ZeRO-3 run resumes only on "
                f"the same count: use --num_processes {shared['world_size']}"
            )
        reshard.load_full_state(model, path)
        model.lr_scheduler.load_state_dict(shared["lr_scheduler"])
        model.lr_scheduler.step(shared["lr_scheduler"]["last_batch_iteration"])  # puts that step's rate in place
        progress.load_state_dict(EpochProgress.merged(checkpoint.read_all_ranks(path), accelerator.num_processes))
        what = (
            f"processes {shared['world_size']} -> {accelerator.num_processes}"
            if shared["world_size"] != accelerator.num_processes
            else f"ZeRO stage {saved_stage} -> {model.zero_optimization_stage()}"
        )
        accelerator.print(
            f"  changed: {what}: the whole fp32 state is cut anew for this run; global batch and data order are "
            "kept, dropout masks are not"
        )
        return shared
    try:
        accelerator.load_state(str(path))
    except (OSError, RuntimeError, KeyError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"checkpoint {path} could not be loaded ({first_line}); resume from another checkpoint"
        ) from None
    progress.load_state_dict(per_rank)
    return shared


def _optimizer_and_scheduler(
    model: torch.nn.Module, ds: ResolvedDeepSpeed, learning_rate: float
) -> tuple[torch.optim.Optimizer, Any]:
    """DeepSpeed builds what the JSON names; Accelerate's placeholders stand in until prepare."""
    if "optimizer" in ds.config:
        optimizer: torch.optim.Optimizer = DummyOptim(model.parameters())
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    scheduler = DummyScheduler(optimizer) if "scheduler" in ds.config else None
    return optimizer, scheduler
