"""Forecast with a trained model: the next value, or `--horizon` steps fed back one by one.

    python -m lstm_trainer.predict --model outputs/model --input series.csv --data_column y \\
        --horizon 24 --output forecast.csv --plot forecast.png

    python -m lstm_trainer.predict --model you/sine-lstm --input series.csv   # a Hub model id

    python -m lstm_trainer.predict --model outputs/model --input sales.csv --id_column store \
        --time_column day --data_column sales --horizon 7    # every series, one batch per step

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
        "--id_column", default=None,
        help="Column naming the series in a long table: every series is forecast in one call, each normalised "
        "with its own training statistics (or the pooled ones for a series the model never saw).",
    )  # fmt: skip
    parser.add_argument(
        "--fill_missing", default=None, choices=("ffill", "interpolate", "drop"), help="Policy for NaN/inf values."
    )
    parser.add_argument("--horizon", type=int, default=1, help="Steps ahead; each forecast is fed back as input.")
    parser.add_argument(
        "--output", default="forecast.csv",
        help="CSV written with columns step, forecast (with --id_column: the id column first, one block per series).",
    )  # fmt: skip
    parser.add_argument("--plot", default=None, help="Also save a PNG of the recent history and the forecast.")
    return parser


def forecast(
    model: LSTMForecaster, norm: Normalization, history: np.ndarray, horizon: int, seq_length: int
) -> np.ndarray:
    """Autoregressive forecast in data units: `history` [N] -> [horizon]."""
    import numpy as np

    return forecast_many(model, np.array([norm.mean]), np.array([norm.std]), np.asarray(history)[None, -seq_length:], horizon)[0]


def forecast_many(model: LSTMForecaster, mean: np.ndarray, std: np.ndarray, windows: np.ndarray, horizon: int) -> np.ndarray:
    """Every series at once: the last windows [S, T] (data units, each with its own mean and std [S])
    -> forecasts [S, horizon], each step fed back as the newest input. One forward per step."""
    import numpy as np
    import torch

    loc, scale = np.asarray(mean, np.float64)[:, None], np.asarray(std, np.float64)[:, None]
    window = (np.asarray(windows, dtype=np.float64) - loc) / scale  # [S, T]
    steps = []
    with torch.no_grad():
        for _ in range(horizon):
            value = model(torch.tensor(window, dtype=torch.float32)).double().numpy()  # [S]
            steps.append(value)
            window = np.concatenate([window[:, 1:], value[:, None]], axis=1)
    return np.stack(steps, axis=1) * scale + loc  # [S, horizon]


def _run_many(args: argparse.Namespace, model: LSTMForecaster, norm: Normalization, seq_length: int) -> Path:
    """--id_column: every series of a long table, forecast together."""
    import numpy as np

    from lstm_trainer.data.sources import read_table
    from lstm_trainer.data.tables import table_to_series

    table, _ = read_table(args.input)
    columns = [args.data_column] if args.data_column else None
    rows, _read = table_to_series(table, args.input, columns, args.time_column, args.id_column, args.fill_missing)
    long_enough = rows.lengths >= seq_length
    if not long_enough.any():
        raise UserError(
            f"{args.input}: every series is shorter than {seq_length} values (the longest has {int(rows.lengths.max())}); "
            f"the model needs the last {seq_length} (its training window) of each"
        )
    short = [rows.item_ids[s] for s in np.flatnonzero(~long_enough)]
    ends = rows.offsets[1:][long_enough]
    windows = rows.values[ends[:, None] + np.arange(-seq_length, 0)]  # [S, T]: one gather, no loop over series
    ids = [rows.item_ids[s] for s in np.flatnonzero(long_enough)]
    stats = np.array([(n.mean, n.std) for n in map(norm.for_series, ids)])
    predicted = forecast_many(model, stats[:, 0], stats[:, 1], windows, args.horizon)  # [S, H]
    output = Path(args.output)
    tmp = output.with_name(f".{output.name}.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([args.id_column, "step", "forecast"])
        for item, values in zip(ids, predicted, strict=True):
            writer.writerows((item, step, repr(float(v))) for step, v in enumerate(values, start=1))
    tmp.replace(output)
    if short:
        shown = ", ".join(map(repr, short[:5])) + (", ..." if len(short) > 5 else "")
        print(f"note: {len(short)} series shorter than {seq_length} values not forecast: {shown}", file=sys.stderr)
    print(f"{len(ids)} series forecast")
    return output


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
    if args.id_column is not None:
        if args.plot:
            raise UserError("--plot draws one series; leave it out with --id_column, or forecast one series without it")
        return _run_many(args, model, norm, seq_length)
    table, _ = read_table(args.input)
    series = extract_series(table, args.input, args.data_column, args.time_column, args.fill_missing)
    if len(series.values) < seq_length:
        raise UserError(
            f"{args.input}: column {series.column!r} has {len(series.values)} values; the model needs the last "
            f"{seq_length} (its training window) to forecast"
        )
    predicted = forecast(model, norm.for_series(series.column), series.values, args.horizon, seq_length)
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
