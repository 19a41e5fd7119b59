"""`lstm-trainer forecast`: the whole protocol on a table in one command, the forecast as a CSV.

    lstm-trainer forecast --dataset sales.csv --id_column store --time_column month --data_column sales \\
        --horizon 12 --output forecast.csv

Selects the number of training steps on each series' last horizon, trains an ensemble on the whole
history (seeds x lookbacks, one member per core at once), forecasts the median of its members from the
end of every series, and falls back to a baseline that did better on the held-out horizon
(forecast/protocol.py). The season comes from the time column's dates; give --season for plain
integer times. Everything it trains is kept under --output_dir: the ensemble folder (`model/`, what
`predict`, `backtest`, `Forecaster.load` and the Hub read), the selection run and every member's run.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_trainer.cli.common import OneLineParser, run_command
from lstm_trainer.errors import UserError
from lstm_trainer.forecast.preset import SELECT_STEPS
from lstm_trainer.forecast.protocol import SELECT_ON, Request

if TYPE_CHECKING:  # imported where used, so --help stays instant
    import pandas as pd


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lstm-trainer forecast",
        description="Forecast every series of a table: selection, an ensemble fitted on the whole history, its "
        "median, and a baseline where it does better.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--dataset", required=True, help="CSV, Parquet or JSON Lines file (or a Hub dataset id).")
    parser.add_argument("--data_column", required=True, help="Column holding the values.")
    parser.add_argument("--id_column", default=None, help="Column naming the series (none: one series).")
    parser.add_argument("--time_column", default=None, help="Column of times: rows are ordered by it, the season "
                        "is inferred from its dates, and the forecast rows carry the next times.")  # fmt: skip
    parser.add_argument("--horizon", type=int, required=True, help="Steps to forecast after each series' end.")
    parser.add_argument("--season", type=int, default=None, help="Season length (12 monthly, 4 quarterly, 1 none); "
                        "default: inferred from --time_column's dates.")  # fmt: skip
    parser.add_argument("--select_on", default="mase", choices=SELECT_ON, help="Measure the number of training "
                        "steps is chosen on (each series' last horizon): mase, or smape as the M3 competition ranks.")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=6, help="Members per lookback (seeds 42, 43, ...).")
    parser.add_argument("--lookbacks", type=int, nargs="+", default=[2], help="Member windows in horizons "
                        "(each at least a season); members = seeds x lookbacks, e.g. 2 3 4 as N-BEATS' 2H-7H.")  # fmt: skip
    parser.add_argument("--fallback", default="auto", choices=("auto", "none"), help="auto: forecast with a baseline "
                        "(naive, seasonal naive, Naive2) where it beat the model on the held-out horizon.")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=None, help="Members trained at once (default: one per core).")
    parser.add_argument("--train_flags", default="", help=f"More train.py flags after the preset's, quoted (they "
                        f"win), e.g. '--hidden_size 128'. The selection trains at most {SELECT_STEPS} steps.")  # fmt: skip
    parser.add_argument("--output", default="forecast.csv", help="The forecast CSV: id, time (or step), forecast, "
                        "q0.1, q0.5, q0.9 (the members' spread).")  # fmt: skip
    parser.add_argument("--output_dir", default="outputs/forecast", help="Where the ensemble folder (model/) and "
                        "every run it trained are written.")  # fmt: skip
    parser.add_argument("--overwrite_output_dir", action="store_true", help="Replace an earlier forecast's "
                        "--output_dir.")  # fmt: skip
    return parser


def check_outputs(args: argparse.Namespace) -> None:
    """--output and --output_dir usable, before anything is read or trained (files.py's checks, as predict's)."""
    from lstm_trainer.files import check_output_file, check_output_folder
    from lstm_trainer.forecast.protocol import KIND

    check_output_file(Path(args.output), "--output", (".csv",))
    out = Path(args.output_dir)
    # A folder holding anything a forecast did not write: refused, whatever the flags.
    check_output_folder(out, "--output_dir", KIND)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite_output_dir:
        raise UserError(
            f"--output_dir {args.output_dir} is not empty; pass --overwrite_output_dir to replace an earlier forecast, "
            "or pick another folder"
        )


def run(args: argparse.Namespace) -> str:
    from datasets.utils.logging import disable_progress_bar

    from lstm_trainer.api.forecaster import Forecaster
    from lstm_trainer.data.sources import read_table
    from lstm_trainer.forecast import protocol

    disable_progress_bar()  # the table is read twice here; its runs' own bars go to their logs

    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Each rank would run the whole protocol into the same folder.
        raise UserError(
            "lstm-trainer forecast runs its own processes (one member per core, --jobs); start it without a launcher"
        )
    try:
        train_flags = tuple(shlex.split(args.train_flags))
    except ValueError as err:
        raise UserError(f"--train_flags cannot be read ({err}); quote it as one string of flags") from None
    request = Request(
        args.dataset,
        args.horizon,
        args.output_dir,
        args.data_column,
        args.id_column,
        args.time_column,
        args.season,
        args.select_on,
        args.seeds,
        tuple(args.lookbacks),
        args.fallback,
        args.jobs,
        train_flags,
    )
    check_outputs(args)
    outcome = protocol.fit(request, say=lambda line: print(line, file=sys.stderr, flush=True))
    # The forecast as the API makes it from the same folder: one forecast path for both.
    model = Forecaster.load(
        outcome.folder, target_col=args.data_column, id_col=args.id_column, time_col=args.time_column
    )
    frame = model.predict(h=args.horizon, df=_with_dates(read_table(args.dataset)[0].to_pandas(), args.time_column))
    tmp = Path(args.output).with_name(f".{Path(args.output).name}.tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(args.output)  # a reader never sees half a file
    seconds = outcome.manifest.selection["seconds"]
    return (
        f"forecast of {args.horizon} step(s) for {frame.shape[0] // args.horizon} series written to {args.output}; "
        f"ensemble: {outcome.folder} ({len(outcome.manifest.members)} members, {seconds['per_member']:.0f} s each, "
        f"{seconds['selection'] + seconds['members']:.0f} s in all)"
    )


def _with_dates(frame: pd.DataFrame, column: str | None) -> pd.DataFrame:
    """Times read as text (a CSV's dates) as datetimes, so the forecast rows carry the next dates."""
    import pandas as pd

    if column is not None and pd.api.types.is_string_dtype(frame[column]):
        parsed = pd.to_datetime(frame[column], errors="coerce", format="mixed")
        if parsed.notna().all():
            frame[column] = parsed
    return frame


def main(argv: list[str] | None = None) -> int:
    return run_command(lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
