"""What can be checked in a second, before torch, Accelerate or DeepSpeed load.

`train.py` calls `preflight` first: a bad --output_dir, a model too big for the machine, a
missing checkpoint or an output_dir another run is using stop the run here, in one line,
before the minute of set-up that used to come first.
"""

from __future__ import annotations

import os
from pathlib import Path

from lstm_trainer.config import ForecasterConfig, RunConfig, TrainConfig
from lstm_trainer.errors import UserError
from lstm_trainer.files import check_replaceable
from lstm_trainer.outputs.output_dir import CHECKPOINTS, LOCK, MODEL, RUN_KIND, SUBFOLDERS, RunLock, claim


def is_main_process() -> bool:
    """Whether this process writes the run's files: global rank 0, or no launcher at all."""
    return os.environ.get("RANK", "0") == "0"


def preflight(config: RunConfig) -> RunLock | None:
    """Checks that need no heavy library; the lock on output_dir for the main process.

    The main process takes the output_dir's lock, so a second run on the same folder stops
    here with its files untouched; other processes leave the folder to it. Nothing is written
    into output_dir before the run's checks are done (`RunLock.start`).
    """
    check_fits_in_memory(ForecasterConfig.of(config))  # covariate channels are not known yet: a few weights
    check_output_dir(config.train)  # reads only, so every process refuses alike
    if not is_main_process():
        return None
    if config.train.resume_from_checkpoint:
        from lstm_trainer.train.checkpoint import resolve

        resolve(Path(config.train.output_dir), config.train.resume_from_checkpoint)  # before the folder is made
    if config.train.push_to_hub and config.train.hub_model_id is not None:
        from lstm_trainer.outputs.hub import check_push_access

        check_push_access(config.train.hub_model_id)  # a push that cannot work stops the run before it trains
    lock = claim(config.train.output_dir)
    try:
        # Under the lock: a run still writing there is named as such, rather than as a run stopped midway.
        check_earlier_run(config.train)
    except BaseException:
        lock.release()
        raise
    return lock


def check_output_dir(train: TrainConfig) -> None:
    """Refuse an output_dir holding files lstm-trainer did not write, whatever the flags: a run writes into
    it and replaces its model/, best/ and checkpoints/."""
    out = Path(train.output_dir)
    # The main process's lock comes before the marker: another rank may look in between (2 processes).
    check_replaceable(out, "--output_dir", RUN_KIND, before_marker=(LOCK,))
    for name, kind in SUBFOLDERS.items():
        check_replaceable(out / name, "--output_dir's", kind)


def check_earlier_run(train: TrainConfig) -> None:
    """Refuse an output_dir whose run got somewhere (results, a model, a checkpoint) unless
    --overwrite_output_dir or --resume_from_checkpoint says what to do with it."""
    out = Path(train.output_dir)
    if train.overwrite_output_dir or train.resume_from_checkpoint:
        return
    if (out / "all_results.json").exists() or (out / MODEL).exists():
        held = "a finished run"
    elif (out / CHECKPOINTS / "latest").exists():
        held = "a run stopped after a checkpoint"
    else:
        return  # new, or a run that stopped before its first checkpoint: nothing to lose
    raise UserError(
        f"--output_dir {out} holds {held}; continue it with --resume_from_checkpoint latest, replace it with "
        "--overwrite_output_dir, or pick another --output_dir (nothing was changed)"
    )


def check_fits_in_memory(shape: ForecasterConfig) -> None:
    """Stop a model whose weights, gradients and Adam moments (16 bytes a parameter) exceed this machine's memory."""
    model = shape.model
    needed = shape.num_parameters() * 16
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise UserError(
            f"--hidden_size {model.hidden_size} x --num_layers {model.num_layers} is {shape.num_parameters():.3g} "
            f"parameters, {needed / 2**30:.3g} GiB to train, more than this machine's {available / 2**30:.3g} GiB; "
            "use a smaller --hidden_size or --num_layers"
        )


def quiet_accelerator_detection() -> None:
    """Tell DeepSpeed it runs on the CPU where torch sees no GPU, so that it does not log its
    'Setting accelerator to CPU' warning from every process when it is first imported."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
