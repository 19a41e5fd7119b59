"""Command line: flags generated from the config dataclasses, errors as one line and exit 2.

Heavy libraries are imported only after parsing, so `--help` and bad flags answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import MISSING, fields
from typing import Any, NoReturn

from lstm_trainer.config import (
    CELLS,
    FILL_POLICIES,
    HEADS,
    NORMALIZATIONS,
    PRECISIONS,
    REPORT_TO,
    DataConfig,
    ModelConfig,
    RunConfig,
    WINDOW_NORMS,
    TrainConfig,
)
from lstm_trainer.errors import UserError
from lstm_trainer.preflight import preflight, quiet_accelerator_detection

GROUPS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
CHOICES = {
    "cell": CELLS,
    "mixed_precision": PRECISIONS,
    "report_to": REPORT_TO,
    "fill_missing": FILL_POLICIES,
    "normalization": NORMALIZATIONS,
    "window_norm": WINDOW_NORMS,
    "head": HEADS,
}
TYPES = {"int": int, "float": float, "str": str}


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
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else None
        if f.type == "bool":  # a switch, as the Transformers examples' --push_to_hub: present means True
            group.add_argument(f"--{f.name}", action="store_true", default=default, help=f.metadata["help"])
            continue
        name = str(f.type).replace(" | None", "")
        many = name.startswith("list[")  # --data_column a b c
        kind = TYPES[name[5:-1] if many else name]
        group.add_argument(
            f"--{f.name}", type=kind, default=default, choices=CHOICES.get(f.name), help=f.metadata["help"],
            nargs="+" if many else None,
        )


def parse_config(argv: list[str] | None = None) -> RunConfig:
    args = vars(build_parser().parse_args(argv))
    parts: dict[str, Any] = {
        group: cls(**{f.name: args[f.name] for f in fields(cls)}) for group, cls in GROUPS.items()
    }
    return RunConfig(**parts)


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_config(argv)
        lock = preflight(config)
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

