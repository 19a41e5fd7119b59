"""The README's table: the default run on real public series against the baselines.

    python bench/real_series.py                   # writes bench/results/real_series_default.md
    python bench/real_series.py --tag plain -- --window_norm none --head level --linear_skip 0
                                                  # flags after -- go to every run; --tag names the outputs

Each series ships inside statsmodels' wheel (public domain, per its dataset's COPYRIGHT) and is
written to a CSV as a user's file would be; train.py then runs with only --dataset and
--data_column (and --fill_missing where there are gaps). The seasonal naive column is computed
here from the same test targets, since its season can be longer than the default window.
"""

from __future__ import annotations

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

from lstm_trainer.config import DataConfig  # noqa: E402
from lstm_trainer.data import prepare_data  # noqa: E402
from lstm_trainer.evaluate import score, seasonal_naive  # noqa: E402


@dataclass(frozen=True)
class RealSeries:
    name: str
    column: str
    season: int
    what: str
    fill_missing: str | None = None


SERIES = (
    RealSeries("sunspots", "SUNACTIVITY", 11, "yearly sunspot numbers 1700-2008: a ~11-year cycle"),
    RealSeries("co2", "co2", 52, "weekly CO2 at Mauna Loa 1958-2001: trend + yearly cycle, 59 gaps", "interpolate"),
    RealSeries("elnino", "sst", 12, "monthly El Nino sea surface temperature 1950-2010: a yearly cycle"),
    RealSeries("realgdp", "realgdp", 4, "quarterly US real GDP 1959-2009: a trend"),
)


def write_csv(series: RealSeries, folder: Path) -> Path:
    from statsmodels import datasets

    path = folder / f"{series.name}.csv"
    if series.name == "sunspots":
        frame = datasets.sunspots.load_pandas().data
    elif series.name == "co2":
        frame = datasets.co2.load_pandas().data.rename_axis("week").reset_index()
    elif series.name == "elnino":
        wide = datasets.elnino.load_pandas().data
        long = wide.melt(id_vars="YEAR", var_name="month", value_name="sst")
        long["month"] = pd.to_datetime(long["YEAR"].astype(int).astype(str) + "-" + long["month"], format="%Y-%b")
        frame = long.sort_values("month")[["month", "sst"]]
    else:
        frame = datasets.macrodata.load_pandas().data[["year", "quarter", "realgdp"]]
    frame.to_csv(path, index=False)
    return path


def seasonal_naive_test_mase(csv: Path, series: RealSeries) -> float:
    """Over the same test targets as the run (every test value is one, whatever the window)."""
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
    tag = own[own.index("--tag") + 1] if "--tag" in own else "default"
    work = ROOT / "bench" / "results" / f"real_series_{tag}"
    work.mkdir(parents=True, exist_ok=True)
    rows = [
        "| series | points | model test MASE | persistence | seasonal naive (season) | linear AR | model vs linear AR |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    commands = []
    for series in SERIES:
        csv = write_csv(series, work)
        flags = ["--dataset", str(csv.relative_to(ROOT)), "--data_column", series.column]
        flags += ["--fill_missing", series.fill_missing] if series.fill_missing else []
        out = work / f"run_{series.name}"
        command = [sys.executable, "train.py", *flags, "--output_dir", str(out.relative_to(ROOT)), *extra]
        commands.append("python " + " ".join(command[1:]))
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return done.returncode
        res = json.loads((out / "all_results.json").read_text())
        points = len(pd.read_csv(csv))
        ratio = res["test_mase"] / res["linear_test_mase"]
        rows.append(
            f"| {series.name} ({series.what}) | {points} | {res['test_mase']:.4f} | {res['persistence_test_mase']:.4f} | "
            f"{seasonal_naive_test_mase(csv, series):.4f} ({series.season}) | {res['linear_test_mase']:.4f} | {ratio:.3f} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join([*rows, "", "Commands:", "", *(f"    {c}" for c in commands)]) + "\n"
    (ROOT / "bench" / "results" / f"real_series_{tag}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
