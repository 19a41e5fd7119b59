"""What can be checked in a second, before torch, Accelerate or DeepSpeed load.

`train.py` calls `preflight` first: a bad --output_dir, a model too big for the machine, a
missing checkpoint or an output_dir another run is using stop the run here, in one line,
before the minute of set-up that used to come first.
"""

from __future__ import annotations

import os
from pathlib import Path

from lstm_trainer.config import ForecasterConfig, RunConfig
from lstm_trainer.errors import UserError
from lstm_trainer.outputs.output_dir import RunLock, claim


def is_main_process() -> bool:
    """Whether this process writes the run's files: global rank 0, or no launcher at all."""
    return os.environ.get("RANK", "0") == "0"


def preflight(config: RunConfig) -> RunLock | None:
    """Checks that need no heavy library; the lock on output_dir for the main process.

    The main process takes the output_dir's lock, so a second run on the same folder stops
    here with its files untouched; other processes leave the folder to it.
    """
    check_fits_in_memory(ForecasterConfig.of(config))  # covariate channels are not known yet: a few weights
    if not is_main_process():
        return None
    if config.train.resume_from_checkpoint:
        from lstm_trainer.train.checkpoint import resolve

        resolve(Path(config.train.output_dir), config.train.resume_from_checkpoint)  # before the folder is made
    if config.train.push_to_hub and config.train.hub_model_id is not None:
        from lstm_trainer.outputs.hub import check_push_access

        check_push_access(config.train.hub_model_id)  # a push that cannot work stops the run before it trains
    return claim(config.train.output_dir)


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
