"""The docs' real-series tables: the default run on real public series against the baselines.

    python bench/real_series.py                   # writes docs/results/real_series/default.json
    python bench/real_series.py --tag plain -- --window_norm none --head level --linear_skip 0
                                                  # flags after -- go to every run; --tag names the record

Each series ships inside statsmodels' wheel (public domain, per its dataset's COPYRIGHT) and is
written to a CSV as a user's file would be; train.py then runs with only --dataset and
--data_column (and --fill_missing where there are gaps). The seasonal naive column is computed
here from the same test targets, since its season can be longer than the default window.
The first four series chose the defaults; the last three were only checked afterwards.
Also writes bench/results/real_series_<tag>.md (the CSVs and runs beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import record  # noqa: E402  (bench/record.py: the docs' result files)
import tables  # noqa: E402  (bench/tables.py: the tables, rendered from the record)

from lstm_trainer.config import DataConfig  # noqa: E402
from lstm_trainer.data import prepare_data  # noqa: E402
from lstm_trainer.evaluate import score, seasonal_naive  # noqa: E402


@dataclass(frozen=True)
class RealSeries:
    name: str
    column: str
    season: int | None  # None: no seasonal naive column
    what: str
    fill_missing: str | None = None
    chose_defaults: bool = True  # False: checked after the defaults were chosen


SERIES = (
    RealSeries("sunspots", "SUNACTIVITY", 11, "yearly sunspot numbers 1700-2008: a ~11-year cycle"),
    RealSeries("co2", "co2", 52, "weekly CO2 at Mauna Loa 1958-2001: trend + yearly cycle, 59 gaps", "interpolate"),
    RealSeries("elnino", "sst", 12, "monthly El Nino sea surface temperature 1950-2010: a yearly cycle"),
    RealSeries("realgdp", "realgdp", 4, "quarterly US real GDP 1959-2009: a trend"),
    RealSeries(
        "elec_equip",
        "orders",
        12,
        "monthly euro-area electrical equipment orders 1995-2016: trend + yearly cycle",
        chose_defaults=False,
    ),
    RealSeries("unemp", "unemp", 4, "quarterly US unemployment rate 1959-2009", chose_defaults=False),
    RealSeries("nile", "volume", None, "yearly Nile flow 1871-1970", chose_defaults=False),
)
# What the record keeps of each run's all_results.json.
KEPT = ("test_mse", "test_mase", "persistence_test_mase", "linear_test_mase", "global_batch_size", "optimizer_steps",
        "epochs_completed", "stopped_early", "quality")  # fmt: skip


def write_csv(series: RealSeries, folder: Path) -> Path:
    from statsmodels import datasets

    path = folder / f"{series.name}.csv"
    if series.name == "sunspots":
        frame = datasets.sunspots.load_pandas().data
    elif series.name == "co2":
        frame = datasets.co2.load_pandas().data.rename_axis("week").reset_index()
    elif series.name == "elec_equip":
        from statsmodels.datasets import elec_equip  # not among statsmodels.datasets' own imports

        frame = elec_equip.load().data.set_axis(["orders"], axis=1).rename_axis("month").reset_index()
    elif series.name == "nile":
        frame = datasets.nile.load_pandas().data
    elif series.name == "unemp":
        frame = datasets.macrodata.load_pandas().data[["year", "quarter", "unemp"]]
    elif series.name == "elnino":
        wide = datasets.elnino.load_pandas().data
        long = wide.melt(id_vars="YEAR", var_name="month", value_name="sst")
        long["month"] = pd.to_datetime(long["YEAR"].astype(int).astype(str) + "-" + long["month"], format="%Y-%b")
        frame = long.sort_values("month")[["month", "sst"]]
    else:
        frame = datasets.macrodata.load_pandas().data[["year", "quarter", "realgdp"]]
    frame.to_csv(path, index=False)
    return path


def seasonal_naive_test_mase(csv: Path, series: RealSeries) -> float | None:
    """Over the same test targets as the run (every test value is one, whatever the window)."""
    if series.season is None:
        return None
    config = DataConfig(
        dataset=str(csv),
        data_column=[series.column],
        fill_missing=series.fill_missing,
        seq_length=max(50, series.season),
    )
    data = prepare_data(config, 42)
    test = data.windows["test"]
    inputs, targets = test.gather(np.arange(len(test)), normalised=False)
    total, count = data.windows["train"].naive_mae_parts()
    result = score(seasonal_naive(inputs, series.season), targets, total / count).mase
    assert result is not None
    return result


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="bench/real_series.py", description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="default", help="names the record and the outputs (a variant's flags)")
    parser.add_argument("--series", nargs="+", choices=[s.name for s in SERIES], default=[s.name for s in SERIES])
    parser.add_argument("--results_dir", default=str(record.RESULTS), help="the record goes to <this>/real_series/")
    args = parser.parse_args(own)
    tag = args.tag
    work = ROOT / "bench" / "results" / f"real_series_{tag}"
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    measured = []
    for series in (s for s in SERIES if s.name in args.series):
        csv = write_csv(series, work)
        flags = ["--dataset", str(csv.relative_to(ROOT)), "--data_column", series.column]
        flags += ["--fill_missing", series.fill_missing] if series.fill_missing else []
        out = work / f"run_{series.name}"
        command = [sys.executable, "train.py", *flags, "--output_dir", str(out.relative_to(ROOT)), *extra]
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        res = json.loads((out / "all_results.json").read_text())
        measured.append(
            {
                "name": series.name,
                "what": series.what,
                "column": series.column,
                "season": series.season,
                "chose_defaults": series.chose_defaults,
                "points": len(pd.read_csv(csv)),
                "command": "python " + " ".join(command[1:]),
                "seasonal_naive_test_mase": seasonal_naive_test_mase(csv, series),
                "results": {k: res[k] for k in KEPT},
            }
        )
        print(f"{series.name}: test MASE {res['test_mase']:.4f} (linear AR {res['linear_test_mase']:.4f})", flush=True)
    path = record.write("real_series", tag, {"train_args": extra, "series": measured}, load_before, args.results_dir)
    written = json.loads(path.read_text())
    commands = [f"    {s['command']}" for s in measured]
    text = "\n".join(
        [tables.real_series(written, True), tables.real_series(written, False), "Commands:", "", *commands]
    )
    (ROOT / "bench" / "results" / f"real_series_{tag}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
