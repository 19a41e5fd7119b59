"""The launch: what `accelerate launch` asked for, the processes, and the Accelerator built from the plan.

`accelerate launch` turns the accelerate config (`accelerate config`, or --config_file) and its own
flags into ACCELERATE_* variables, and with DeepSpeed lists in ACCELERATE_CONFIG_DS_FIELDS which of
them the config file set: the only record of where a value came from, so messages name "the
accelerate config" for a listed field and the launch flag otherwise. They are read here into a
plan.LaunchRequest and left in place; plan.make_plan combines them with the flags, the JSON and
the data; `make_accelerator` gives Accelerate the plan's JSON with nothing left "auto", so no
variable can change a value again.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from lstm_trainer.config import PRECISIONS, Plan, TrainConfig
from lstm_trainer.errors import UserError
from lstm_trainer.train.plan import LaunchRequest, Requested

if TYPE_CHECKING:  # the heavy libraries load after parsing: see cli/train.py
    from accelerate import Accelerator


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


# variable -> (its name in the accelerate config and as a launch flag; the DeepSpeed JSON key it
# sets; parser). Kept one row a variable, as a table reads, hence the fmt: skip.
FIELDS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "ACCELERATE_DEEPSPEED_ZERO_STAGE": ("zero_stage", "zero_optimization.stage", int),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": ("offload_optimizer_device", "zero_optimization.offload_optimizer.device", str.lower),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": ("offload_param_device", "zero_optimization.offload_param.device", str.lower),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_NVME_PATH": ("offload_optimizer_nvme_path", "zero_optimization.offload_optimizer.nvme_path", str),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_NVME_PATH": ("offload_param_nvme_path", "zero_optimization.offload_param.nvme_path", str),
    "ACCELERATE_GRADIENT_CLIPPING": ("gradient_clipping", "gradient_clipping", float),
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": ("zero3_save_16bit_model", "zero_optimization.stage3_gather_16bit_weights_on_model_save", _bool),
}  # fmt: skip
ACCUMULATION = "ACCELERATE_GRADIENT_ACCUMULATION_STEPS"
CONFIG_FILE = "ACCELERATE_DEEPSPEED_CONFIG_FILE"
FROM_CONFIG_FILE = "ACCELERATE_CONFIG_DS_FIELDS"
PRECISION = "ACCELERATE_MIXED_PRECISION"
USE_CPU = "ACCELERATE_USE_CPU"
THE_CONFIG = "the accelerate config"
RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_SET_HERE = "LSTM_TRAINER_OWN_RENDEZVOUS"  # marks rendezvous variables this process set itself


def read_launch_request(env: Mapping[str, str], default_config: str | None = None) -> LaunchRequest:
    """Parse the ACCELERATE_* variables in `env`, a pure function of it.

    `default_config`: the default accelerate config file if it exists, named in messages as
    the file to edit unless --config_file named another.
    """
    from_file = {name.strip() for name in env.get(FROM_CONFIG_FILE, "").split(",") if name.strip()}
    # Only Accelerate's DeepSpeed launcher exports the list (empty where no config file set a
    # field), and it exports a DeepSpeed value only from its config file or its own flags.
    deepspeed_launch = FROM_CONFIG_FILE in env

    def origin(name: str, variable: str) -> str:
        # A flag given over a config file value is still listed: the message then names the
        # config, and its advice (change the config or the flag) covers both.
        if name in from_file:
            return f"{name} in {THE_CONFIG}"
        if deepspeed_launch:
            return f"accelerate launch --{name}"
        if variable == PRECISION:  # every launcher exports it, from a flag or the config file
            return f"accelerate launch's {name} (a launch flag or {THE_CONFIG})"
        # Accelerate's other launchers export no DeepSpeed values: someone set it by hand.
        return f"the environment variable {variable}"

    def parse(variable: str, name: str, convert: Callable[[str], Any]) -> Any:
        try:
            return convert(env[variable])
        except ValueError:
            raise UserError(f"{origin(name, variable)}: {env[variable]!r} is not a valid {name}; fix it") from None

    named = (
        "the file given to --config_file"
        if default_config is None
        else f"{default_config} unless --config_file named another"
    )
    request = LaunchRequest(where=f"{THE_CONFIG} ({named})")
    for variable, (name, key, convert) in FIELDS.items():
        if variable in env:
            request.values.append(Requested(key, parse(variable, name, convert), origin(name, variable)))
    if ACCUMULATION in env:
        name = "gradient_accumulation_steps"
        steps = parse(ACCUMULATION, name, int)
        if steps <= 0:
            raise UserError(f"{origin(name, ACCUMULATION)}: gradient_accumulation_steps must be > 0, got {steps}")
        request.accumulation = Requested(name, steps, origin(name, ACCUMULATION))
    if env.get(CONFIG_FILE, "none") not in ("", "none"):
        name = "deepspeed_config_file"
        request.ds_config_file = Requested(name, env[CONFIG_FILE], origin(name, CONFIG_FILE))
    if _bool(env.get(USE_CPU, "")):  # the simple launcher exports it from --cpu or the config file's use_cpu
        where = f"accelerate launch's use_cpu (--cpu, or use_cpu: true in {THE_CONFIG})"
        request.use_cpu = Requested("use_cpu", True, where)
    # Accelerate exports "no" when neither its config nor a flag says anything, so "no" counts
    # only where ACCELERATE_CONFIG_DS_FIELDS lists mixed_precision (a DeepSpeed launch whose
    # config file set it); "no" from a flag or a config without DeepSpeed cannot be told from
    # that default and leaves the precision to the JSON and train.py.
    precision = env.get(PRECISION, "").lower()
    if precision and (precision != "no" or "mixed_precision" in from_file):
        where = origin("mixed_precision", PRECISION)
        if precision not in PRECISIONS:
            raise UserError(
                f"{where}: {precision} is not supported by this trainer; use one of {', '.join(PRECISIONS)}"
            )
        request.mixed_precision = Requested("mixed_precision", precision, where)
    return request


def launch_request() -> LaunchRequest:
    """This process's request: `read_launch_request` on os.environ, which is left as it is."""
    from accelerate.commands.config.config_args import default_config_file

    return read_launch_request(os.environ, default_config_file if os.path.isfile(default_config_file) else None)


def relaunch_for_cpu_processes() -> None:
    """Make `accelerate launch --num_processes N train.py` start N processes on a CPU machine.

    Without GPUs (and without a config saying DeepSpeed) Accelerate picks its simple
    launcher, which starts one process and leaves the rest to MPI, and exports no process
    count. That one process can be recognised (launcher variables, a rendezvous address, no
    rank), so it hands the launcher's own arguments (its parent's command line after
    "launch", unparsed) to Accelerate's DeepSpeed launcher, which starts all N of them.
    """
    launched_alone = USE_CPU in os.environ and "MASTER_ADDR" in os.environ and "RANK" not in os.environ
    if not launched_alone or os.environ.get("LSTM_TRAINER_RELAUNCHED"):
        return
    launch = _parent_launch()
    if launch is None:
        raise UserError(
            "accelerate launch started one process for several; add --use_deepspeed "
            "(accelerate launch --use_deepspeed --num_processes N train.py) or use a config from accelerate_configs/"
        )
    launch_args, cwd = launch
    print(
        "lstm-trainer: no GPU, so accelerate launch started one process; relaunching through its DeepSpeed "
        "launcher to start them all",
        file=sys.stderr,
        flush=True,
    )
    os.environ["LSTM_TRAINER_RELAUNCHED"] = "1"
    os.chdir(cwd)  # where its relative paths (--config_file, train.py) were written
    os.execv(sys.executable, [sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", *launch_args])


def _parent_launch() -> tuple[list[str], str] | None:
    """The arguments after `launch` on the parent's command line, and its working directory;
    None where the parent is not an Accelerate launcher (or cannot be read)."""
    import psutil

    try:
        parent = psutil.Process().parent()
        if parent is None:
            return None
        argv, cwd = parent.cmdline(), parent.cwd()
    except psutil.Error:
        return None
    markers = [i for i, arg in enumerate(argv) if arg in ("launch", "accelerate.commands.launch")]
    return (argv[markers[0] + 1 :], cwd) if markers else None


def ensure_rendezvous_env() -> int:
    """Let `python train.py` run as a one-process group; the process count either way.

    Without a launcher DeepSpeed finds no rendezvous variables and goes looking for MPI
    (mpi4py); a launcher sets them all, so only fill them in when none is set.
    """
    if not any(name in os.environ for name in RENDEZVOUS):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        os.environ[_SET_HERE] = "1"
    return int(os.environ["WORLD_SIZE"])


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
    for name in ("_WORLD_GROUP", "_DATA_PARALLEL_GROUP", "_ZERO_PARAM_INTRA_PARALLEL_GROUP", "mesh_device"):
        setattr(groups, name, None)
    for name in ("_EXPERT_PARALLEL_GROUP", "_EXPERT_DATA_PARALLEL_GROUP", "_ALL_TO_ALL_GROUP"):
        getattr(groups, name).clear()
    groups._EXPERT_PARALLEL_GROUP_RANKS.clear()
    groups._EXPERT_DATA_PARALLEL_GROUP_RANKS.clear()
    if os.environ.pop(_SET_HERE, None):
        for name in RENDEZVOUS:  # a fresh port next time: the old one may linger in TIME_WAIT
            os.environ.pop(name, None)


def make_accelerator(plan: Plan, train: TrainConfig, cuda: bool) -> Accelerator:
    """The Accelerator with DeepSpeed set up exactly as `plan` says, whatever the launcher exported."""
    from accelerate import Accelerator, DeepSpeedPlugin
    from accelerate.utils import GradientAccumulationPlugin, InitProcessGroupKwargs

    from lstm_trainer.outputs import tracking

    # DeepSpeed 0.19's ZeRO-3 and offload paths call torch collectives that torch 2.13
    # deprecates; only a DeepSpeed upgrade can act on that, and it prints at every step.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)
    from deepspeed.utils import logger

    if _not_scheduler_start not in logger.filters:
        logger.addFilter(_not_scheduler_start)
    if not cuda:
        # DeepSpeed's CPU backend would build its shared-memory C++ op (about 30 s of g++ on a
        # machine's first run) for one use only, the tensor-parallel inference all-reduce; ZeRO
        # trains through torch.distributed (gloo) without it. It builds only ops marked compatible.
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    # Two of Accelerate's variables would undo the plan, and no argument overrides them, so they are
    # hidden while the Accelerator is built (later reads change nothing):
    # - ACCELERATE_CONFIG_DS_FIELDS: DeepSpeedPlugin refuses a JSON where the accelerate config set a
    #   DeepSpeed field ("not both"); the plan has merged those fields into the JSON, or stopped.
    # - ACCELERATE_USE_CPU (what `accelerate config default` writes on a CPU machine) turns
    #   DeepSpeed off; this trainer runs DeepSpeed on the CPU.
    hidden = {name: os.environ.pop(name) for name in (FROM_CONFIG_FILE, USE_CPU) if name in os.environ}
    try:
        accelerator = Accelerator(
            deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=plan.config),
            mixed_precision=plan.mixed_precision,
            # A plugin, not a plain count: the Accelerator prefers ACCELERATE_GRADIENT_ACCUMULATION_STEPS to that.
            gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=plan.gradient_accumulation_steps),
            # Without CUDA, Accelerate leaves the backend unset and DeepSpeed then believes it
            # runs alone (its batch check fails with 2+ processes); gloo is the CPU backend.
            kwargs_handlers=[] if cuda else [InitProcessGroupKwargs(backend="gloo")],
            log_with=tracking.log_with(train) or None,  # None, not []: Accelerate warns that [] found no trackers
        )
    finally:
        os.environ.update(hidden)
    assert accelerator.num_processes == int(os.environ["WORLD_SIZE"]), accelerator.num_processes
    return accelerator


def _not_scheduler_start(record: logging.LogRecord) -> bool:
    """DeepSpeed's WarmupLR asks for the rate of step -1 in its own constructor and warns that it
    was asked: that one line, and only it, is dropped."""
    return "get learning rate from scheduler before it has started" not in record.getMessage()
