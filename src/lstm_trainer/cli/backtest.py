"""`python -m lstm_trainer.cli.backtest`: score a trained model over rolling origins (evaluate/backtest.py),
write backtest.json, backtest.md and backtest.png (outputs/backtest.py).

    python -m lstm_trainer.cli.backtest --model outputs/model --horizon 24 --output_dir backtest
    python -m lstm_trainer.cli.backtest --model you/sine-lstm --dataset prices.csv --data_column close \\
        --horizon 12 --stride 6 --season 12 --output_dir backtest
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_trainer.cli.common import OneLineParser, add_config_flags, run_command
from lstm_trainer.config import DataConfig, TrainConfig
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate.backtest import backtest_split, to_json
from lstm_trainer.files import check_output_folder
from lstm_trainer.outputs.backtest import KIND, PICTURE, RESULTS, TABLE, write_backtest
from lstm_trainer.outputs.render import backtest_line

if TYPE_CHECKING:
    from lstm_trainer.data.covariates import CovariateNames

PROG = "python -m lstm_trainer.cli.backtest"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Score a trained model over rolling forecast origins of the held-out span.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True, help="Model folder written by train.py (output_dir/model), or a Hub model id."
    )
    parser.add_argument(
        "--model_revision", default=None, help="Branch, tag or commit of a Hub --model; None means main."
    )
    parser.add_argument(
        "--horizon", type=int, default=None, help="Steps ahead from each origin; None: the model's own horizon."
    )
    parser.add_argument("--stride", type=int, default=1, help="Steps between consecutive origins.")
    parser.add_argument(
        "--output_dir",
        required=True,
        help="Folder for backtest.json, backtest.md and backtest.png: new, empty, or an earlier backtest's (replaced whole).",
    )
    parser.add_argument("--batch_size", type=int, default=4096, help="Origins per model call.")
    parser.add_argument(
        "--seed",
        type=int,
        default=next(f.default for f in fields(TrainConfig) if f.name == "seed"),
        help="Seed of the synthetic data (train.py's --seed).",
    )
    # The series and its splits are read exactly as training read them; the window length comes from the model.
    add_config_flags(
        parser.add_argument_group("data", DataConfig.__doc__),
        DataConfig,
        skip=("normalization", "seq_length", "horizon"),
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    def work() -> str:
        out = backtest_command(build_parser().parse_args(argv))
        return f"backtest written to {out / RESULTS}, {out / TABLE} and {out / PICTURE}"

    return run_command(work)


def _recorded_covariates(data: dict[str, Any], names: CovariateNames) -> dict[str, list[str] | None]:
    """The covariate flags of the model's normalization.json; flags naming others are an error."""
    recorded = {
        "past_covariates": list(names.past) or None,
        "future_covariates": list(names.future) or None,
        "static_covariates": list(names.static) or None,
        "calendar_features": list(names.calendar) or None,
    }
    for flag, value in recorded.items():
        if data.get(flag) is not None and data[flag] != value:
            raise UserError(
                f"--{flag} {' '.join(data[flag])} differs from the model's ({' '.join(value or ['none'])}); "
                "leave the covariate flags out: the backtest reads the model's own"
            )
    return recorded


def backtest_command(args: argparse.Namespace) -> Path:
    from lstm_trainer.data import prepare_data
    from lstm_trainer.forecast.ensemble import load_predictor
    from lstm_trainer.outputs.hub import resolve_model

    for name in ("stride", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.horizon is not None and args.horizon < 1:
        raise UserError(f"--horizon must be >= 1, got {args.horizon}")
    out = Path(args.output_dir)
    check_output_folder(out, "--output_dir", KIND)  # before the backtest runs, not after
    predictor = load_predictor(resolve_model(args.model, args.model_revision))
    seq_length = predictor.seq_length  # an ensemble's longest member window: each member reads its own last values
    if args.season is not None and args.season > seq_length:
        raise UserError(
            f"--season {args.season} is longer than the model's window ({seq_length} values), so the seasonal naive "
            f"forecast cannot see a season back; give --season {seq_length} or less"
        )
    horizon = args.horizon or predictor.horizon  # default: the model's own horizon
    data = {f.name: getattr(args, f.name) for f in fields(DataConfig) if hasattr(args, f.name)}
    recorded = predictor.norm.covariates  # a covariate model: its own names and training scaling
    if recorded is not None:
        data.update(_recorded_covariates(data, recorded.names))
    # The splits exactly as training cut them, with windows long enough for `horizon` targets.
    prepared = prepare_data(DataConfig(**{**data, "horizon": horizon}, seq_length=predictor.seq_length), args.seed)
    if recorded is not None:
        prepared = prepared.with_covariate_scaling(recorded)
    split = "test" if "test" in prepared.windows else "validation"
    result = backtest_split(predictor, prepared, split, args.stride, args.season, args.batch_size)
    record = to_json(result)
    write_backtest(record, out)
    print(
        f"{result.origins} origins x {result.horizon} steps of the {split} split forecast in {result.seconds:.2f} s: "
        + backtest_line(record)
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
