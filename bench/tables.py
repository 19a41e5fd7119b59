"""Every benchmark table, rendered from the records the benches write (bench/record.py), never typed.

The benches call these for their own Markdown output; docs/hooks.py calls `render` for each
`<!-- results: SECTION -->` marker of a docs page, and for the README's headline block. Pure Python
(json and pathlib only), so the docs build needs nothing the benches need.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

Record = dict[str, Any]

# The targets of issues 7, 15 and 22, as bench/run.py and bench/latency.py check them.
MAX_TRAINER_RATIO = 1.10
MAX_HELP_SECONDS = 1.0
MAX_SIDE_BY_SIDE_RATIO = 2.5
MAX_ONE_MS, MAX_COMMAND_S = 100.0, 3.0


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "not reached"
    if isinstance(value, list):
        return ", ".join(fmt(v, 0) for v in value)
    return f"{value:,.{digits}f}"


def source(record: Record, path: Path | None = None) -> str:
    """One line: when, by which command, on which machine, under what load, from which file."""
    m = record["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    where = machine_line(m)
    before, after = record["load_average"]
    line = (
        f"Measured {record['date'][:16].replace('T', ' ')} UTC by `{record['command']}` on {where}; "
        f"load average {before:.1f} before, {after:.1f} after"
    )
    line += f"; {versions}." if versions else "."
    if path is not None:
        line += f" From `{relative(path)}`."
    return line


def machine_line(m: Record) -> str:
    where = f"{m['cpu']}, {m['cores']} cores" + (
        f" ({m['usable_cores']} usable)" if m["usable_cores"] != m["cores"] else ""
    )
    return where + f", {m['memory_gib']} GiB" + (f"; {m['gpu']}" if m.get("gpu") else "")


def sources(found: list[tuple[Path, Record]]) -> str:
    """One line for many records: the dates, the machines, the load, the command(s) and the folder."""
    dates = sorted(record["date"][:10] for _, record in found)
    machines = sorted({machine_line(record["machine"]) for _, record in found})
    before = min(record["load_average"][0] for _, record in found)
    after = max(record["load_average"][1] for _, record in found)
    commands = {record["command"].replace(record["name"], "NAME") for _, record in found}
    said = f"`{commands.pop()}`" if len(commands) == 1 else ", ".join(f"`{r['command']}`" for _, r in found)
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    folders = sorted({relative(path.parent) for path, _ in found})
    said += " (NAME: each record's)" if "NAME" in said else ""
    return (
        f"Measured {span} by {said} on {' and '.join(machines)}; load average "
        f"{before:.1f} to {after:.1f}. From `{'`, `'.join(folders)}/`."
    )


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# --- speed: bench/run.py ------------------------------------------------------------------------


def speed(record: Record) -> str:
    """The trainer against the bare loop: the runs' figures, then the targets."""
    summary, keys = record["runs"], list(record["runs"])
    bare = summary["bare"]["epoch_seconds_median"]
    settings = record["settings"]
    timed = summary["bare"]["timed_epochs"]
    lines = [
        f"{settings['device'].upper()}, {summary['bare']['precision'].replace('no', 'fp32')}, "
        f"global batch {settings['global_batch_size']} = micro batch 32 x accumulation x processes; "
        f"{summary['bare']['epochs']} epochs a run, medians of the {timed} after the first"
        + (f"; train.py flags: `{' '.join(settings['train_args'])}`" if settings.get("train_args") else "")
        + ".",
        "",
        "| | " + " | ".join(summary[k]["title"] for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("training s / epoch (median)", [fmt(summary[k]["epoch_seconds_median"]) for k in keys])
    row("ratio to (a)", [fmt(summary[k]["epoch_seconds_median"] / bare) for k in keys])
    row("windows / s", [fmt(summary[k]["windows_per_second"], 0) for k in keys])
    row("CPU s / epoch, main process (median)", [fmt(summary[k]["epoch_cpu_seconds_median"]) for k in keys])
    row("threads per process", [str(summary[k]["threads_per_process"]) for k in keys])
    row("launch to first optimizer step, s", [fmt(summary[k]["launch_to_first_step_seconds"], 1) for k in keys])
    row("peak RSS per process, MiB", [fmt(summary[k]["peak_rss_mib_per_process"]) for k in keys])
    if record["machine"].get("gpu"):
        row("peak CUDA memory per process, MiB", [fmt(summary[k]["peak_cuda_mib_per_process"]) for k in keys])
    row("dataset build, s", [fmt(summary[k]["dataset_seconds"], 3) for k in keys])
    target = settings["target_mse"]
    row(
        f"time to val MSE <= {target}, s (epoch)",
        [
            f"{fmt(summary[k]['seconds_to_target_mse'], 1)} ({summary[k]['epochs_to_target_mse']})"
            if summary[k]["seconds_to_target_mse"] is not None
            else f"not in {summary[k]['epochs']} epochs"
            for k in keys
        ],
    )
    row("best val MSE", [f"{summary[k]['best_val_mse']:.6f}" for k in keys])
    lines += ["", "| target | measured | holds |", "|---|---:|:---:|"]
    names = {
        "trainer_1_over_bare": f"(b)/(a) epoch time <= {MAX_TRAINER_RATIO}",
        "trainer_2_over_trainer_1": "(c)/(b) epoch time <= 1 (2 processes no slower than 1)",
        "time_to_target_1_over_bare": f"(b)/(a) time to val MSE {target} <= 1",
        "side_by_side_over_alone": f"two 1-process runs side by side, the slower one's epoch time / (b)'s alone "
        f"<= {MAX_SIDE_BY_SIDE_RATIO}",
        "help_seconds": f"`python train.py --help` < {MAX_HELP_SECONDS:.0f} s",
    }
    for key, name in names.items():
        if key in record["targets"]:
            t = record["targets"][key]
            value = "n/a" if t["value"] is None else f"{t['value']:.2f}" + (" s" if key == "help_seconds" else "")
            lines.append(f"| {name} | {value} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


# --- latency: bench/latency.py (and bench/run.py's exported model) ------------------------------


def latency(figures: dict[str, Any], model: str = "the model exported by (b)") -> str:
    targets = figures["targets"]
    return (
        "\n".join(
            [
                f"| forecasting latency ({model}) | measured | target | holds |",
                "|---|---:|---:|:---:|",
                f"| one window, in a running process (median) | {figures['one_window_ms_median']:.1f} ms | "
                f"< {MAX_ONE_MS:.0f} ms | {'yes' if targets['one_window_ms']['met'] else 'no'} |",
                f"| `python -m lstm_trainer.cli.predict`, one series, whole command | "
                f"{figures['predict_command_seconds']:.2f} s | < {MAX_COMMAND_S:.0f} s | "
                f"{'yes' if targets['predict_command_s']['met'] else 'no'} |",
                f"| {figures['many_series']:,} series, one window each, one call | "
                f"{figures['many_series_seconds']:.2f} s | | |",
            ]
        )
        + "\n"
    )


# --- scale: bench/scale.py ----------------------------------------------------------------------

SCALE_HEADER = [
    "| points | series | processes | peak RSS / process (MiB) | PSS / process (MiB) | data set-up (s) | windows/s (train) |",
    "|---:|---:|---:|---:|---:|---:|---:|",
]


def scale_row(cell: Record) -> str:
    runs = cell["runs"]
    worst = {k: max(run[k] for run in runs) for k in ("peak_rss_mib", "pss_mib", "setup_seconds")}
    rate = sum(run["windows_per_second"] for run in runs) / len(runs)
    return (
        f"| {cell['points']:.0e} | {cell['series']} | {cell['processes']} | {worst['peak_rss_mib']:.0f} | "
        f"{worst['pss_mib']:.0f} | {worst['setup_seconds']:.2f} | {rate:.0f} |"
    )


def scale(record: Record) -> str:
    return "\n".join([*SCALE_HEADER, *(scale_row(cell) for cell in record["cells"])]) + "\n"


# --- real series: bench/real_series.py ----------------------------------------------------------


def _best(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _bold(value: float | None, best: float | None, digits: int) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return f"**{text}**" if best is not None and value == best else text


def real_series(record: Record, chose_defaults: bool = True) -> str:
    """The default run on each series beside the baselines (test MASE; bold: the lowest of the row)."""
    lines = [
        "| series | points | global batch, steps run | model test MASE | persistence | seasonal naive (season) "
        "| linear AR | model / linear AR | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in record["series"]:
        if s.get("chose_defaults", True) != chose_defaults:
            continue
        r = s["results"]
        model, persistence, linear = r["test_mase"], r["persistence_test_mase"], r["linear_test_mase"]
        naive = s.get("seasonal_naive_test_mase")
        best = _best([model, persistence, linear, naive])
        stop = (
            f"early stop, epoch {r['epochs_completed']}"
            if r.get("stopped_early")
            else f"{r['epochs_completed']} epoch{'s' if r['epochs_completed'] != 1 else ''}"
        )
        season = f" ({s['season']})" if naive is not None else ""
        lines.append(
            f"| `{s['name']}`: {s['what']} | {s['points']:,} | {r['global_batch_size']}, {r['optimizer_steps']} ({stop}) "
            f"| {_bold(model, best, 4)} | {_bold(persistence, best, 4)} | {_bold(naive, best, 4)}{season} "
            f"| {_bold(linear, best, 4)} | {model / linear:.3f} | {r['quality']} |"
        )
    return "\n".join(lines) + "\n"


def real_series_variants(records: list[Record]) -> str:
    """Test MASE of each variant (a --tag with its flags) on the series that chose the defaults."""
    default = next((r for r in records if r["name"] == "default"), records[0])
    names = [s["name"] for s in default["series"] if s.get("chose_defaults", True)]
    lines = [
        "| variant | flags | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    by_name = sorted(records, key=lambda r: (r["name"] != "default", r["name"]))
    for record in by_name:
        mase = {s["name"]: s["results"]["test_mase"] for s in record["series"]}
        flags = " ".join(record.get("train_args", [])) or "none (the defaults)"
        lines.append(
            f"| {record['name']} | `{flags}` | " + " | ".join(_bold(mase.get(n), None, 4) for n in names) + " |"
        )
    for label, key in (("*persistence*", "persistence_test_mase"), ("*linear AR*", "linear_test_mase")):
        baseline = {s["name"]: s["results"][key] for s in default["series"]}
        lines.append(f"| {label} | | " + " | ".join(_bold(baseline.get(n), None, 4) for n in names) + " |")
    return "\n".join(lines) + "\n"


# --- the competitions: bench/competition.py -----------------------------------------------------

THREE = ("lstm-trainer", "Theta", "AutoETS")  # the forecasters compared; Naive2 is the yardstick


def _method_key(method: str) -> str:
    return "lstm-trainer" if method.startswith("lstm-trainer") else method


def competition_one(record: Record) -> str:
    """One data set: every method, sorted by sMAPE (what bench/competition.py writes as table.md)."""
    lines = [
        f"{record['name']}: {record['series']} series, h = {record['horizon']}, season {record['season']}",
        "",
        "| method | sMAPE | MASE | OWA | series | wall s | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(record["methods"], key=lambda r: r["smape"]):
        peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
        lines.append(
            f"| {r['method']} | {r['smape']:.2f} | {r['mase']:.3f} | {r['owa']:.3f} | {r['series']} | "
            f"{r['seconds']:.0f} | {peak} |"
        )
    if record.get("published"):
        lines += ["", f"Published: {record['published']}"]
    return "\n".join(lines) + "\n"


def _best_of_three(methods: list[Record], measure: str) -> float | None:
    return _best(r[measure] for r in methods if _method_key(r["method"]) in THREE)


def competition(records: list[Record]) -> str:
    """Every data set measured: the project, Theta, AutoETS and Naive2 (bold: the best of the three)."""
    lines = [
        "| data set | method | sMAPE | MASE | OWA | wall s | peak MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        methods = [r for r in record["methods"] if _method_key(r["method"]) in (*THREE, "Naive2")]
        methods.sort(key=lambda r: (*THREE, "Naive2").index(_method_key(r["method"])))
        best = {m: _best_of_three(methods, m) for m in ("smape", "mase", "owa")}
        label = f"{record['name'].replace('_', ' ')} ({record['series']:,} series, h {record['horizon']})"
        for i, r in enumerate(methods):
            peak = "" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            bold = _method_key(r["method"]) != "Naive2"
            lines.append(
                f"| {label if i == 0 else ''} | {r['method']} | {_bold(r['smape'], best['smape'] if bold else None, 2)} | "
                f"{_bold(r['mase'], best['mase'] if bold else None, 3)} | {_bold(r['owa'], best['owa'] if bold else None, 3)} "
                f"| {r['seconds']:.0f} | {peak} |"
            )
    return "\n".join(lines) + "\n"


def competition_headline(records: list[Record]) -> str:
    """One row per data set, sMAPE / OWA of each method (bold: the best of the three forecasters)."""
    lines = [
        "| data set | series, h | lstm-trainer | Theta | AutoETS | Naive2 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for record in records:
        found = {_method_key(r["method"]): r for r in record["methods"]}
        best = {m: _best_of_three(record["methods"], m) for m in ("smape", "owa")}
        cells = []
        for method in (*THREE, "Naive2"):
            r = found.get(method)
            if r is None:
                cells.append("-")
                continue
            judged = method != "Naive2"
            cells.append(
                f"{_bold(r['smape'], best['smape'] if judged else None, 2)} / {_bold(r['owa'], best['owa'] if judged else None, 3)}"
            )
        lines.append(
            f"| {record['name'].replace('_', ' ')} | {record['series']:,}, {record['horizon']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


# --- covariates: bench/covariates.py ------------------------------------------------------------


def covariates(record: Record) -> str:
    """Mean ± std over seeds of each variant's test scores, then the baselines (from the first run)."""
    found: dict[str, list[Record]] = record["runs"]
    labels = {
        "none": "LSTM, the series alone",
        "drivers": "LSTM + " + ", ".join(record.get("drivers", ["the drivers"])),
        "shuffled": "LSTM + the same columns shuffled",
    }
    lines = ["| run | test MSE | test MASE | seeds |", "|---|---:|---:|---:|"]
    means = {v: statistics.fmean(r["test_mse"] for r in runs) for v, runs in found.items()}
    best = min(means.values()) if means else None
    for variant, runs in found.items():
        mse = [r["test_mse"] for r in runs]
        mase = [r["test_mase"] for r in runs]
        cell = f"{statistics.fmean(mse):.4f} ± {statistics.pstdev(mse):.4f}"
        cell_mase = f"{statistics.fmean(mase):.4f} ± {statistics.pstdev(mase):.4f}"
        if means[variant] == best:
            cell, cell_mase = f"**{cell}**", f"**{cell_mase}**"
        lines.append(f"| {labels.get(variant, variant)} | {cell} | {cell_mase} | {len(runs)} |")
    first = next(iter(found.values()))[0]
    season, window = record.get("season", "?"), record.get("seq_length", "?")
    for name, label in (
        ("persistence", "persistence"),
        ("seasonal_naive", f"seasonal naive ({season} steps)"),
        ("linear", f"linear AR ({window} lags)"),
    ):
        lines.append(f"| {label} | {first[f'{name}_test_mse']:.4f} | {first[f'{name}_test_mase']:.4f} | |")
    return "\n".join(lines) + "\n"


# --- sections: what a docs marker names ---------------------------------------------------------


@dataclass(frozen=True)
class Section:
    bench: str  # the folder under docs/results
    command: str  # what writes it, for the line shown while there is no result
    render: Callable[[list[tuple[Path, Record]]], str]
    names: tuple[str, ...] = ()  # only these records (file stems); empty: every record of the folder


def _each(render: Callable[[Record], str]) -> Callable[[list[tuple[Path, Record]]], str]:
    """One block per record: its source line, then its table."""

    def blocks(found: list[tuple[Path, Record]]) -> str:
        return "\n".join(f"{source(record, path)}\n\n{render(record)}" for path, record in found)

    return blocks


def _together(
    render: Callable[[list[Record]], str], compact: bool = False
) -> Callable[[list[tuple[Path, Record]]], str]:
    """One table over every record, then one source line per record (`compact`: one line for all)."""

    def block(found: list[tuple[Path, Record]]) -> str:
        if compact:
            return f"{render([record for _, record in found])}\n{sources(found)}\n"
        lines = "\n".join(f"- {record['name']}: {source(record, path)}" for path, record in found)
        return f"{render([record for _, record in found])}\n{lines}\n"

    return block


SECTIONS: dict[str, Section] = {
    "speed": Section("speed", "make bench (python bench/run.py; make bench-gpu on a CUDA machine)", _each(speed)),
    "latency": Section(
        "latency",
        "make bench (or python bench/latency.py --model outputs/model)",
        _each(lambda r: latency(r["latency"], r.get("model", "the model exported by (b)"))),
    ),
    "scale": Section("scale", "python bench/scale.py", _each(scale)),
    "real_series": Section(
        "real_series", "python bench/real_series.py", _each(lambda r: real_series(r, True)), ("default",)
    ),
    "real_series_checks": Section(
        "real_series", "python bench/real_series.py", _each(lambda r: real_series(r, False)), ("default",)
    ),
    "real_series_variants": Section(
        "real_series", "python bench/real_series.py --tag NAME -- FLAGS", _together(real_series_variants)
    ),
    "competition": Section("competition", "python bench/competition.py --dataset all", _together(competition)),
    "competition_headline": Section(
        "competition", "python bench/competition.py --dataset all", _together(competition_headline, compact=True)
    ),
    "covariates": Section("covariates", "python bench/covariates.py", _each(covariates)),
}


def records(bench: str, results: Path = RESULTS, names: tuple[str, ...] = ()) -> list[tuple[Path, Record]]:
    folder = results / bench
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return [(p, json.loads(p.read_text())) for p in paths if not names or p.stem in names]


def render(name: str, results: Path = RESULTS) -> str:
    """The Markdown for a docs marker: the tables from the records, or one line saying none exists yet."""
    if name not in SECTIONS:
        raise KeyError(f"no results section {name!r}; known: {', '.join(SECTIONS)}")
    section = SECTIONS[name]
    found = records(section.bench, results, section.names)
    if not found:
        where = relative(results / section.bench) + "/" + (f"{section.names[0]}.json" if section.names else "")
        return f"*No result yet: `{section.command}` writes `{where}`.*\n"
    return section.render(found)
