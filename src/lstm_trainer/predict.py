"""Forecast with a trained model: the next value, or `--horizon` steps ahead.

Steps up to the model's own horizon come from its direct multi-step head; steps beyond are
recursive (its forecasts fed back as inputs, a horizon at a time). A probabilistic model
(--distribution or --quantiles in training) also gives quantile columns q0.1, q0.5, ...

    python -m lstm_trainer.predict --model outputs/model --input series.csv --data_column y \\
        --horizon 24 --output forecast.csv --plot forecast.png

    python -m lstm_trainer.predict --model you/sine-lstm --input series.csv   # a Hub model id

Needs only the model folder (safetensors, config.json, normalization.json): no DeepSpeed,
no Accelerate, CPU is enough. The series is read and checked as training reads it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lstm_trainer.cli import OneLineParser
from lstm_trainer.errors import UserError

if TYPE_CHECKING:  # imported where used, so --help stays instant
    import numpy as np

    from lstm_trainer.evaluate import Forecast
    from lstm_trainer.model import LSTMForecaster
    from lstm_trainer.normalization import Normalization

# Quantiles written for a distribution model when --quantiles is not given: the median and an 80% interval.
DEFAULT_LEVELS = (0.1, 0.5, 0.9)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m lstm_trainer.predict",
        description="Forecast the values that follow a series with a model trained by train.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model", required=True,
        help="Model folder written by train.py (output_dir/model), or a Hub model id user/name (downloaded once, then cached).",
    )  # fmt: skip
    parser.add_argument("--model_revision", default=None, help="Branch, tag or commit of a Hub --model; None means main.")
    parser.add_argument("--input", required=True, help="CSV, Parquet or JSON Lines file, one row per time step.")
    parser.add_argument("--data_column", default=None, help="Column holding the series (needed if several are numeric).")
    parser.add_argument("--time_column", default=None, help="Column to order the rows by, if they are not in order.")
    parser.add_argument(
        "--fill_missing", default=None, choices=("ffill", "interpolate", "drop"), help="Policy for NaN/inf values."
    )
    parser.add_argument(
        "--horizon", type=int, default=1,
        help="Steps ahead: the model's direct head up to its own horizon, its forecasts fed back as inputs beyond.",
    )  # fmt: skip
    parser.add_argument(
        "--quantiles", type=float, nargs="+", default=None,
        help="Quantile columns (q0.1, ...) for a probabilistic model; default: a quantile model's own levels, "
        "else 0.1 0.5 0.9. Beyond the model's horizon they leave out the uncertainty of the fed-back steps.",
    )  # fmt: skip
    parser.add_argument("--output", default="forecast.csv", help="CSV written with columns step, forecast (and q<level>).")
    parser.add_argument("--plot", default=None, help="Also save a PNG of the recent history, the forecast and its intervals.")
    return parser


def forecast(
    model: LSTMForecaster, norm: Normalization, history: np.ndarray, horizon: int, seq_length: int
) -> Forecast:
    """The forecast of the `horizon` values after `history` [N], in data units (one window: [1, horizon])."""
    import numpy as np
    import torch

    from lstm_trainer.inference import Predictor

    window = np.asarray(history[-seq_length:], dtype=np.float64)[None]  # [1, T]
    return Predictor(model, norm, torch.device("cpu")).forecast(window, steps=horizon)


def choose_levels(model: LSTMForecaster, asked: list[float] | None) -> tuple[float, ...]:
    """The quantile columns to write: none for a point model."""
    kind, own = model.output_head.kind, model.output_head.levels
    if kind == "point":
        if asked:
            raise UserError("--quantiles needs a probabilistic model (trained with --distribution or --quantiles); this one gives a point forecast")
        return ()
    levels = tuple(sorted(asked)) if asked else (own or DEFAULT_LEVELS)
    if not all(0 < q < 1 for q in levels):
        raise UserError(f"--quantiles must be levels strictly between 0 and 1, got {list(levels)}")
    if kind == "quantile":
        missing = [q for q in levels if not any(abs(q - o) < 1e-9 for o in own or ())]
        if missing:
            raise UserError(f"--quantiles {missing} were not trained; this quantile model gives {list(own or ())}")
    return levels


def run(args: argparse.Namespace) -> Path:
    from lstm_trainer.data.series import extract_series
    from lstm_trainer.data.sources import read_table
    from lstm_trainer.hub import resolve_model
    from lstm_trainer.model import LSTMForecaster
    from lstm_trainer.normalization import Normalization

    if args.horizon < 1:
        raise UserError(f"--horizon must be >= 1, got {args.horizon}")
    folder = resolve_model(args.model, args.model_revision)
    model = LSTMForecaster.from_pretrained(folder)
    norm = Normalization.load(folder) or Normalization.identity()
    seq_length = model.seq_length
    if seq_length is None:
        raise UserError(f"{folder / 'config.json'} does not say the window length it was trained on; retrain with this version")
    table, _ = read_table(args.input)
    series = extract_series(table, args.input, args.data_column, args.time_column, args.fill_missing)
    if len(series.values) < seq_length:
        raise UserError(
            f"{args.input}: column {series.column!r} has {len(series.values)} values; the model needs the last "
            f"{seq_length} (its training window) to forecast"
        )
    levels = choose_levels(model, args.quantiles)
    result = forecast(model, norm, series.values, args.horizon, seq_length)
    predicted = result.point[0]  # [horizon]
    bands = result.quantiles(levels)[0] if levels else None  # [horizon, L]
    output = Path(args.output)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "forecast", *(f"q{q:g}" for q in levels)])
        for step, value in enumerate(predicted, start=1):
            quantiles = [repr(float(v)) for v in bands[step - 1]] if bands is not None else []
            writer.writerow([step, repr(float(value)), *quantiles])
    tmp.replace(output)  # a reader never sees half a file
    if args.plot:
        _plot(series.values[-4 * seq_length :], predicted, Path(args.plot), levels, bands)
    return output


def _plot(
    history: np.ndarray, predicted: np.ndarray, path: Path, levels: tuple[float, ...] = (), bands: np.ndarray | None = None
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
        pairs = [(i, j) for i, q in enumerate(levels) for j, o in enumerate(levels) if q < 0.5 and abs(1 - q - o) < 1e-9]
        for rank, (low, high) in enumerate(pairs):
            width = round(100 * (levels[high] - levels[low]))
            ax.fill_between(steps, bands[:, low], bands[:, high], alpha=0.15 + 0.15 * rank, color="tab:orange",
                            linewidth=0, label=f"{width}% interval")  # fmt: skip
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("step (0 = last known value)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        output = run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"forecast of {args.horizon} step(s) written to {output}" + (f"; plot: {args.plot}" if args.plot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
