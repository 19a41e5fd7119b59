"""A whole run: set up, fit with early stopping and checkpoints, keep the best model, report.

`run` is what `train.py` calls; it returns the `Results` it writes to all_results.json.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DummyOptim, DummyScheduler, set_seed

from lstm_trainer.config import ForecasterConfig, Plan, RunConfig
from lstm_trainer.data import PreparedData, prepare_data
from lstm_trainer.data.loaders import GlobalBatchSampler, eval_loader, train_loader
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate import scoring
from lstm_trainer.files import replace_dir
from lstm_trainer.model.forecaster import LSTMForecaster
from lstm_trainer.outputs import hub, report, tracking
from lstm_trainer.outputs.export import model_card
from lstm_trainer.outputs.output_dir import BEST, CHECKPOINTS, MODEL, RunLock
from lstm_trainer.outputs.results import EngineSettings, Results
from lstm_trainer.train import checkpoint, perf, reshard
from lstm_trainer.train.launch import ensure_rendezvous_env, launch_request, make_accelerator, release_process_state
from lstm_trainer.train.loop import (
    EarlyStopping,
    EpochProgress,
    FitEnd,
    Fitting,
    TrainState,
    best_val_mse,
    evaluate,
    fit,
)
from lstm_trainer.train.plan import check_with_deepspeed, choose_ds_config, make_plan
from lstm_trainer.train.preflight import preflight
from lstm_trainer.train.session import Session
from lstm_trainer.train.stop import GracefulStop, Stopped

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
    "overwrite_output_dir",
    "report_to",
    "project_name",
    "run_name",
    "push_to_hub",
    "hub_model_id",
    "hub_private_repo",
    "hub_revision",
}


def run(config: RunConfig, lock: RunLock | None = None) -> Results:
    """Train as `config` says; `lock` is output_dir's lock if the caller already took it.

    Raises `Stopped` after a SIGTERM or SIGINT, once the checkpoint of the step in progress is written.
    """
    lock = lock or preflight(config)
    try:
        world_size = ensure_rendezvous_env()
        out = Path(config.train.output_dir)
        # Checked before anything is written, so a bad --resume_from_checkpoint changes nothing.
        spec = config.train.resume_from_checkpoint
        resume_from = checkpoint.resolve(out, spec) if spec else None
        saved = checkpoint.read_state(resume_from, 0)[0] if resume_from is not None else {}
        launch = launch_request()
        ds_json = choose_ds_config(config.train.ds_config, launch)  # a missing or broken JSON stops here, at once
        set_seed(config.train.seed)
        timings = perf.RunTimings()
        built = time.perf_counter()
        # Every process prepares its own copy (the datasets and Hub caches lock their files), before
        # the plan, which needs its size, and before any process group, so that an error stops each alone.
        data = prepare_data(config.data, config.train.seed)
        timings.dataset_seconds = time.perf_counter() - built
        cuda, windows = torch.cuda.is_available(), len(data.windows["train"])
        plan = make_plan(config.train, ds_json, world_size, cuda, windows, launch, saved.get("deepspeed"))
        check_with_deepspeed(plan)
        if resume_from is not None:
            _check_resumable(resume_from, saved, config, plan, world_size)
        accelerator = make_accelerator(plan, config.train, cuda)
        if lock is not None:
            lock.start(replace_earlier=resume_from is None)  # every check has passed: the first write
        try:
            with GracefulStop() as stop:
                session = _setup(accelerator, plan, config, data, timings, out, saved)
                return _run(session, resume_from, stop)
        except BaseException as err:
            code = 130 if isinstance(err, KeyboardInterrupt) else getattr(err, "exit_code", 1)
            tracking.fail(accelerator, code, preempted=isinstance(err, Stopped))
            raise
        finally:
            accelerator.end_training()  # tears the process group down, on success or error
    finally:
        release_process_state()
        if lock is not None:
            lock.release()


def _run(session: Session, resume_from: Path | None, stop: GracefulStop) -> Results:
    """fit (from where `resume_from` left off, if given) -> finish."""
    accelerator, config, out = session.accelerator, session.config, session.out
    if resume_from is not None:
        fitting = _resume(session, resume_from)
    else:
        fitting = Fitting(
            TrainState(), EarlyStopping(config.train.early_stopping_patience), EpochProgress(accelerator.device)
        )
        if session.val_dl is not None:
            fitting.state.initial_val_mse = session.mse_units(
                evaluate(accelerator, session.model, session.val_dl, session.head)
            )
    end = fit(session, fitting, stop)
    stop.restore()  # from here a signal ends the run at once: the last checkpoint is whole
    if end.signalled:
        assert end.stop is not None and end.checkpoint is not None
        raise Stopped(end.stop, fitting.state.global_step, str(out / CHECKPOINTS / end.checkpoint))
    return _finish(session, fitting, end)


def _setup(
    accelerator: Accelerator,
    plan: Plan,
    config: RunConfig,
    data: PreparedData,
    timings: perf.RunTimings,
    out: Path,
    saved: dict[str, Any],
) -> Session:
    """Model (its linear skip fitted), loaders, optimizer, all prepared; run_config.json written.

    `saved`: the run-wide state of the checkpoint resumed ({} for a new run), whose tracker runs are kept.
    """
    train_cfg = config.train
    windows = data.windows  # gathered normalised, as the model sees them
    model = LSTMForecaster(ForecasterConfig.of(config, data.covariate_counts))
    # All training windows up to scoring's cap (evenly spaced ones beyond), normalised.
    fit_inputs, fit_targets = windows["train"].gather(scoring.linear_fit_windows(windows["train"]))
    model.fit_linear_skip(torch.from_numpy(fit_inputs), torch.from_numpy(fit_targets))
    del fit_inputs, fit_targets
    train_dl = train_loader(
        windows["train"], plan.micro_batch_size, plan.total_batch_size, train_cfg.seed, train_cfg.sampling == "series"
    )
    sampler = train_dl.batch_sampler  # ours; prepare wraps it in a per-process shard
    assert isinstance(sampler, GlobalBatchSampler)
    # --val_size 0 holds nothing out: no validation, the last step's model is kept (loop.py).
    val_dl = eval_loader(windows["validation"], train_cfg.eval_batch_size) if "validation" in windows else None
    optimizer, scheduler = _optimizer_and_scheduler(model, plan, train_cfg.learning_rate)
    head = model.output_head  # holds no weights, so prepare leaves it be
    model, optimizer, train_dl, val_dl, scheduler = accelerator.prepare(model, optimizer, train_dl, val_dl, scheduler)

    run_info = {
        "config": config.to_dict(),
        "world_size": accelerator.num_processes,
        "ds_config": plan.source,
        "deepspeed": plan.config,
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
    select = train_cfg.select_on != "mse" and val_dl is not None
    reporter = report.Reporter(accelerator, config, plan, sampler.steps_per_epoch, out, run_info, saved.get("trackers"))
    accelerator.print(data.describe())
    return Session(
        accelerator,
        config,
        plan,
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
        scoring.SelectionScore(data, config.data.season, train_cfg.select_on) if select else None,
    )


def _finish(s: Session, fitting: Fitting, end: FitEnd) -> Results:
    """Score the best model and the baselines, export it, write all_results.json, push, report."""
    accelerator, out, train_cfg, state = s.accelerator, s.out, s.config.train, fitting.state
    scores, validation_forecast = scoring.score_run(
        accelerator, s.data, out / BEST, train_cfg.eval_batch_size, s.config.data.season
    )
    results = Results(
        train_loss_history=state.train_losses,
        val_mse_history=state.val_mses,
        initial_val_mse=state.initial_val_mse,
        best_val_mse=best_val_mse(state),
        logged_train_losses=state.logged_losses,
        optimizer_steps=state.global_step,
        best_step=state.best_step,
        val_selection_history=state.val_selection,
        stopped_early=end.stop == "early stopping",
        stopped_at_max_steps=end.stop == "max_train_steps",
        train_seconds=end.seconds,
        scores=scores,
        noise_floor=s.data.noise_floor,
        world_size=accelerator.num_processes,
        plan=s.plan,
        cost=perf.measure(accelerator, s.timings),
        deepspeed=_engine_settings(s.model),
    )
    if accelerator.is_main_process:
        if (out / BEST).is_dir():
            # The portable artifact: the best model, whole, under output_dir/model.
            with replace_dir(out / MODEL, "model") as tmp:
                shutil.copytree(out / BEST, tmp, dirs_exist_ok=True)
                zero_stage = s.plan.config["zero_optimization"].get("stage", 0)
                (tmp / "README.md").write_text(model_card(s.config.to_dict(), results, zero_stage))
        (out / "all_results.json").write_text(json.dumps(results.to_dict(), indent=2) + "\n")
    if train_cfg.push_to_hub and accelerator.is_main_process and (out / MODEL).is_dir():
        assert train_cfg.hub_model_id is not None  # TrainConfig requires it with --push_to_hub
        url = hub.push_model(out / MODEL, train_cfg.hub_model_id, train_cfg.hub_private_repo, train_cfg.hub_revision)
        accelerator.print(f"model pushed to {url}")
    # Last, so that the verdict (and a warning where the model loses to a baseline) ends the output.
    s.reporter.finish(results, validation_forecast)
    return results


def _resume(s: Session, path: Path) -> Fitting:
    """Load a verified checkpoint into the prepared engine; the fit's state where it left off."""
    shared = _load(s.accelerator, s.model, s.config, s.plan, path, progress := EpochProgress(s.accelerator.device))
    fitting = Fitting(
        TrainState(**shared["state"]),
        EarlyStopping(s.config.train.early_stopping_patience, **shared["early_stopping"]),
        progress,
        shared["best_checkpoint"],
    )
    s.accelerator.print(f"resumed from {path}: epoch {fitting.state.epoch + 1}, step {fitting.state.global_step}")
    return fitting


def _check_resumable(path: Path, shared: dict[str, Any], config: RunConfig, plan: Plan, world_size: int) -> None:
    """Refuse a resume whose settings differ from its checkpoint's, before the run writes anything."""
    saved, now = shared["config"], config.to_dict()
    changed = [
        f"--{key} {saved[group][key]} -> {now[group][key]}"
        for group in now
        for key in now[group]
        if key not in RESUMABLE_CHANGES and saved.get(group, {}).get(key) != now[group][key]
    ]
    # Values an accelerate config or the JSON can set, which no flag shows.
    saved_ds = shared.get("deepspeed", {})
    changed += [
        f"{key} {saved_ds[key]} -> {value}"
        for key, value in plan.identity().items()
        # Accumulation follows the process count, which a resume on another count changes on purpose.
        if saved_ds.get(key, value) != value
        and not (shared["world_size"] != world_size and key == "gradient_accumulation_steps")
    ]
    if changed:
        raise UserError(
            f"checkpoint {path} was trained with other settings ({'; '.join(changed)}); "
            "resume with the flags in its run_config.json and the same accelerate config, or start a new run"
        )


def _load(
    accelerator: Accelerator, model: Any, config: RunConfig, plan: Plan, path: Path, progress: EpochProgress
) -> dict[str, Any]:
    """Load a verified checkpoint into the prepared objects; the run-wide state is returned."""
    shared, per_rank = checkpoint.read_state(path, accelerator.process_index)  # its settings: _check_resumable
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
    if resharded:
        if plan.zero_stage == 3:
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
    model: torch.nn.Module, plan: Plan, learning_rate: float
) -> tuple[torch.optim.Optimizer, Any]:
    """DeepSpeed builds what the JSON names; Accelerate's placeholders stand in until prepare."""
    if "optimizer" in plan.config:
        optimizer: torch.optim.Optimizer = DummyOptim(model.parameters())
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    scheduler = DummyScheduler(optimizer) if "scheduler" in plan.config else None
    return optimizer, scheduler


def _engine_settings(engine: Any) -> EngineSettings:
    """What DeepSpeed's engine actually runs with, read back from it rather than from the plan."""

    def device(offload: Any) -> str:
        # DeepSpeed stores the device as an enum or, depending on its validation, a plain str.
        return str(getattr(offload.device, "value", offload.device)) if offload is not None else "none"

    return EngineSettings(
        zero_stage=int(engine.zero_optimization_stage()),
        offload_optimizer_device=device(engine.zero_offload_optimizer()),
        offload_param_device=device(engine.zero_offload_param()),
        gradient_clipping=float(engine.gradient_clipping()),
        optimizer=type(engine.basic_optimizer).__name__,
    )
