"""What `accelerate launch` asked for, read from the environment it gives each process.

`accelerate launch` turns the accelerate config (written by `accelerate config`, or passed
with --config_file) and its own flags into ACCELERATE_* variables. With a DeepSpeed config
it exports the ZeRO stage, offload devices, clipping, accumulation, a DeepSpeed JSON and the
precision, and lists in ACCELERATE_CONFIG_DS_FIELDS which of them the config file set.
This module reads them once, says where each came from, and removes the ones it consumed:
ds_config.py decides how they combine with the project's JSON, and Accelerate must not
apply them a second time behind that decision (its Accelerator prefers the environment's
accumulation count to the one it is given, and ACCELERATE_USE_CPU switches DeepSpeed off).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_trainer.config import PRECISIONS
from lstm_trainer.errors import UserError


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


# variable -> (its name in the accelerate config's deepspeed_config and as a launch flag,
# the DeepSpeed JSON key it sets, parser, what DeepSpeed does when the JSON leaves it out)
FIELDS: dict[str, tuple[str, str, Callable[[str], Any], Any]] = {
    "ACCELERATE_DEEPSPEED_ZERO_STAGE": ("zero_stage", "zero_optimization.stage", int, None),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": (
        "offload_optimizer_device", "zero_optimization.offload_optimizer.device", str.lower, "none",
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": (
        "offload_param_device", "zero_optimization.offload_param.device", str.lower, "none",
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_NVME_PATH": (
        "offload_optimizer_nvme_path", "zero_optimization.offload_optimizer.nvme_path", str, "none",
    ),
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_NVME_PATH": (
        "offload_param_nvme_path", "zero_optimization.offload_param.nvme_path", str, "none",
    ),
    "ACCELERATE_GRADIENT_CLIPPING": ("gradient_clipping", "gradient_clipping", float, None),
    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": (
        "zero3_save_16bit_model", "zero_optimization.stage3_gather_16bit_weights_on_model_save", _bool, False,
    ),
}
ACCUMULATION = "ACCELERATE_GRADIENT_ACCUMULATION_STEPS"
CONFIG_FILE = "ACCELERATE_DEEPSPEED_CONFIG_FILE"
FROM_CONFIG_FILE = "ACCELERATE_CONFIG_DS_FIELDS"
PRECISION = "ACCELERATE_MIXED_PRECISION"
USE_CPU = "ACCELERATE_USE_CPU"
# Taken out of the environment once read (see the module docstring). The precision stays:
# the Accelerator is always given one explicitly, which it prefers to the environment's.
CONSUMED = (*FIELDS, ACCUMULATION, CONFIG_FILE, FROM_CONFIG_FILE, USE_CPU)


@dataclass(frozen=True)
class Requested:
    """One value the launcher asked for and where the user wrote it."""

    key: str  # the DeepSpeed JSON key, dotted: "zero_optimization.stage"
    value: Any
    origin: str  # "zero_stage in /path/default_config.yaml" or "accelerate launch --zero_stage"
    absent_means: Any = None  # DeepSpeed's behaviour when the JSON does not set the key


@dataclass(frozen=True)
class Launcher:
    """The `accelerate launch` command that started this process, as far as it can be seen."""

    argv: list[str] = field(default_factory=list)  # its arguments after "launch"
    config_file: str | None = None  # the accelerate config it read, if any

    def flag(self, name: str) -> bool:
        return any(arg == f"--{name}" or arg.startswith(f"--{name}=") for arg in self.argv)


@dataclass
class LaunchRequest:
    """Everything the launcher passed on that train.py acts on; empty for `python train.py`."""

    values: list[Requested] = field(default_factory=list)
    accumulation: Requested | None = None
    ds_config_file: Requested | None = None
    mixed_precision: Requested | None = None
    use_cpu: Requested | None = None
    where: str = "the accelerate config"  # how messages name the accelerate config file


def read_launch_request(env: Mapping[str, str], launcher: Launcher | None = None) -> LaunchRequest:
    """Parse the ACCELERATE_* variables in `env`; `launcher` tells flags from config-file values."""
    launcher = launcher or Launcher()
    from_file = {name.strip() for name in env.get(FROM_CONFIG_FILE, "").split(",") if name.strip()}
    where = launcher.config_file or "the accelerate config"
    deepspeed_launch = env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"

    def origin(name: str, variable: str) -> str:
        if launcher.flag(name):
            return f"accelerate launch --{name}"
        # A DeepSpeed launch lists the config file's fields; other launches pass only what
        # the config or a flag set, and flags were ruled out above.
        if name in from_file or (launcher.config_file and not deepspeed_launch):
            return f"{name} in {where}"
        if deepspeed_launch and launcher.argv:
            return f"accelerate launch --{name}"
        return f"the environment variable {variable}"

    def parse(variable: str, name: str, convert: Callable[[str], Any]) -> Any:
        try:
            return convert(env[variable])
        except ValueError:
            raise UserError(f"{origin(name, variable)}: {env[variable]!r} is not a valid {name}; fix it") from None

    request = LaunchRequest(where=where)
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
        request.use_cpu = Requested("use_cpu", True, origin("use_cpu", USE_CPU) if not launcher.flag("cpu") else "accelerate launch --cpu")
    request.mixed_precision = _precision(env, launcher, from_file, deepspeed_launch, origin)
    return request


def _precision(
    env: Mapping[str, str], launcher: Launcher, from_file: set[str], deepspeed_launch: bool, origin: Callable[[str, str], str]
) -> Requested | None:
    """The launcher's precision, if anyone chose it.

    Accelerate exports "no" when neither its config nor a flag says anything, so "no"
    counts only where it can be traced to one of them.
    """
    precision = env.get(PRECISION, "").lower()
    if not precision:
        return None
    chosen = precision != "no" or launcher.flag("mixed_precision") or "mixed_precision" in from_file
    if not chosen and launcher.config_file and not deepspeed_launch:
        chosen = _config_sets_precision(launcher.config_file)
    if not chosen:
        return None
    where = origin("mixed_precision", PRECISION)
    if precision not in PRECISIONS:
        raise UserError(f"{where}: {precision} is not supported by this trainer; use one of {', '.join(PRECISIONS)}")
    return Requested("mixed_precision", precision, where)


def _config_sets_precision(config_file: str) -> bool:
    from accelerate.commands.config.config_args import load_config_from_file

    try:
        return load_config_from_file(config_file).mixed_precision is not None
    except (OSError, ValueError, TypeError):
        return False  # the launcher read it a moment ago; if it cannot be read now, say nothing


def _parent_launch() -> tuple[list[str], Path] | None:
    """The arguments after `launch` on the parent's command line, and its working directory;
    None where the parent is not an Accelerate launcher (or cannot be read)."""
    try:
        parent = Path(f"/proc/{os.getppid()}")
        argv = [a.decode() for a in (parent / "cmdline").read_bytes().split(b"\0") if a]
        cwd = (parent / "cwd").resolve()
    except OSError:
        return None
    markers = [i for i, arg in enumerate(argv) if arg in ("launch", "accelerate.commands.launch")]
    return (argv[markers[0] + 1 :], cwd) if markers else None


def find_launcher() -> Launcher:
    """The launcher's command line and config file (a best effort, used in messages and to tell flags apart).

    The launcher is this process's parent: accelerate launch itself, the torch elastic agent
    it runs in-process, or the Accelerate launcher `relaunch_for_cpu_processes` execs on a CPU machine.
    """
    from accelerate.commands.config.config_args import default_config_file

    launch = _parent_launch()
    if launch is None:
        return Launcher()
    args, cwd = _launcher_options(launch[0]), launch[1]
    config_file = default_config_file if os.path.isfile(default_config_file) else None
    for i, arg in enumerate(args):
        if arg in ("--config_file", "--config-file") and i + 1 < len(args):
            config_file = str(cwd / args[i + 1])
        elif arg.startswith(("--config_file=", "--config-file=")):
            config_file = str(cwd / arg.split("=", 1)[1])
    return Launcher(args, config_file)


def _launcher_options(args: list[str]) -> list[str]:
    """The launcher's own options: `args` up to the training script, found by Accelerate's parser."""
    from accelerate.commands.launch import launch_command_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse prints usage before giving up
            script = launch_command_parser().parse_args(args).training_script
    except SystemExit:  # not a command line Accelerate understands; claim no flags
        return []
    return args[: args.index(script)] if script in args else []


def take_launch_request(env: MutableMapping[str, str] = os.environ) -> LaunchRequest:
    """Read the launcher's request, then remove what was consumed so Accelerate does not reapply it."""
    request = read_launch_request(env, find_launcher() if any(name.startswith("ACCELERATE_") for name in env) else None)
    for name in CONSUMED:
        env.pop(name, None)
    return request


def relaunch_for_cpu_processes() -> None:
    """Make `accelerate launch --num_processes N train.py` start N processes on a CPU machine.

    Without GPUs (and without a config saying DeepSpeed) Accelerate picks its simple
    launcher, which starts one process and leaves the rest to MPI. That one process can be
    recognised (launcher variables, a rendezvous address, no rank), so it hands the same
    launch arguments to Accelerate's DeepSpeed launcher, which starts all N of them.
    """
    launched_alone = "ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ and "RANK" not in os.environ
    if not launched_alone or os.environ.get("LSTM_TRAINER_RELAUNCHED"):
        return
    launch = _parent_launch()
    if launch is None:
        raise UserError(
            "accelerate launch started one process for several; add --use_deepspeed "
            "(accelerate launch --use_deepspeed --num_processes N train.py) or use a config from accelerate_configs/"
        )
    launch_args = launch[0]
    print(
        "lstm-trainer: no GPU, so accelerate launch started one process; relaunching through its DeepSpeed "
        "launcher to start them all",
        file=sys.stderr,
        flush=True,
    )
    os.environ["LSTM_TRAINER_RELAUNCHED"] = "1"
    os.execv(sys.executable, [sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", *launch_args])
