"""`train.py` (and `accelerate launch train.py`): flags from the config dataclasses, one run, errors as one line and exit 2.

Heavy libraries are imported only after parsing, so `--help` and bad flags answer at once.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from lstm_trainer import threads
from lstm_trainer.cli.common import OneLineParser, add_config_flags
from lstm_trainer.config import DataConfig, ModelConfig, RunConfig, TrainConfig, config_fields
from lstm_trainer.errors import UserError
from lstm_trainer.files import NO_SPACE_ERRNOS, NoSpace
from lstm_trainer.outputs.output_dir import CHECKPOINTS
from lstm_trainer.train.checkpoint import LATEST
from lstm_trainer.train.launch import relaunch_for_cpu_processes
from lstm_trainer.train.preflight import preflight, quiet_accelerator_detection
from lstm_trainer.train.stop import Stopped

GROUPS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


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
        group: cls(**{f.name: _as_field(f, values[f.name]) for f in config_fields(cls)})
        for group, cls in GROUPS.items()
    }
    parts["train"] = replace(parts["train"], typed=typed)
    return RunConfig(**parts)


def _as_field(f: Any, value: Any) -> Any:
    """argparse gives nargs values as a list; a field typed tuple holds a tuple (immutable, hashable)."""
    return tuple(value) if isinstance(value, list) and str(f.type).startswith("tuple[") else value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config: RunConfig | None = None
    try:
        config = parse_config(args)
        lock = preflight(config)
        # Before torch, Accelerate and DeepSpeed load (seconds): a process that hands over to
        # the DeepSpeed launcher would load them for nothing.
        relaunch_for_cpu_processes()
        threads.configure(config.train.num_threads)  # before torch loads: OpenMP reads its settings once
        quiet_accelerator_detection()
        from lstm_trainer.train.trainer import run

        run(config, lock)
    except NoSpace as err:
        err.then = _after_no_space(config)
        return _say(err)
    except OSError as err:
        # Every other write (run_config.json, all_results.json, the pictures, a tracker's files):
        # checkpoints and best/ are written whole or not at all, so they stand as they were.
        if err.errno not in NO_SPACE_ERRNOS:
            raise
        fact = (
            f"{err.filename or 'a file'} could not be written: {err.strerror}; nothing was lost: the checkpoints "
            "and best/ are written whole or not at all"
        )
        full = NoSpace(fact)
        full.then = _after_no_space(config)
        return _say(full)
    except UserError as err:
        return _say(err)
    except Stopped as stopped:
        if os.environ.get("RANK", "0") == "0":
            print(f"{stopped}; resume with: {resume_command(args, stopped.checkpoint)}", file=sys.stderr, flush=True)
        return stopped.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def resume_command(args: list[str], checkpoint: str) -> str:
    """This run's command with --resume_from_checkpoint `checkpoint`.

    The flags are this process's own; a launcher's flags are not visible from here, so under
    one the line says where they go.
    """
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--resume_from_checkpoint":
            skip = True  # its value follows
        elif not arg.startswith("--resume_from_checkpoint="):
            kept.append(arg)
    # A launcher sets LOCAL_RANK; the variables a plain `python train.py` set itself are gone by now.
    launched = "LOCAL_RANK" in os.environ
    prefix = "accelerate launch <the same launch flags> train.py" if launched else "python train.py"
    return f"{prefix} {shlex.join([*kept, '--resume_from_checkpoint', checkpoint])}"


def _say(err: UserError) -> int:
    # Under a launcher every process hits the same error; one line is enough.
    if os.environ.get("RANK", "0") == "0":
        print(f"error: {err}", file=sys.stderr)
    return err.exit_code


def _after_no_space(config: RunConfig | None) -> str:
    """What to run once there is room: resume where a checkpoint stands."""
    if config is not None and (Path(config.train.output_dir) / CHECKPOINTS / LATEST).is_file():
        return "resume with --resume_from_checkpoint latest"
    return "start the run again"


def run_as_script() -> None:
    """`python train.py` and `python -m lstm_trainer.cli.train`: main(), then leave without finalizing.

    After a collective, torch's gloo worker thread frees the work's tensors, which takes the GIL;
    if that is still pending when the main thread has started interpreter shutdown, Python ends
    the worker thread inside C++ and the process aborts (SIGABRT, "terminate called without an
    active exception"): rank 1 of a 2-process run, about one launch in 30 on this machine, after
    all its work was done (core dump: c10d::ProcessGroupGloo::runLoop -> ~AsyncAllgatherWork ->
    take_gil during Py_FinalizeEx). Everything the run writes is closed by now; only stdio and
    logging flush.
    """
    import logging

    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_as_script()
