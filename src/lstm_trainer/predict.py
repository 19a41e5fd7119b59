"""Forecast with a trained model: the next value, or `--horizon` steps fed back one by one.

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

    from lstm_trainer.model import LSTMForecaster
    from lstm_trainer.normalization import Normalization


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
    parser.add_argument("--horizon", type=int, default=1, help="Steps ahead; each forecast is fed back as input.")
    parser.add_argument("--output", default="forecast.csv", help="CSV written with columns step, forecast.")
    parser.add_argument("--plot", default=None, help="Also save a PNG of the recent history and the forecast.")
    return parser


def forecast(
    model: LSTMForecaster, norm: Normalization, history: np.ndarray, horizon: int, seq_length: int
) -> np.ndarray:
    """Autoregressive forecast in data units: `history` [N] -> [horizon]."""
    import numpy as np
    import torch

    window = list(norm.apply(np.asarray(history[-seq_length:], dtype=np.float64)))
    steps: list[float] = []
    with torch.no_grad():
        for _ in range(horizon):
            x = torch.tensor([window[-seq_length:]], dtype=torch.float32)  # [1, T]
            value = float(model(x)[0])
            steps.append(value)
            window.append(value)
    return norm.invert(np.asarray(steps, dtype=np.float64))


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
    predicted = forecast(model, norm, series.values, args.horizon, seq_length)
    output = Path(args.output)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "forecast"])
        writer.writerows((step, repr(float(value))) for step, value in enumerate(predicted, start=1))
    tmp.replace(output)  # a reader never sees half a file
    if args.plot:
        _plot(series.values[-4 * seq_length :], predicted, Path(args.plot))
    return output


def _plot(history: np.ndarray, predicted: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    past = np.arange(-len(history) + 1, 1)
    ax.plot(past, history, label="history")
    ax.plot(np.arange(0, len(predicted) + 1), np.concatenate([history[-1:], predicted]), label="forecast", marker=".")
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
