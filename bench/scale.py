"""Scale table: points -> peak memory per process, data set-up seconds, training windows per second.

    python bench/scale.py                                 # 10^4 .. 10^8 points, 1 and 2 processes, 1 .. 10,000 series
    python bench/scale.py --points 1e4 1e6 --series 1 --processes 1   # a quick subset

Each cell is fresh processes on series rows written once with `save_to_disk` (the noisy sine,
cut into `series` equal series), read as train.py reads a folder: `prepare_data`, the linear
skip's fit, the train loader. Then 20 optimizer steps of the default model (micro batch 128,
after 3 warm-up steps) give windows per second. Two processes read the same folder at once,
as two ranks on one machine do: RSS counts the memory-mapped series in each; PSS (measured
while both are alive) splits shared pages between them, so the series counts once in total.
Writes bench/results/scale.md and scale.json, and docs/results/scale/default.json, the record the
docs' table is rendered from (bench/record.py; --results_dir and --name move it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import record  # noqa: E402  (bench/record.py: the docs' result files)
import tables  # noqa: E402  (bench/tables.py: the table, rendered from the record)

SEQ_LENGTH = 50
STEPS, WARMUP, BATCH = 20, 3, 128


def write_rows(folder: Path, points: int, series: int) -> None:
    """`series` series of points // series values each: the reference sine, cut in pieces."""
    import numpy as np
    from datasets import DatasetDict

    from lstm_trainer.config import DataConfig
    from lstm_trainer.data.rows import NO_CLOCK, SeriesSet
    from lstm_trainer.data.synthetic import synthetic_series

    each = points // series
    # num_train_samples chosen so the generated series holds `points` values or more.
    values = synthetic_series(DataConfig(num_train_samples=points, num_val_samples=1), 42)[: each * series]
    rows = SeriesSet(
        values,
        np.arange(series + 1, dtype=np.int64) * each,
        [f"s{i}" for i in range(series)],
        np.full(series, NO_CLOCK),
    )
    DatasetDict({"train": rows.to_dataset()}).save_to_disk(str(folder))


def peak_rss_mib() -> float:
    """This process's high-water RSS since exec (VmHWM). Not getrusage's ru_maxrss: Linux carries
    the forking parent's RSS into it across exec, and the parent here just wrote 10^8 points."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) / 1024


def pss_mib() -> float:
    """Proportional set size: this process's pages, each shared page divided among its sharers."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:])
    return int(fields["Pss"].split()[0]) / 1024


def meet(barrier: Path, name: str, processes: int) -> None:
    """Wait until every measured process got here (a marker file each), so PSS sees them all alive."""
    (barrier / f"{name}.{os.getpid()}").touch()
    deadline = time.time() + 300
    while len(list(barrier.glob(f"{name}.*"))) < processes and time.time() < deadline:
        time.sleep(0.05)


def one(folder: str, barrier: Path, processes: int) -> dict[str, float]:
    """What one process of a run does with the data, measured."""
    import numpy as np
    import torch

    from lstm_trainer.config import DataConfig, ForecasterConfig, ModelConfig
    from lstm_trainer.data import prepare_data
    from lstm_trainer.data.loaders import train_loader
    from lstm_trainer.evaluate.scoring import linear_fit_windows
    from lstm_trainer.model.forecaster import LSTMForecaster

    torch.set_num_threads(1)
    started = time.perf_counter()
    data = prepare_data(DataConfig(dataset=folder, seq_length=SEQ_LENGTH), 42)
    train = data.windows["train"]
    model = LSTMForecaster(ForecasterConfig(ModelConfig(), SEQ_LENGTH))
    inputs, targets = train.gather(linear_fit_windows(train))
    model.fit_linear_skip(torch.from_numpy(inputs), torch.from_numpy(targets))
    del inputs, targets
    loader = train_loader(train, BATCH, BATCH, 42)
    setup = time.perf_counter() - started
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    batches = iter(loader)
    for step in range(WARMUP + STEPS):
        if step == WARMUP:
            timed = time.perf_counter()
        batch = next(batches)
        loss = torch.nn.functional.mse_loss(model(batch["inputs"]), batch["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rate = STEPS * BATCH / (time.perf_counter() - timed)
    peak = peak_rss_mib()
    meet(barrier, "measure", processes)
    pss = pss_mib()
    meet(barrier, "measured", processes)  # nobody exits (unmapping its pages) before all have measured
    return {
        "setup_seconds": setup,
        "windows_per_second": rate,
        "peak_rss_mib": peak,
        "pss_mib": pss,
        "train_windows": len(train),
        "series": data.rows.num_series,
        "points": data.rows.num_points,
        "values_bytes": int(np.asarray(data.rows.values).nbytes),
    }


def cell(folder: Path, processes: int) -> list[dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    barrier = Path(tempfile.mkdtemp(prefix="barrier_"))
    command = [sys.executable, __file__, "--one", str(folder), "--barrier", str(barrier), "--processes", str(processes)]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    out = []
    for run in runs:
        stdout, _ = run.communicate()
        if run.returncode != 0:
            raise SystemExit(f"a measured process failed ({run.returncode}) on {folder}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    shutil.rmtree(barrier)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7, 1e8])
    parser.add_argument("--series", type=int, nargs="+", default=[1, 100, 10_000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    parser.add_argument("--output_dir", default=str(ROOT / "bench" / "results"))
    record.add_flags(parser, name="default")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, Path(args.barrier), args.processes[0])))
        return 0
    load_before = os.getloadavg()[0]
    rows = list(tables.SCALE_HEADER)
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="scale_") as tmp:
        for points in map(int, args.points):
            for series in args.series:
                if points // series < 4 * SEQ_LENGTH:
                    continue  # too short to split: not a cell
                folder = Path(tmp) / f"p{points}_s{series}"
                write_rows(folder, points, series)
                for processes in args.processes:
                    measured = cell(folder, processes)
                    records.append({"points": points, "series": series, "processes": processes, "runs": measured})
                    rows.append(tables.scale_row(records[-1]))
                    print(rows[-1], flush=True)
                shutil.rmtree(folder)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(records, indent=2) + "\n")
    (out / "scale.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))
    settings = {"seq_length": SEQ_LENGTH, "steps": STEPS, "warmup_steps": WARMUP, "batch": BATCH}
    record.write("scale", args.name, {"settings": settings, "cells": records}, load_before, args.results_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
