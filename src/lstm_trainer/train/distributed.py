"""One Accelerator for every launch: plain python, accelerate launch, 1 or N processes, CPU or GPU."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from accelerate import Accelerator, DeepSpeedPlugin
from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs

from lstm_trainer.config import RunConfig
from lstm_trainer.errors import UserError
from lstm_trainer.outputs import tracking
from lstm_trainer.outputs.results import EngineSettings
from lstm_trainer.train.ds_config import (
    ABSENT,
    ResolvedDeepSpeed,
    check_with_deepspeed,
    choose_ds_config,
    get_dotted,
    resolve,
)
from lstm_trainer.train.launcher import FIELDS, FROM_CONFIG_FILE, USE_CPU, launch_request

RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_SET_HERE = "LSTM_TRAINER_OWN_RENDEZVOUS"  # marks rendezvous variables this process set itself
T = TypeVar("T")


def ensure_rendezvous_env() -> bool:
    """Let `python train.py` run as a one-process group; True if the variables were set here.

    Without a launcher DeepSpeed finds no rendezvous variables and goes looking for MPI
    (mpi4py); a launcher sets them all, so only fill them in when none is set.
    """
    if any(name in os.environ for name in RENDEZVOUS):
        return False
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return True


def release_process_state() -> None:
    """Forget this run's process group, so that `run` can be called again in the same process
    (a notebook, a sweep, the tests) after `end_training` destroyed the group.

    Accelerate keeps its state in process-wide singletons and DeepSpeed caches the groups it
    derived from the destroyed one; both are reset, as Accelerate's own test utilities do.
    """
    from accelerate.state import AcceleratorState, GradientState
    from deepspeed.utils import groups

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    groups._WORLD_GROUP = groups._DATA_PARALLEL_GROUP = groups._ZERO_PARAM_INTRA_PARALLEL_GROUP = None
    groups.mesh_device = None
    for cache in (
        groups._EXPERT_PARALLEL_GROUP,
        groups._EXPERT_PARALLEL_GROUP_RANKS,
        groups._EXPERT_DATA_PARALLEL_GROUP,
        groups._EXPERT_DATA_PARALLEL_GROUP_RANKS,
        groups._ALL_TO_ALL_GROUP,
    ):
        cache.clear()
    if os.environ.pop(_SET_HERE, None):
        for name in RENDEZVOUS:  # a fresh port next time: the old one may linger in TIME_WAIT
            os.environ.pop(name, None)


def make_accelerator(config: RunConfig) -> tuple[Accelerator, ResolvedDeepSpeed]:
    """Resolve the DeepSpeed config for this launch, then build the Accelerator from it.

    What `accelerate launch` asked for (an accelerate config with DeepSpeed, or launch flags)
    is merged into the JSON by ds_config.resolve. Every user error (bad JSON, a conflict
    between the two, batch arithmetic, fp16 without CUDA) is raised here, before a process
    group or any file exists.
    """
    if ensure_rendezvous_env():
        os.environ[_SET_HERE] = "1"
    cuda = torch.cuda.is_available()
    world_size = int(os.environ["WORLD_SIZE"])
    launch = launch_request()
    if launch.use_cpu is not None and cuda:
        # Accelerate would drop DeepSpeed for use_cpu, and DeepSpeed would still take the GPU.
        raise UserError(
            f"{launch.use_cpu.origin} asks for the CPU, but a CUDA GPU is visible; to train on the CPU hide it "
            "(CUDA_VISIBLE_DEVICES= accelerate launch ...), else set use_cpu: false"
        )
    ds_json = choose_ds_config(config.train.ds_config, launch)
    resolved = resolve(config.train, ds_json, world_size, cuda, launch)
    check_with_deepspeed(resolved)
    # DeepSpeed 0.19's ZeRO-3 and offload paths call torch collectives that torch 2.13
    # deprecates; only a DeepSpeed upgrade can act on that, and it prints at every step.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)
    _hide_scheduler_start_warning()
    if not cuda:
        _skip_shm_inference_op()
    # Without CUDA, Accelerate leaves the backend unset and DeepSpeed then believes it
    # runs alone (its batch check fails with 2+ processes); gloo is the CPU backend.
    handlers = [] if cuda else [InitProcessGroupKwargs(backend="gloo")]
    # Every value is given explicitly, so Accelerate does not take it from the ACCELERATE_*
    # variables a second time: the plugin's fields, and the accumulation as a plugin (the
    # Accelerator prefers ACCELERATE_GRADIENT_ACCUMULATION_STEPS to a plain count, not to a plugin).
    with _hidden(FROM_CONFIG_FILE, USE_CPU):
        plugin = DeepSpeedPlugin(hf_ds_config=resolved.config, **_plugin_fields(resolved))
        accelerator = Accelerator(
            deepspeed_plugin=plugin,
            mixed_precision=resolved.mixed_precision,
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=resolved.gradient_accumulation_steps),
            kwargs_handlers=handlers,
            # None rather than []: Accelerate warns that an empty list found no trackers.
            log_with=tracking.log_with(config.train) or None,
        )
    assert accelerator.num_processes == world_size, (accelerator.num_processes, world_size)
    return accelerator, resolved


# What DeepSpeedPlugin takes for a field that neither it is given nor the environment sets.
_PLUGIN_DEFAULTS = {"zero_stage": 2, "gradient_clipping": "auto"}


def _plugin_fields(resolved: ResolvedDeepSpeed) -> dict[str, Any]:
    """DeepSpeedPlugin's fields from the resolved config; a value the config leaves out or
    "auto" gets the plugin's own default, which it would otherwise read from the environment."""
    fields: dict[str, Any] = {"gradient_accumulation_steps": resolved.gradient_accumulation_steps}
    for name, key, _, absent_means in FIELDS.values():
        value = get_dotted(resolved.config, key)
        fields[name] = value if value not in (ABSENT, None, "auto") else _PLUGIN_DEFAULTS.get(name, absent_means)
    return fields


@contextlib.contextmanager
def _hidden(*names: str) -> Iterator[None]:
    """Take `names` out of os.environ while the Accelerator is built, and put them back after.

    Two of Accelerate's variables would undo what ds_config.resolve decided, and Accelerate
    offers no argument that overrides them:
    - ACCELERATE_CONFIG_DS_FIELDS: with a DeepSpeed config given, DeepSpeedPlugin refuses to
      start where the accelerate config set a DeepSpeed field (Accelerate's own rule "not
      both"); resolve has already merged those fields into the JSON, or stopped on a conflict.
    - ACCELERATE_USE_CPU (what `accelerate config default` writes on a CPU machine): the
      AcceleratorState turns DeepSpeed off for it; this trainer runs DeepSpeed on the CPU.
    Both take effect only there (a later AcceleratorState() reads ACCELERATE_USE_CPU again,
    which changes nothing once the state is set up on the CPU).
    """
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _skip_shm_inference_op() -> None:
    """Keep DeepSpeed from compiling its shared-memory C++ op when it sets up the CPU backend.

    Its TorchBackend builds `deepspeed_shm_comm` (about 30 s of g++ on the first run of a
    machine, cached in ~/.cache/torch_extensions) for one use only: the tensor-parallel
    inference all-reduce. ZeRO's training collectives go through torch.distributed (gloo)
    with or without it. DeepSpeed builds only ops marked compatible in this dict, which it
    caches in the module so that such edits persist.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


class _NotSchedulerStart(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "get learning rate from scheduler before it has started" not in record.getMessage()


def _hide_scheduler_start_warning() -> None:
    """DeepSpeed's WarmupLR asks itself for the rate of step -1 in its own constructor, to set
    the starting rate, and logs a warning that it was asked: that one line, and only it, is dropped."""
    from deepspeed.utils import logger

    if not any(isinstance(f, _NotSchedulerStart) for f in logger.filters):
        logger.addFilter(_NotSchedulerStart())


def main_process_first_or_raise(accelerator: Accelerator, work: Callable[[], T]) -> T:
    """Run `work` on the main process first (it fills caches, e.g. the datasets cache), then on the others.

    A UserError on the main process still lets the others through the barrier, so they run
    `work` too, meet the same error and every process exits with it, rather than waiting
    for a main process that has gone.
    """
    error: UserError | None = None
    with accelerator.main_process_first():
        try:
            result = work()
        except UserError as err:
            error = err
    if error is not None:
        raise error
    return result


def engine_settings(engine: Any) -> EngineSettings:
    """What DeepSpeed's engine actually runs with, read back from it rather than from our config."""

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
