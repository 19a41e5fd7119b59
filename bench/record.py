"""What every benchmark writes beside its own outputs: one JSON record under docs/results/<bench>/<name>.json.

The docs' tables are rendered from these files at build time (bench/tables.py, docs/hooks.py), never
typed by hand, so a figure in the docs is always one that a command wrote, with its date, the command
and the machine it ran on (CPU model, core count, memory, load average before and after).

    {"bench": "speed", "name": "cpu", "date": "2026-12-08T01:33:00+00:00",
     "command": "python bench/run.py", "machine": {"cpu": ..., "cores": 2, ...},
     "load_average": [0.8, 1.9], ...the bench's own figures...}
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
# What the versions line names: the libraries a timing depends on.
LIBRARIES = ("torch", "accelerate", "deepspeed", "statsforecast")


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform says."""
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):  # not Linux, or no model name
        return platform.processor() or platform.machine()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else 0.0


def machine(**extra: Any) -> dict[str, Any]:
    """The machine a figure was measured on; `extra` adds e.g. the GPU."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "memory_gib": round(memory / 2**30, 1),
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": versions,
        **extra,
    }


def command(argv: list[str] | None = None) -> str:
    """The command that ran, as a user would type it from the repository root."""
    args = sys.argv if argv is None else argv
    script = Path(args[0])
    with contextlib.suppress(ValueError):  # a script outside the repository keeps its path
        script = script.resolve().relative_to(ROOT)
    return shlex.join(["python", str(script), *args[1:]])


def write(
    bench: str, name: str, figures: dict[str, Any], load_before: float, results: str | Path | None = None, **extra: Any
) -> Path:
    """Write <results>/<bench>/<name>.json (default: docs/results/...): the envelope, then the figures."""
    record = {
        "bench": bench,
        "name": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command(),
        "machine": machine(**extra),
        "load_average": [round(load_before, 2), load_average()],
        **figures,
    }
    out = (Path(results) if results is not None else RESULTS) / bench
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{bench}: wrote {path}", flush=True)
    return path


def add_flags(parser: Any, name: str) -> None:
    """--results_dir and --name, the same in every bench."""
    parser.add_argument(
        "--results_dir",
        default=str(RESULTS),
        help="where the record goes, as <results_dir>/<bench>/<name>.json; the docs' tables are rendered "
        "from docs/results/ (the default)",
    )
    parser.add_argument("--name", default=name, help="the record's file name, without .json")
