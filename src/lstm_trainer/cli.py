"""Command line: flags generated from the config dataclasses, errors as one line and exit 2.

Heavy libraries are imported only after parsing, so `--help` and bad flags answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, replace
from typing import Any, NoReturn

from lstm_trainer.config import (
    CELLS,
    DISTRIBUTIONS,
    FILL_POLICIES,
    HEADS,
    MIXED_PRECISION_CHOICES,
    NORMALIZATIONS,
    REPORT_TO,
    WINDOW_NORMS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    config_fields,
)
from lstm_trainer.errors import UserError
from lstm_trainer.launcher import relaunch_for_cpu_processes
from lstm_trainer.preflight import preflight, quiet_accelerator_detection

GROUPS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
CHOICES = {
    "cell": CELLS,
    "mixed_precision": MIXED_PRECISION_CHOICES,
    "report_to": REPORT_TO,
    "fill_missing": FILL_POLICIES,
    "normalization": NORMALIZATIONS,
    "window_norm": WINDOW_NORMS,
    "head": HEADS,
    "distribution": DISTRIBUTIONS,
}
TYPES = {"int": int, "float": float, "str": str}


def run_command(work: Callable[[], str | None]) -> int:
    """Run one command (predict, backtest, data, hub): its closing line on success; a user error as one
    `error:` line and its exit code (2), no traceback; Ctrl-C as 130."""
    try:
        said = work()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    if said:
        print(said)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one `error:` line (exit code 2), like every other user error."""

    def error(self, message: str) -> NoReturn:
        command = f"python {self.prog}" if self.prog.endswith(".py") else self.prog
        raise UserError(f"{message}; see `{command} --help`")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="train.py",
        description="Train an LSTM/GRU forecaster with Accelerate + DeepSpeed ZeRO-2. "
        "Run with `accelerate launch train.py` (or `python train.py` for one process).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for group_name, cls in GROUPS.items():
        add_config_flags(parser.add_argument_group(group_name, cls.__doc__), cls)
    # DeepSpeed's own launcher (`deepspeed train.py`) passes --local_rank=N to every process,
    # as torch.distributed.launch did; LOCAL_RANK in the environment says the same and is what
    # Accelerate reads, so the flag is accepted and not used.
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def add_config_flags(group: argparse._ActionsContainer, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One `--flag` per dataclass field (but those in `skip`), with its type, default, choices and help."""
    for f in config_fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else None
        if f.type == "bool":  # a switch, as the Transformers examples' --push_to_hub: present means True
            group.add_argument(f"--{f.name}", action="store_true", default=default, help=f.metadata["help"])
            continue
        name = str(f.type).replace(" | None", "")
        many = name.startswith(("list[", "tuple["))  # --data_column a b c, --quantiles 0.1 0.5 0.9
        kind = TYPES[name[name.index("[") + 1 :].split(",")[0].rstrip("]")] if many else TYPES[name]
        group.add_argument(
            f"--{f.name}", type=kind, default=default, choices=CHOICES.get(f.name), help=f.metadata["help"],
            nargs="+" if many else None,
        )


def parse_config(argv: list[str] | None = None) -> RunConfig:
    parser = build_parser()
    # argparse fills in a default only where the namespace lacks the attribute: pre-filled
    # with a marker, whatever still holds it afterwards was not typed.
    untyped = object()
    marked = argparse.Namespace(**{action.dest: untyped for action in parser._actions if action.dest != "help"})
    args = vars(parser.parse_args(argv, namespace=marked))
    typed = frozenset(name for name, value in args.items() if value is not untyped)
    defaults = {action.dest: action.default for action in parser._actions}
    values = {name: defaults[name] if value is untyped else value for name, value in args.items()}
    parts: dict[str, Any] = {
        group: cls(**{f.name: _as_field(f, values[f.name]) for f in config_fields(cls)}) for group, cls in GROUPS.items()
    }
    parts["train"] = replace(parts["train"], typed=typed)
    return RunConfig(**parts)


def _as_field(f: Any, value: Any) -> Any:
    """argparse gives nargs values as a list; a field typed tuple holds a tuple (immutable, hashable)."""
    return tuple(value) if isinstance(value, list) and str(f.type).startswith("tuple[") else value


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        lock = preflight(config)
        # Before torch, Accelerate and DeepSpeed load (seconds): a process that hands over to
        # the DeepSpeed launcher would load them for nothing.
        relaunch_for_cpu_processes()
        quiet_accelerator_detection()
        from lstm_trainer.trainer import run

        run(config, lock)
    except UserError as err:
        # Under a launcher every process hits the same error; one line is enough.
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    return 0

