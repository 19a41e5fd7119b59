"""`lstm-trainer VERB ...`: one command with verbs, as `accelerate` and `hf` have.

    lstm-trainer forecast --dataset sales.csv --id_column store --time_column month --data_column sales --horizon 12
    lstm-trainer train --dataset sales.csv ...     # one process; several: accelerate launch train.py
    lstm-trainer predict | backtest | data | hub ...

Each verb is its module's own `main` (its --help, its errors as one line and exit 2). The
`lstm-trainer-predict` style scripts stay as aliases for a release.
"""

from __future__ import annotations

import importlib
import sys

# verb -> (module, what it does); each module has main(argv) -> exit code.
VERBS = {
    "forecast": ("lstm_trainer.cli.forecast", "select, train an ensemble and forecast every series of a table"),
    "train": (
        "lstm_trainer.cli.train",
        "train one model (train.py's flags; accelerate launch train.py for several processes)",
    ),
    "predict": ("lstm_trainer.cli.predict", "forecast with a model or ensemble folder, or a Hub model id"),
    "backtest": ("lstm_trainer.cli.backtest", "score a model over rolling origins of the data's last split"),
    "data": ("lstm_trainer.cli.data", "build, check and push datasets"),
    "hub": ("lstm_trainer.cli.hub", "push a model folder to the Hub"),
    "supervise": (
        "lstm_trainer.supervise",
        "pass SIGTERM/SIGINT on to a launch and wait for it: a container's first process",
    ),
}


def usage() -> str:
    width = max(map(len, VERBS))
    lines = [f"  {verb:<{width}}  {text}" for verb, (_, text) in VERBS.items()]
    return "usage: lstm-trainer VERB [flags]   (lstm-trainer VERB --help for its flags)\n\nverbs:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    verb, rest = args[0], args[1:]
    if verb not in VERBS:
        print(f"error: unknown verb {verb!r}; one of {', '.join(VERBS)} (see `lstm-trainer --help`)", file=sys.stderr)
        return 2
    if verb == "train":
        from lstm_trainer.cli.train import run_as_script

        sys.argv = ["lstm-trainer train", *rest]
        run_as_script()  # leaves the process itself (see its docstring)
    code: int = importlib.import_module(VERBS[verb][0]).main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main())
