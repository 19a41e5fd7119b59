"""What every command shares: flags generated from the config dataclasses, errors as one line and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import MISSING
from typing import NoReturn

from lstm_trainer.config import CHOICES, config_fields
from lstm_trainer.errors import UserError
from lstm_trainer.files import NO_SPACE_ERRNOS, NoSpace

TYPES = {"int": int, "float": float, "str": str}


def run_command(work: Callable[[], str | None]) -> int:
    """Run one command (predict, backtest, data, hub): its closing line on success; a user error, or a
    write that found the disk full, as one `error:` line and its exit code (2), no traceback; Ctrl-C as 130."""
    try:
        said = work()
    except OSError as err:
        if err.errno not in NO_SPACE_ERRNOS:
            raise
        # Outputs are written beside their place and renamed (or not at all): what was there stands.
        full = NoSpace(f"{err.filename or 'a file'} could not be written: {err.strerror}; nothing was lost")
        print(f"error: {full}", file=sys.stderr)
        return full.exit_code
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
            f"--{f.name}",
            type=kind,
            default=default,
            choices=CHOICES.get(f.name),
            help=f.metadata["help"],
            nargs="+" if many else None,
        )
