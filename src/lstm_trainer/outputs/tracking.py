"""Experiment tracking through Accelerate's own tracker API: W&B and TensorBoard.

`log_with` gives the Accelerator its trackers; `start` opens the run (`init_trackers`, with
the run's whole configuration), `log_step` / `log_epoch` / `log_summary` feed it
(`accelerator.log`, the trackers' `log_images`), and `accelerator.end_training()` closes it.
Accelerate does all of this on the main process only, so N processes make one run.

W&B is optional: not installed, no API key, or no server, the run goes on and says so in one
line; the last two log offline (`wandb sync` uploads later). `WANDB_MODE` is honoured.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.tracking import GeneralTracker, TensorBoardTracker
from accelerate.utils import is_tensorboard_available, is_wandb_available

from lstm_trainer.config import TrainConfig
from lstm_trainer.outputs.results import EpochLog, Results, StepLog

WANDB, TENSORBOARD = "wandb", "tensorboard"
# Keys of the record a checkpoint keeps (its trainer_state.json "trackers").
WANDB_ID, TENSORBOARD_RUN = "wandb_run_id", "tensorboard_run"
# The metric names, by when they are logged. sweep.yaml's metric is one of EPOCH_KEYS.
STEP_KEYS = ("train/loss", "train/grad_norm", "train/learning_rate", "train/epoch", "train/step")
EPOCH_KEYS = (
    "epoch/train_loss",
    "epoch/val_mse",
    "epoch/mean_grad_norm",
    "epoch/best_train_loss",
    "epoch/best_val_mse",
    "epoch/patience_counter",
    "epoch/learning_rate",
    "epoch/epoch",
)
SUMMARY_PREFIX, PLOTS_PREFIX = "summary/", "plots/"


def requested(train: TrainConfig) -> list[str]:
    return {"none": [], "all": [WANDB, TENSORBOARD]}.get(train.report_to, [train.report_to])


def tensorboard_dir(train: TrainConfig) -> Path:
    return Path(train.output_dir) / "tensorboard"


def log_with(train: TrainConfig) -> list[str | GeneralTracker]:
    """What `Accelerator(log_with=...)` gets: the installed trackers among those asked for.

    W&B comes first: if its run cannot start, that happens before TensorBoard opens a file
    (see `start`). TensorBoard is Accelerate's own tracker, given as an object so that its
    folder is output_dir/tensorboard/<run name>; it only touches files once the run starts.
    """
    trackers: list[str | GeneralTracker] = []
    wanted = requested(train)
    if WANDB in wanted and is_wandb_available():
        trackers.append(WANDB)
    if TENSORBOARD in wanted and is_tensorboard_available():
        run_name = train.run_name or time.strftime("%Y%m%d-%H%M%S")
        trackers.append(TensorBoardTracker(run_name, tensorboard_dir(train)))
    return trackers


def start(
    accelerator: Accelerator, train: TrainConfig, run_info: dict[str, Any], resume: dict[str, str] | None = None
) -> dict[str, str]:
    """Open the run on the main process, with `run_info` (what run_config.json holds) as its config.

    Returns what a checkpoint keeps so that a resumed run continues the same runs: the W&B run
    id and TensorBoard's run folder. `resume` is that record from the checkpoint resumed: W&B
    reopens the run by its id (`resume="allow"`; offline, a new folder under the same id, which
    `wandb sync` joins) and TensorBoard writes to the same folder. The resumed run logs from the
    step after its checkpoint, so the steps do not overlap (after a kill -9, W&B drops the steps
    the killed run logged past its last checkpoint when the resumed run logs them again).
    """
    if not accelerator.is_main_process:
        return {}
    resume = resume or {}
    names = {_name(tracker) for tracker in accelerator.log_with}
    for wanted, package in ((WANDB, "wandb"), (TENSORBOARD, "tensorboard")):
        if wanted in requested(train) and wanted not in names:
            _say(f"{_label(wanted)} is not installed (pip install {package}); the run goes on without it")
    init_kwargs: dict[str, dict[str, Any]] = {}
    if WANDB in names:
        wandb_kwargs = _wandb_kwargs(train)
        if wandb_kwargs is None:
            _drop_wandb(accelerator)
        else:
            if resume.get(WANDB_ID):
                wandb_kwargs.update(id=resume[WANDB_ID], resume="allow")
            init_kwargs[WANDB] = wandb_kwargs
    for tracker in accelerator.log_with:
        if isinstance(tracker, TensorBoardTracker) and resume.get(TENSORBOARD_RUN):
            tracker.run_name = resume[TENSORBOARD_RUN]  # read by its start(), inside init_trackers
    _init_trackers(accelerator, train, flat_config(run_info), init_kwargs)
    kept: dict[str, str] = {}
    for tracker in accelerator.trackers:
        if tracker.name == WANDB:
            run = tracker.tracker
            kept[WANDB_ID] = run.id
            # Epoch panels against the epoch, not the optimizer step they were logged at.
            run.define_metric("epoch/*", step_metric="epoch/epoch")
            _say(
                f"W&B run {run.name or run.id} in project {train.project_name} ({run.settings.mode}), "
                f"files in {run.dir}"
            )
        elif tracker.name == TENSORBOARD:
            kept[TENSORBOARD_RUN] = tracker.run_name
            _say(f"TensorBoard: tensorboard --logdir {tensorboard_dir(train)}  (this run: {tracker.logging_dir})")
    return kept


def log_step(accelerator: Accelerator, log: StepLog) -> None:
    values = dict(zip(STEP_KEYS, (log.loss, log.grad_norm, log.learning_rate, log.epoch, log.step), strict=True))
    accelerator.log(values, step=log.step)


def log_epoch(accelerator: Accelerator, log: EpochLog) -> None:
    values = (
        log.train_loss,
        log.val_mse,
        log.mean_grad_norm,
        log.best_train_loss,
        log.best_val_mse,
        log.bad_epochs,
        log.learning_rate,
        log.epoch,
    )
    logged = {key: value for key, value in zip(EPOCH_KEYS, values, strict=True) if value is not None}
    accelerator.log(logged, step=log.step)


def log_summary(accelerator: Accelerator, results: Results, pictures: dict[str, Path]) -> None:
    """The end-of-run numbers (every scalar of all_results.json, under its names) and the pictures."""
    step = results.optimizer_steps
    scalars = {
        f"{SUMMARY_PREFIX}{k}": v for k, v in results.to_dict().items() if isinstance(v, (bool, int, float, str))
    }
    accelerator.log(scalars, step=step)
    if not accelerator.trackers or not pictures:
        return
    import numpy as np
    from matplotlib.image import imread

    # The PNGs as written: [H, W, 4] floats in 0..1 -> [1, H, W, 3] bytes.
    images = {
        f"{PLOTS_PREFIX}{name}": np.round(imread(path)[None, ..., :3] * 255).astype(np.uint8)
        for name, path in pictures.items()
    }
    for tracker in accelerator.trackers:
        # [1, H, W, 3] uint8: W&B takes each image as it is, TensorBoard must be told the layout.
        kwargs = {"dataformats": "NHWC"} if tracker.name == TENSORBOARD else {}
        tracker.log_images(images, step=step, **kwargs)


def fail(accelerator: Accelerator, exit_code: int, preempted: bool = False) -> None:
    """Close a run that ends in an error as failed (W&B would otherwise show it finished), or one
    stopped by a signal as preempted, which W&B shows as such until a resume continues it."""
    for tracker in accelerator.trackers:
        if tracker.name == WANDB:
            if preempted:
                tracker.tracker.mark_preempting()
            tracker.tracker.finish(exit_code=exit_code)  # end_training's finish() after it is a no-op


def flat_config(run_info: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """One level of dotted keys with scalar values, as TensorBoard's hparams need (W&B takes it too).

    {"config": {"model": {"cell": "lstm"}}} -> {"model.cell": "lstm"}; None and lists become text.
    """
    flat: dict[str, bool | int | float | str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:
            flat[prefix] = json.dumps(value)

    walk("", {**run_info.get("config", {}), **{k: v for k, v in run_info.items() if k != "config"}})
    return flat


def _init_trackers(
    accelerator: Accelerator, train: TrainConfig, config: dict[str, Any], init_kwargs: dict[str, dict[str, Any]]
) -> None:
    """`init_trackers`, falling back to W&B offline, then to no W&B, if its run cannot start."""
    while True:
        try:
            accelerator.init_trackers(train.project_name, config=config, init_kwargs=init_kwargs)
            return
        except Exception as err:
            if not _wandb_failed(accelerator, err):
                raise
            # W&B comes first in log_with, so nothing else has started yet: start over.
            accelerator.trackers.clear()
            if init_kwargs[WANDB].get("mode") != "offline":
                _say(
                    f"W&B could not start a run ({_one_line(err)}); logging offline to {_wandb_dir(train)} "
                    "instead, upload later with `wandb sync`"
                )
                init_kwargs[WANDB]["mode"] = "offline"
            else:
                _say(f"W&B could not start a run ({_one_line(err)}); the run goes on without it")
                _drop_wandb(accelerator)


def _wandb_kwargs(train: TrainConfig) -> dict[str, Any] | None:
    """`wandb.init` arguments, or None (said why) when W&B cannot run at all.

    Without an API key W&B would prompt (on a terminal) or raise; offline keeps the run.
    """
    try:
        import wandb

        settings = wandb.setup().settings  # reads WANDB_MODE and W&B's settings files
    except Exception as err:  # a broken install, or a WANDB_MODE W&B does not know
        _say(f"W&B cannot start ({_one_line(err, lines=3)}); the run goes on without it")
        return None
    kwargs: dict[str, Any] = {"name": train.run_name}
    if "WANDB_DIR" not in os.environ:  # a user's (or `wandb agent`'s) choice wins
        kwargs["dir"] = str(train.output_dir)
    if settings.mode in ("online", "shared", "run"):
        try:  # finds a key without asking for one and without the network (verify=False)
            has_key = wandb.login(prompt=False, verify=False)
            problem = None if has_key else "W&B has no API key (run `wandb login` or set WANDB_API_KEY)"
        except wandb.errors.Error as err:  # e.g. a key of the wrong format
            problem = f"W&B cannot log in ({_one_line(err)})"
        if problem:
            _say(f"{problem}; logging offline to {_wandb_dir(train)}, upload later with `wandb sync`")
            kwargs["mode"] = "offline"
    return kwargs


def _wandb_failed(accelerator: Accelerator, err: Exception) -> bool:
    if WANDB not in {_name(tracker) for tracker in accelerator.log_with}:
        return False
    import wandb

    return isinstance(err, wandb.errors.Error)


def _drop_wandb(accelerator: Accelerator) -> None:
    accelerator.log_with = [tracker for tracker in accelerator.log_with if _name(tracker) != WANDB]


def _wandb_dir(train: TrainConfig) -> Path:
    return Path(os.environ.get("WANDB_DIR", train.output_dir)) / "wandb"


def _name(tracker: str | GeneralTracker) -> str:
    return tracker.name if isinstance(tracker, GeneralTracker) else str(tracker)


def _label(name: str) -> str:
    return {WANDB: "W&B", TENSORBOARD: "TensorBoard"}[name]


def _one_line(err: BaseException, lines: int = 1) -> str:
    """The error's first `lines` lines as one (W&B's later lines are advice for its own API)."""
    text = " ".join(line.strip() for line in str(err).splitlines()[:lines] if line.strip())
    key = os.environ.get("WANDB_API_KEY")
    if key:  # never print a secret, even if an error message quotes it
        text = text.replace(key, "***")
    return f"{type(err).__name__}: {text[:200]}"


def _say(text: str) -> None:
    print(f"tracking: {text}", flush=True)
