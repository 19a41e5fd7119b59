"""Forecast with a trained model: the next value, or `--horizon` steps ahead.

Steps up to the model's own horizon come from its direct multi-step head; steps beyond are
recursive (its forecasts fed back as inputs, a horizon at a time). A probabilistic model
(--distribution or --quantiles in training) also gives quantile columns q0.1, q0.5, ...

    python -m lstm_trainer.cli.predict --model outputs/model --input series.csv --data_column y \\
        --horizon 24 --output forecast.csv --plot forecast.png

    python -m lstm_trainer.cli.predict --model you/sine-lstm --input series.csv   # a Hub model id

    python -m lstm_trainer.cli.predict --model outputs/model --input sales.csv --id_column store \
        --time_column day --data_column sales --horizon 7    # every series in one batched call

Needs only the model folder (safetensors, config.json, normalization.json): no DeepSpeed,
no Accelerate, CPU is enough. The series is read and checked as training reads it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_trainer.cli.common import OneLineParser, run_command
from lstm_trainer.errors import UserError

# What matplotlib writes with no other package, by suffix.
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")

if TYPE_CHECKING:  # imported where used, so --help stays instant
    import numpy as np

    from lstm_trainer.data.covariates import Covariates
    from lstm_trainer.data.rows import SeriesSet
    from lstm_trainer.forecast.ensemble import EnsemblePredictor
    from lstm_trainer.model.forecast import Forecast
    from lstm_trainer.model.inference import Predictor


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m lstm_trainer.cli.predict",
        description="Forecast the values that follow a series with a model trained by train.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        help="Model folder written by train.py (output_dir/model), or a Hub model id user/name (downloaded once, then cached).",
    )
    parser.add_argument(
        "--model_revision", default=None, help="Branch, tag or commit of a Hub --model; None means main."
    )
    parser.add_argument("--input", required=True, help="CSV, Parquet or JSON Lines file, one row per time step.")
    parser.add_argument(
        "--data_column", default=None, help="Column holding the series (needed if several are numeric)."
    )
    parser.add_argument("--time_column", default=None, help="Column to order the rows by, if they are not in order.")
    parser.add_argument(
        "--id_column",
        default=None,
        help="Column naming the series in a long table: every series is forecast in one call, each normalised "
        "with its own training statistics (a series the model never saw: its history's).",
    )
    parser.add_argument(
        "--fill_missing", default=None, choices=("ffill", "interpolate", "drop"), help="Policy for NaN/inf values."
    )
    parser.add_argument(
        "--future",
        default=None,
        help="For a model trained with --future_covariates or --calendar_features: a CSV, Parquet or JSON Lines "
        "table of their values over the model's horizon after each series' end, one row per series and step "
        "(the --id_column and --time_column of --input, and those columns), as NeuralForecast's futr_df. "
        "--input holds every covariate over the history, beside the values.",
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=1,
        help="Steps ahead: the model's direct head up to its own horizon, its forecasts fed back as inputs beyond "
        "(at most 10,000).",
    )
    parser.add_argument(
        "--quantiles",
        type=float,
        nargs="+",
        default=None,
        help="Quantile columns (q0.1, ...) for a probabilistic model; default: a quantile model's own levels, "
        "else 0.1 0.5 0.9. Beyond the model's horizon they leave out the uncertainty of the fed-back steps.",
    )
    parser.add_argument(
        "--output",
        default="forecast.csv",
        help="CSV written with columns step, forecast, q<level>... (with --id_column: the id column first, one block "
        "per series). Its folder must exist; with --scores and --plot, all are written or none.",
    )
    parser.add_argument(
        "--actuals", default=None,
        help="With --id_column: a table of each series' actual future (same columns) to score the forecast on, "
        "the competitions' way: sMAPE, MASE and OWA against Naive2, each series alone then the mean over series.",
    )  # fmt: skip
    parser.add_argument(
        "--season", type=int, default=None,
        help="Season length for --actuals' MASE scale and Naive2 (default: the model's --deseasonalize season, else 1).",
    )  # fmt: skip
    parser.add_argument(
        "--scores", default=None, help="Per-series scores CSV for --actuals (default: the output's name, .scores.csv)."
    )
    parser.add_argument(
        "--plot",
        default=None,
        help="Also save a picture (.png, .pdf, .svg, .jpg) of the recent history, the forecast and its intervals.",
    )
    return parser


def _write(output: Path, rows: Iterable[list[Any]], header: list[str]) -> Path:
    """The CSV to `output` (a staged temporary file: `files.all_or_none` puts it in place)."""
    with Path(output).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return output


def check_outputs(args: argparse.Namespace) -> None:
    """Every flag that needs no data, and every output's place, before the model or the data is read."""
    from lstm_trainer.config import MAX_FORECAST_STEPS
    from lstm_trainer.files import check_output_file

    if args.horizon < 1:
        raise UserError(f"--horizon must be >= 1, got {args.horizon}")
    if args.horizon > MAX_FORECAST_STEPS:
        raise UserError(
            f"--horizon {args.horizon} is more than {MAX_FORECAST_STEPS:,} steps, the most one command forecasts "
            "(fed back a horizon at a time, its error compounds long before); lower --horizon"
        )
    if args.season is not None and args.season < 1:
        raise UserError(f"--season must be >= 1, got {args.season}")
    if args.id_column is None and args.actuals is not None:
        raise UserError("--actuals scores many series (the competitions' way); use it with --id_column")
    if args.id_column is not None and args.plot:
        raise UserError("--plot draws one series; leave it out with --id_column, or forecast one series without it")
    outputs = {"--output": Path(args.output)}
    if args.actuals is not None:
        outputs["--scores"] = _scores_path(args)
    if args.plot:
        outputs["--plot"] = Path(args.plot)
    for flag, path in outputs.items():
        check_output_file(path, flag, PLOT_SUFFIXES if flag == "--plot" else (".csv",))
    same = [
        flag for flag, path in outputs.items() if flag != "--output" and path.resolve() == outputs["--output"].resolve()
    ]
    if same:
        raise UserError(f"{same[0]} and --output are the same file {args.output}; give each its own")


def _scores_path(args: argparse.Namespace) -> Path:
    return Path(args.scores or Path(args.output).with_suffix(".scores.csv"))


def _steps(result: Forecast, levels: tuple[float, ...], series: int) -> Iterator[list[Any]]:
    """One series' rows: step, forecast, then its quantiles at `levels`."""
    bands = result.quantiles(levels)[series] if levels else None  # [horizon, L]
    for step, value in enumerate(result.point[series], start=1):
        yield [step, repr(float(value)), *([repr(float(v)) for v in bands[step - 1]] if bands is not None else [])]


def _read(args: argparse.Namespace, predictor: Predictor | EnsemblePredictor) -> tuple[SeriesSet, Covariates | None]:
    """--input's series, and for a covariate model their covariates over the history and the horizon (--future)."""
    from lstm_trainer.data.forecast_inputs import forecast_inputs
    from lstm_trainer.data.sources import read_table

    table, _ = read_table(args.input)
    future = (read_table(args.future)[0], args.future) if args.future is not None else None
    columns = [args.data_column] if args.data_column else None
    return forecast_inputs(
        table,
        args.input,
        columns,
        args.time_column,
        args.id_column,
        args.fill_missing,
        predictor.norm.covariates,
        predictor.horizon,
        future,
    )


def _run_many(
    args: argparse.Namespace, predictor: Predictor | EnsemblePredictor, stage: Callable[[Path], Path]
) -> Path:
    """--id_column: every series of a long table, forecast together from its end."""
    from lstm_trainer.model.inference import choose_levels

    levels = choose_levels(predictor.output, args.quantiles)
    rows, covariates = _read(args, predictor)
    histories = [rows.series(s) for s in range(rows.num_series)]
    ids = list(rows.item_ids)
    # One batched call per model horizon over every series, however long each is.
    ended = predictor.forecast_from_end(histories, ids, steps=args.horizon, covariates=covariates)
    result = ended.forecast  # [S, horizon]
    header = [args.id_column, "step", "forecast", *(f"q{q:g}" for q in levels)]
    _write(
        stage(Path(args.output)),
        ([item, *row] for s, item in enumerate(ids) for row in _steps(result, levels, s)),
        header,
    )
    for what, which in (
        (
            f"shorter than the window of {predictor.seq_length} values, left-padded with their first value",
            ended.padded,
        ),
        ("not seen in training, normalised with their own history's statistics", ended.unseen),
    ):
        if which:
            shown = ", ".join(map(repr, which[:5])) + (", ..." if len(which) > 5 else "")
            print(f"note: {len(which)} of {len(ids)} series {what}: {shown}", file=sys.stderr)
    print(f"{len(ids)} series forecast")
    if args.actuals is not None:
        _score(args, histories, ids, result.point, predictor, stage)
    return Path(args.output)


def _score(
    args: argparse.Namespace,
    histories: list[np.ndarray],
    ids: list[str],
    points: np.ndarray,
    predictor: Predictor | EnsemblePredictor,
    stage: Callable[[Path], Path],
) -> None:
    """--actuals: each series' forecast against its actual future, the competitions' way (evaluate/accuracy.py)."""
    import json

    import numpy as np

    from lstm_trainer.data.sources import read_table
    from lstm_trainer.data.tables import table_to_series
    from lstm_trainer.evaluate.accuracy import naive2_per_series, per_series

    table, _ = read_table(args.actuals)
    columns = [args.data_column] if args.data_column else None
    future, _read = table_to_series(table, args.actuals, columns, args.time_column, args.id_column, args.fill_missing)
    where = {item: s for s, item in enumerate(future.item_ids)}
    missing = [item for item in ids if item not in where]
    if missing:
        raise UserError(
            f"{args.actuals} has no values for {len(missing)} series forecast (e.g. {missing[0]!r}); give every "
            "series' future, or leave out --actuals"
        )
    actuals = [np.asarray(future.series(where[item]), np.float64)[: args.horizon] for item in ids]
    short = [item for item, y in zip(ids, actuals, strict=True) if len(y) < args.horizon]
    if short:
        raise UserError(
            f"{args.actuals}: series {short[0]!r} has {len(actuals[ids.index(short[0])])} future values, fewer than "
            f"--horizon {args.horizon}; give {args.horizon} per series or lower --horizon"
        )
    season = args.season or _model_season(predictor)
    short = [item for item, x in zip(ids, histories, strict=True) if season and len(x) <= season]
    if short:
        length = len(histories[ids.index(short[0])])
        raise UserError(
            f"--season {season} is not shorter than series {short[0]!r} ({length} values): MASE's seasonal naive needs "
            "more than one season of history; give a smaller --season"
        )
    forecasts = [points[s] for s in range(len(ids))]
    model = per_series(histories, actuals, forecasts, season)
    reference, _ = naive2_per_series(histories, actuals, season)
    summary = model.summary(reference)
    scores = _scores_path(args)
    _write(
        stage(scores),
        ([item, repr(float(a)), repr(float(b))] for item, a, b in zip(ids, model.smape, model.mase, strict=True)),
        [args.id_column or "series", "smape", "mase"],
    )
    print(
        f"scored on {args.actuals} ({summary.series} series, {args.horizon} steps, season {season or 1}): "
        f"sMAPE {summary.smape:.3f} | MASE {summary.mase:.4f} | OWA {summary.owa:.4f} "
        f"(Naive2: sMAPE {np.mean(reference.smape):.3f}, MASE {np.nanmean(reference.mase):.4f}); per series: {scores}"
    )
    print(json.dumps({"scores": {"model": summary.to_dict(), "naive2": reference.summary().to_dict()}}))


def _model_season(predictor: Predictor | EnsemblePredictor) -> int | None:
    """The season a model trained with --deseasonalize adjusted for (an ensemble's own); None for any other."""
    from lstm_trainer.forecast.ensemble import EnsemblePredictor

    if isinstance(predictor, EnsemblePredictor):
        return predictor.manifest.season if predictor.manifest.season > 1 else None
    seasonal = predictor.norm.seasonal
    return len(next(iter(seasonal.values()))) if seasonal else None


def run(args: argparse.Namespace) -> Path:
    """Every output (--output, --scores, --plot) is written, or none is."""
    from lstm_trainer.files import all_or_none

    check_outputs(args)
    with all_or_none() as stage:
        return _forecast(args, stage)


def _forecast(args: argparse.Namespace, stage: Callable[[Path], Path]) -> Path:
    import numpy as np

    from lstm_trainer.data.series import extract_series
    from lstm_trainer.data.sources import read_table
    from lstm_trainer.forecast.ensemble import load_predictor
    from lstm_trainer.model.inference import choose_levels
    from lstm_trainer.outputs.hub import resolve_model

    folder = resolve_model(args.model, args.model_revision)
    predictor = load_predictor(folder)
    seq_length = predictor.seq_length  # the model's own window (config.json); an ensemble's longest
    if args.id_column is not None:
        return _run_many(args, predictor, stage)
    levels = choose_levels(predictor.output, args.quantiles)
    if predictor.norm.covariates is not None or args.future is not None:
        rows, covariates = _read(args, predictor)
        values, column = rows.series(0).astype(np.float64), rows.item_ids[0]
    else:
        table, _ = read_table(args.input)
        series = extract_series(table, args.input, args.data_column, args.time_column, args.fill_missing)
        values, column, covariates = np.asarray(series.values, np.float64), series.column, None
    ended = predictor.forecast_from_end([values], [column], args.horizon, covariates=covariates)
    result = ended.forecast  # [1, horizon]
    if ended.padded:
        print(
            f"note: the series has {len(values)} values, fewer than the window of {seq_length}: "
            "left-padded with its first value",
            file=sys.stderr,
        )
    _write(stage(Path(args.output)), _steps(result, levels, 0), ["step", "forecast", *(f"q{q:g}" for q in levels)])
    if args.plot:
        bands = result.quantiles(levels)[0] if levels else None  # [horizon, L]
        _plot(values[-4 * seq_length :], result.point[0], stage(Path(args.plot)), levels, bands)
    return Path(args.output)


def _plot(
    history: np.ndarray,
    predicted: np.ndarray,
    path: Path,
    levels: tuple[float, ...] = (),
    bands: np.ndarray | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    past = np.arange(-len(history) + 1, 1)
    ax.plot(past, history, label="history")
    ax.plot(np.arange(0, len(predicted) + 1), np.concatenate([history[-1:], predicted]), label="forecast", marker=".")
    if bands is not None:
        # Each central interval the levels form (q and 1 - q), the widest palest.
        steps = np.arange(1, len(predicted) + 1)
        pairs = [
            (i, j) for i, q in enumerate(levels) for j, o in enumerate(levels) if q < 0.5 and abs(1 - q - o) < 1e-9
        ]
        for rank, (low, high) in enumerate(pairs):
            width = round(100 * (levels[high] - levels[low]))
            ax.fill_between(
                steps,
                bands[:, low],
                bands[:, high],
                alpha=0.15 + 0.15 * rank,
                color="tab:orange",
                linewidth=0,
                label=f"{width}% interval",
            )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("step (0 = last known value)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    def work() -> str:
        args = build_parser().parse_args(argv)
        output = run(args)
        return f"forecast of {args.horizon} step(s) written to {output}" + (f"; plot: {args.plot}" if args.plot else "")

    return run_command(work)


if __name__ == "__main__":
    sys.exit(main())
