"""Forecasting latency of an exported model: in the process, as a command, and for many series at once.

    python bench/latency.py --model outputs/model    # writes docs/results/latency/standalone.json

bench/run.py calls `measure` on the model its one-process trainer run exported. Three
figures: one window forecast inside a running process (the model already loaded, the
median of many calls), the whole `python -m lstm_trainer.cli.predict` command for one series
(interpreter start, imports, reading the file, writing the CSV; best of 3), and one
`Predictor.forecast` call over 10,000 windows (10,000 series, one window each).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import record  # noqa: E402  (bench/record.py: the docs' result files)
import tables  # noqa: E402  (bench/tables.py: the table, rendered from the record)

MANY = 10_000
MAX_ONE_MS, MAX_COMMAND_S = tables.MAX_ONE_MS, tables.MAX_COMMAND_S  # the targets of issue 15


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


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/latency.py", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a model folder written by train.py (output_dir/model)")
    record.add_flags(parser, name="standalone")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    latency = measure(Path(args.model))
    print(tables.latency(latency, f"the model in {args.model}"))
    print(json.dumps(latency, indent=2))
    record.write("latency", args.name, {"model": f"the model in {args.model}", "latency": latency}, load_before,
                 args.results_dir)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
