"""The forecast protocol, as the forecasting competitions' winners ran it, on any long table.

1. Selection: one run holds each series' last horizon out and trains until its score there (sMAPE or
   MASE, `select_on`) stops improving; the step of its best score is the number of steps to train.
2. Members: one fit per seed and lookback on the whole history for that many steps, one per core
   at once (each on one thread: two side by side each run at about their speed alone, train/threads.py).
3. The ensemble folder: the members' models and a manifest (forecast/ensemble.py); it forecasts their median.
4. Fallback: where a baseline (naive, seasonal naive, Naive2) scored better than the selection run
   on the held-out horizon, the manifest names it and the ensemble forecasts with it.

Each run is `python -m lstm_trainer.cli.train` in a child process, as a user would run it, with its
own output_dir under the forecast's, so every member can be inspected, resumed or pushed alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import lstm_trainer
from lstm_trainer.errors import UserError
from lstm_trainer.files import check_replaceable, replace_dir, write_marker
from lstm_trainer.forecast.ensemble import FALLBACKS, Manifest
from lstm_trainer.forecast.preset import Member, Preset, members
from lstm_trainer.outputs.hub import LOCAL_MODEL

SELECT_ON = ("mase", "smape")
# all_results.json keys: the selection run's validation score, and each fallback's, on the measure chosen.
SCORE_KEYS = {"smape": "val_smape", "mase": "val_series_mase"}
BASELINE_PREFIX = {"naive": "persistence_", "seasonal_naive": "seasonal_naive_", "naive2": "naive2_"}
ENSEMBLE, SELECTION, MEMBERS, LOGS = "model", "selection", "members", "logs"
# The fallback trusts the selection run's validation only where holding the horizon out leaves the median
# series most of its values. Measured on M1 yearly (h 6, median series 15 values): the selection model, trained
# on 9 values a series, scored sMAPE 32.0 on the held-out horizon against Naive2's 21.2, and as badly on the
# test (31.1), while the members trained as long on the whole history scored 17.2 against Naive2's 22.4.
MAX_HELD_OUT = 0.25
# The marker's kind for a forecast's --output_dir and the names it writes there (files.py); fit_data.parquet is
# the API's DataFrame.
KIND, FILES = "forecast", (ENSEMBLE, SELECTION, MEMBERS, LOGS, "fit_data.parquet")


def check_folder(output_dir: str | Path, what: str = "--output_dir") -> None:
    """Refuse a forecast's output_dir that holds anything a forecast did not write, before anything is read."""
    check_replaceable(Path(output_dir), what, KIND)


@dataclass(frozen=True)
class Request:
    """What the forecast command and `Forecaster.fit` ask for; the table's columns as train.py's flags."""

    dataset: str
    horizon: int
    output_dir: str
    data_column: str | None = None
    id_column: str | None = None
    time_column: str | None = None
    season: int | None = None  # None: inferred from the time column
    select_on: str = "mase"
    seeds: int = 6
    lookbacks: tuple[int, ...] = (2,)
    fallback: str = "auto"  # or "none"
    jobs: int | None = None  # members trained at once; None: one per core
    train_flags: tuple[str, ...] = ()  # more train.py flags, after the preset's (they win)

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise UserError(f"--horizon must be a whole number of steps >= 1, got {self.horizon}")
        if self.season is not None and self.season < 1:
            raise UserError(f"--season must be >= 1 (1: no season), got {self.season}")
        if self.select_on not in SELECT_ON:
            raise UserError(f"--select_on must be one of {', '.join(SELECT_ON)}, got {self.select_on!r}")
        if self.seeds < 1 or not self.lookbacks or min(self.lookbacks) < 1:
            raise UserError("--seeds and every --lookbacks value must be >= 1")
        if self.fallback not in ("auto", "none"):
            raise UserError(f"--fallback must be auto or none, got {self.fallback!r}")
        if self.jobs is not None and self.jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {self.jobs}")

    def columns(self) -> list[str]:
        flags = ["--dataset", self.dataset]
        for flag, value in (("--data_column", self.data_column), ("--id_column", self.id_column)):
            flags += [flag, value] if value else []
        return flags + (["--time_column", self.time_column] if self.time_column else [])


@dataclass
class Outcome:
    """What the protocol did: the ensemble folder and the record its manifest keeps."""

    folder: Path
    manifest: Manifest
    seconds: dict[str, float] = field(default_factory=dict)


def check(request: Request) -> tuple[int, list[np.ndarray]]:
    """The season in force and the series, or one line saying what is wrong; reads, never writes."""
    import pandas as pd

    from lstm_trainer.data.sources import read_table
    from lstm_trainer.data.tables import table_to_series
    from lstm_trainer.forecast.season import infer_season

    table, _ = read_table(request.dataset)
    columns = [request.data_column] if request.data_column else None
    rows, _ = table_to_series(table, request.dataset, columns, request.time_column, request.id_column, None)
    histories = [np.asarray(rows.series(s), np.float64) for s in range(rows.num_series)]
    longest = max(len(h) for h in histories)
    if request.horizon >= longest:
        raise UserError(
            f"--horizon {request.horizon} is not shorter than every series (the longest has {longest} values): "
            "the last horizon of a series is held out to choose the training length; forecast fewer steps"
        )
    season = request.season
    if season is None:
        if request.time_column is None:
            raise UserError("the season cannot be inferred without --time_column; give --season (1 for none)")
        frame = table.select_columns([c for c in (request.time_column, request.id_column) if c]).to_pandas()
        ids = frame[request.id_column].astype(str) if request.id_column else None
        season = infer_season(pd.Series(frame[request.time_column]), ids)
        if season is None:
            raise UserError(
                f"the season cannot be inferred from {request.time_column!r} (not dates at a monthly, quarterly, "
                "weekly, daily or hourly step); give --season (12 for monthly, 1 for none)"
            )
    if season > longest:
        raise UserError(f"--season {season} is longer than every series (the longest has {longest} values)")
    return season, histories


def fit(
    request: Request, say: Callable[[str], None] = print, checked: tuple[int, list[np.ndarray]] | None = None
) -> Outcome:
    """Select, train the members, write the ensemble folder `output_dir/model`; `say` gets progress lines.
    `checked`: what `check(request)` returned, where the caller ran it already."""
    season, histories = check(request) if checked is None else checked
    out = Path(request.output_dir)
    preset = Preset(request.horizon, season, tuple(len(h) for h in histories), request.lookbacks)
    ensemble = members(request.seeds, request.lookbacks)
    say(
        f"{len(histories)} series, horizon {request.horizon}, season {season}; "
        f"{len(ensemble)} members (lookbacks {', '.join(f'{k}h' for k in request.lookbacks)}, {request.seeds} seeds)"
    )
    check_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, KIND, FILES)
    (out / LOGS).mkdir(exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    lookback = request.lookbacks[0]
    results = _train(request, preset.selection_flags(lookback, request.select_on), out / SELECTION, out / LOGS)
    seconds["selection"] = time.perf_counter() - started
    steps = int(results.get("best_step") or results["optimizer_steps"])
    scores = _validation(results, request.select_on)
    fallback = _fallback(scores) if request.fallback == "auto" else None
    held_out = request.horizon / float(np.median([len(h) for h in histories]))
    if fallback is not None and held_out > MAX_HELD_OUT:
        say(
            f"note: {fallback} scored better than the model on the held-out horizon, but that horizon is "
            f"{held_out:.0%} of the median series, so the selection run trained on much less than the members "
            "do; the networks' forecast is kept (compare with a baseline before you rely on it)"
        )
        record_skip, fallback = fallback, None
    else:
        record_skip = None
    say(
        f"selection: {steps} steps chosen in {seconds['selection']:.0f} s; validation {request.select_on} "
        + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
    )
    if fallback is not None:
        say(
            f"note: {fallback} scored {scores[fallback]:.4g} against the model's {scores['model']:.4g} on the held-out "
            f"horizon ({request.select_on}), so the forecast is {fallback}'s (--fallback none keeps the model's)"
        )
    jobs = max(1, min(len(ensemble), request.jobs or os.cpu_count() or 1))
    member_seconds: list[float] = []

    def train_member(member: Member) -> Path:
        begun = time.perf_counter()
        _train(request, preset.member_flags(member, steps), out / MEMBERS / member.name, out / LOGS)
        member_seconds.append(time.perf_counter() - begun)
        done, mean = len(member_seconds), float(np.mean(member_seconds))
        left = f"; about {mean * (len(ensemble) - done) / jobs:.0f} s left" if done < len(ensemble) else ""
        say(f"member {done}/{len(ensemble)} ({member.name}) trained in {member_seconds[-1]:.0f} s{left}")
        return out / MEMBERS / member.name / "model"

    begun = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        folders = list(pool.map(train_member, ensemble))
    seconds["members"] = time.perf_counter() - begun
    seconds["per_member"] = float(np.mean(member_seconds))
    record = {
        "select_on": request.select_on,
        "steps": steps,
        "validation": scores,
        "fallback_not_trusted": record_skip,  # a baseline that won on a held-out horizon too long to trust
        "members": [{"lookback": m.lookback, "seed": m.seed, "window": preset.window(m.lookback)} for m in ensemble],
        "jobs": jobs,
        "batch": preset.batch,
        "patience": preset.patience,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    names = [f"{MEMBERS}/{k}" for k in range(len(folders))]
    manifest = Manifest(names, request.horizon, season, fallback=fallback, selection=record)
    with replace_dir(out / ENSEMBLE, "ensemble") as tmp:
        for name, folder in zip(names, folders, strict=True):
            shutil.copytree(folder, tmp / name)
        manifest.save(tmp)
        (tmp / "README.md").write_text(card(manifest))
    return Outcome(out / ENSEMBLE, manifest, seconds)


def _train(request: Request, flags: list[str], out: Path, logs: Path) -> dict[str, Any]:
    """One train.py run in a child process, one thread; its all_results.json, or its error line as ours."""
    command = [sys.executable, "-m", "lstm_trainer.cli.train", *request.columns(), *flags]
    command += ["--num_threads", "1", "--report_to", "none", *request.train_flags, "--output_dir", str(out)]
    # The forecast's own folder was checked (check_folder) and this run's place in it is the forecast's to replace.
    command += ["--overwrite_output_dir"]
    # This package first: the children must import the code that runs the parent.
    package_root = str(Path(lstm_trainer.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    log = logs / f"{out.name}.log"
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        lines = [line for line in log.read_text().splitlines() if line.startswith("error:")]
        why = lines[-1].removeprefix("error: ") if lines else f"exit {done.returncode}"
        raise UserError(f"the {out.name} run failed: {why} (its log: {log})")
    results: dict[str, Any] = json.loads((out / "all_results.json").read_text())
    return results


def _validation(results: dict[str, Any], measure: str) -> dict[str, float]:
    """The selection run's score and each fallback's on the held-out horizon, by `measure`."""
    key = SCORE_KEYS[measure]
    # None where the selection run finished no epoch (a --max_train_steps below one epoch): never validated.
    scores = {"model": float("inf") if results.get(key) is None else float(results[key])}
    for name in FALLBACKS:
        value = results.get(BASELINE_PREFIX[name] + key)
        if value is not None and np.isfinite(value):
            scores[name] = float(value)
    return scores


def _fallback(scores: dict[str, float]) -> str | None:
    """The best baseline where it beat the model, else None."""
    baselines = {k: v for k, v in scores.items() if k != "model"}
    if not baselines:
        return None
    best = min(baselines, key=lambda k: baselines[k])
    return best if baselines[best] < scores["model"] else None


def card(manifest: Manifest) -> str:
    """README.md of the ensemble folder: what it is, how it was chosen, how to use it."""
    record = manifest.selection
    lines = [
        "---",
        "library_name: lstm-trainer",
        "pipeline_tag: time-series-forecasting",
        "tags:\n- time-series-forecasting\n- ensemble",
        "---",
        "",
        f"# Ensemble of {len(manifest.members)} recurrent forecasters, {manifest.horizon} steps ahead",
        "",
        f"Trained by `lstm-trainer forecast`: each member trained {record.get('steps')} steps on the whole history, "
        f"the number chosen on each series' last {manifest.horizon} values by {record.get('select_on')}. "
        f"Season {manifest.season}.",
        "",
        "The forecast is the median of the members' forecasts; the quantiles q0.1, q0.5, q0.9 are the spread of the "
        "members' forecasts (how much they disagree), not an interval of the data's noise.",
        "",
        "| validation (held-out horizon) | " + " | ".join(record.get("validation", {})) + " |",
        "|---|" + "---:|" * len(record.get("validation", {})),
        f"| {record.get('select_on')} | "
        + " | ".join(f"{v:.4g}" for v in record.get("validation", {}).values())
        + " |",
        "",
    ]
    if manifest.fallback:
        lines += [f"**Fallback:** {manifest.fallback} beat the model on validation, so it forecasts instead.", ""]
    lines += [
        "```bash",
        f"lstm-trainer predict --model {LOCAL_MODEL} --input history.csv --id_column id --time_column t --data_column y "
        f"--horizon {manifest.horizon}",
        "```",
        "",
    ]
    return "\n".join(lines)
