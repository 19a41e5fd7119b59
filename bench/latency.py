"""Forecasting latency of an exported model: in the process, as a command, and for many series at once.

    python bench/latency.py --model outputs/model

bench/run.py calls `measure` on the model its one-process trainer run exported. Three
figures: one window forecast inside a running process (the model already loaded, the
median of many calls), the whole `python -m lstm_trainer.cli.predict` command for one series
(interpreter start, imports, reading the file, writing the CSV; best of 3), and one
`Predictor.forecast` call over 10,000 windows (10,000 series, one window each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MANY = 10_000
MAX_ONE_MS, MAX_COMMAND_S = 100.0, 3.0  # the targets of issue 15


def measure(model: Path, env: dict[str, str] | None = None, repeats: int = 50) -> dict[str, Any]:
    import numpy as np
    import torch

    from lstm_trainer.model.inference import Predictor

    torch.set_num_threads(1)  # as `accelerate launch` gives a CPU process, and as the trainer was timed
    predictor = Predictor.load(model)
    length = predictor.model.seq_length or 50
    rng = np.random.default_rng(0)
    one = np.sin(np.arange(length) / 5.0)[None, :] + 0.1 * rng.standard_normal((1, length))
    predictor.forecast(one)  # first call: lazy initialisation, not latency
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.forecast(one)
        times.append(time.perf_counter() - started)
    many = np.sin(np.arange(length)[None, :] / 5.0 + rng.uniform(0, 6.3, (MANY, 1))) + 0.1 * rng.standard_normal(
        (MANY, length)
    )
    started = time.perf_counter()
    predictor.forecast(many)
    many_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="lstm-latency-") as tmp:
        series = Path(tmp) / "series.csv"
        series.write_text("y\n" + "\n".join(f"{v:.6f}" for v in np.sin(np.arange(4 * length) / 5.0)) + "\n")
        command = [
            sys.executable,
            "-m",
            "lstm_trainer.cli.predict",
            "--model",
            str(model),
            "--input",
            str(series),
            "--output",
            str(Path(tmp) / "forecast.csv"),
        ]
        command_times = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
            command_times.append(time.perf_counter() - started)
    one_ms = 1000 * statistics.median(times)
    command_s = min(command_times)
    return {
        "one_window_ms_median": one_ms,
        "predict_command_seconds": command_s,
        "many_series": MANY,
        "many_series_seconds": many_seconds,
        "targets": {
            "one_window_ms": {"value": one_ms, "limit": MAX_ONE_MS, "met": one_ms < MAX_ONE_MS},
            "predict_command_s": {"value": command_s, "limit": MAX_COMMAND_S, "met": command_s < MAX_COMMAND_S},
        },
    }


def markdown(latency: dict[str, Any]) -> str:
    targets = latency["targets"]
    return (
        "\n".join(
            [
                "| forecasting latency (model exported by (b)) | measured | target | holds |",
                "|---|---:|---:|:---:|",
                f"| one window, in a running process (median) | {latency['one_window_ms_median']:.1f} ms | "
                f"< {MAX_ONE_MS:.0f} ms | {'yes' if targets['one_window_ms']['met'] else 'no'} |",
                f"| `python -m lstm_trainer.cli.predict`, one series, whole command | {latency['predict_command_seconds']:.2f} s | "
                f"< {MAX_COMMAND_S:.0f} s | {'yes' if targets['predict_command_s']['met'] else 'no'} |",
                f"| {latency['many_series']:,} series, one window each, one call | {latency['many_series_seconds']:.2f} s | | |",
            ]
        )
        + "\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/latency.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder written by train.py (output_dir/model)")
    args = parser.parse_args()
    latency = measure(Path(args.model))
    print(markdown(latency))
    print(json.dumps(latency, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
