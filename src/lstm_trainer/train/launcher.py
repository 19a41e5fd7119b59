"""What `accelerate launch` asked for, read from the ACCELERATE_* variables it gives each process.

`accelerate launch` turns the accelerate config (written by `accelerate config`, or passed
with --config_file) and its own flags into ACCELERATE_* variables. With DeepSpeed it exports
the ZeRO stage, offload devices, clipping, accumulation, a DeepSpeed JSON and the precision,
and lists in ACCELERATE_CONFIG_DS_FIELDS which of them the config file set; that list is the
only record of where a value came from, so messages name "the accelerate config" for a listed
field and the launch flag otherwise. The path of the config file is not exported: messages
name the default one where it exists, as the file used unless --config_file named another.

This module only reads. ds_config.py decides how these values combine with the project's
JSON; distributed.py then gives Accelerate every value explicitly (DeepSpeedPlugin fields, a
GradientAccumulationPlugin), which it prefers to the variables, and keeps the variables in
place for anyone else who reads them.

One thing cannot be read from the environment: how many processes a simple CPU launch was
asked for. `relaunch_for_cpu_processes` takes the launcher's own command line (psutil, any OS)
and passes it unchanged to Accelerate's DeepSpeed launcher.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lstm_trainer.config import PRECISIONS
from lstm_trainer.errors import UserError


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


# variable -> (its name in the accelerate config's deepspeed_config, as a launch flag and as a
# DeepSpeedPlugin field; the DeepSpeed JSON key it sets; parser; what DeepSpeed does when the
# JSON leaves it out)
FIELDS: dict[str, tuple[str, str, Callable[[str], Any], Any]] = {
    "ACCELERATE_DEEPSPEED_ZERO_STAGE": ("zero_stage", "zero_optimization.stage", int, None),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": (
        "offload_optimizer_device",
        "zero_optimization.offload_optimizer.device",
        str.lower,
        "none",
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": (
        "offload_param_device",
        "zero_optimization.offload_param.device",
        str.lower,
        "none",
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_NVME_PATH": (
        "offload_optimizer_nvme_path",
        "zero_optimization.offload_optimizer.nvme_path",
        str,
        "none",
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_NVME_PATH": (
        "offload_param_nvme_path",
        "zero_optimization.offload_param.nvme_path",
        str,
        "none",
    ),
    "ACCELERATE_GRADIENT_CLIPPING": ("gradient_clipping", "gradient_clipping", float, None),
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": (
        "zero3_save_16bit_model",
        "zero_optimization.stage3_gather_16bit_weights_on_model_save",
        _bool,
        False,
    ),
}
ACCUMULATION = "ACCELERATE_GRADIENT_ACCUMULATION_STEPS"
CONFIG_FILE = "ACCELERATE_DEEPSPEED_CONFIG_FILE"
FROM_CONFIG_FILE = "ACCELERATE_CONFIG_DS_FIELDS"
PRECISION = "ACCELERATE_MIXED_PRECISION"
USE_CPU = "ACCELERATE_USE_CPU"
THE_CONFIG = "the accelerate config"


@dataclass(frozen=True)
class Requested:
    """One value the launcher asked for and where the user wrote it."""

    key: str  # the DeepSpeed JSON key, dotted: "zero_optimization.stage"
    value: Any
    origin: str  # "zero_stage in the accelerate config" or "accelerate launch --zero_stage"
    absent_means: Any = None  # DeepSpeed's behaviour when the JSON does not set the key


@dataclass
class LaunchRequest:
    """Everything the launcher passed on that train.py acts on; empty for `python train.py`."""

    values: list[Requested] = field(default_factory=list)
    accumulation: Requested | None = None
    ds_config_file: Requested | None = None
    mixed_precision: Requested | None = None
    use_cpu: Requested | None = None
    where: str = THE_CONFIG  # how messages name the accelerate config file


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
    for variable, (name, key, convert, absent_means) in FIELDS.items():
        if variable in env:
            request.values.append(Requested(key, parse(variable, name, convert), origin(name, variable), absent_means))
    if ACCUMULATION in env:
        name = "gradient_accumulation_steps"
        steps = parse(ACCUMULATION, name, int)
        if steps <= 0:
            raise UserError(f"{origin(name, ACCUMULATION)}: gradient_accumulation_steps must be > 0, got {steps}")
        request.accumulation = Requested(name, steps, origin(name, ACCUMULATION))
    if env.get(CONFIG_FILE, "none") not in ("", "none"):
        name = "deepspeed_config_file"
        request.ds_config_file = Requested(name, env[CONFIG_FILE], origin(name, CONFIG_FILE))
    if _bool(env.get(USE_CPU, "")):
        # The simple launcher exports it from --cpu or the config file's use_cpu.
        request.use_cpu = Requested(
            "use_cpu", True, f"accelerate launch's use_cpu (--cpu, or use_cpu: true in {THE_CONFIG})"
        )
    request.mixed_precision = _precision(env, from_file, origin)
    return request


def _precision(env: Mapping[str, str], from_file: set[str], origin: Callable[[str, str], str]) -> Requested | None:
    """The launcher's precision, if anyone chose it.

    Accelerate exports "no" when neither its config nor a flag says anything, so "no" counts
    only where ACCELERATE_CONFIG_DS_FIELDS lists mixed_precision (a DeepSpeed launch whose
    config file set it); "no" from a flag or a config without DeepSpeed cannot be told from
    that default and leaves the precision to the JSON and train.py.
    """
    precision = env.get(PRECISION, "").lower()
    if not precision or (precision == "no" and "mixed_precision" not in from_file):
        return None
    where = origin("mixed_precision", PRECISION)
    if precision not in PRECISIONS:
        raise UserError(f"{where}: {precision} is not supported by this trainer; use one of {', '.join(PRECISIONS)}")
    return Requested("mixed_precision", precision, where)


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
