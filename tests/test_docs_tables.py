"""The docs' benchmark tables: rendered from the benches' records (bench/tables.py, docs/hooks.py), never typed.

Sample records in the shape each bench writes are rendered here; the README's headline block must be
what docs/results/ gives (`python docs/hooks.py` rewrites it; `make docs` runs that).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "docs"))
import hooks
import tables

MACHINE = {
    "cpu": "AMD EPYC 7B13",
    "cores": 2,
    "usable_cores": 2,
    "memory_gib": 23.5,
    "system": "Linux x86_64",
    "python": "3.11.7",
    "versions": {"torch": "2.13.0", "accelerate": "1.15.0", "deepspeed": "0.19.8"},
}


def envelope(bench: str, name: str, **figures: Any) -> dict[str, Any]:
    return {
        "bench": bench,
        "name": name,
        "date": "2026-12-08T03:04:05+00:00",
        "command": f"python bench/{bench}.py",
        "machine": MACHINE,
        "load_average": [0.4, 1.6],
        **figures,
    }


def method(name: str, smape: float, mase: float, owa: float, seconds: float, peak: float | None) -> dict[str, Any]:
    return {"method": name, "smape": smape, "mase": mase, "owa": owa, "series": 3, "seconds": seconds, "peak_mib": peak}


def competition_record(name: str, ours: float) -> dict[str, Any]:
    """bench/competition.py's record: every method of one data set."""
    return envelope(
        "competition",
        name,
        series=3,
        points=300,
        horizon=18,
        season=12,
        seeds=6,
        project_flags=["--seq_length", "36"],
        train_flags=[],
        methods=[
            method("Naive2", 16.5, 1.1, 1.0, 0.01, None),
            method("Theta", 14.0, 0.9, 0.85, 4, 350),
            method("AutoETS", 14.5, 0.85, 0.86, 90, 352),
            method("lstm-trainer (6 seeds)", ours, 0.88, 0.84, 500, 1300),
        ],
        published="N-BEATS paper, sMAPE: Theta 13.85",
    )


def run_scores(mase: float, linear: float, stopped: bool) -> dict[str, Any]:
    return {"test_mse": 1.0, "test_mase": mase, "persistence_test_mase": 1.4, "linear_test_mase": linear,
            "global_batch_size": 16, "optimizer_steps": 150, "epochs_completed": 15, "stopped_early": stopped,
            "quality": "beats the baselines"}  # fmt: skip


def real_series_record(name: str, mase: float) -> dict[str, Any]:
    """bench/real_series.py's record: one entry per series, the defaults' choosers and the checks."""
    series = [
        {"name": "sunspots", "what": "yearly sunspots", "column": "SUNACTIVITY", "season": 11, "chose_defaults": True,
         "points": 309, "command": "python train.py ...", "seasonal_naive_test_mase": 1.62,
         "results": run_scores(mase, 1.05, True)},
        {"name": "nile", "what": "yearly Nile flow", "column": "volume", "season": None, "chose_defaults": False,
         "points": 100, "command": "python train.py ...", "seasonal_naive_test_mase": None,
         "results": run_scores(1.03, 1.48, False)},
    ]  # fmt: skip
    return envelope("real_series", name, train_args=[] if name == "default" else ["--linear_skip", "0"], series=series)


def write(results: Path, record: dict[str, Any]) -> None:
    folder = results / record["bench"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['name']}.json").write_text(json.dumps(record))


def test_with_no_record_a_table_is_one_line_naming_its_command(tmp_path: Path) -> None:
    for name, section in tables.SECTIONS.items():
        text = tables.render(name, tmp_path)
        assert text.count("\n") == 1 and text.startswith("*No result yet:"), name
        assert section.command.split(" (")[0] in text, name
    with pytest.raises(KeyError, match="no results section 'nope'"):
        tables.render("nope", tmp_path)


def test_the_competition_tables_bold_the_best_of_three_and_name_their_source(tmp_path: Path) -> None:
    write(tmp_path, competition_record("m3_monthly", 13.6))
    write(tmp_path, competition_record("tourism_monthly", 14.2))
    full = tables.render("competition", tmp_path)
    assert (
        "| m3 monthly (3 series, h 18) | lstm-trainer (6 seeds) | **13.60** | 0.880 | **0.840** | 500 | 1300 |" in full
    )
    assert "|  | Theta | 14.00 | 0.900 | 0.850 | 4 | 350 |" in full
    assert "|  | AutoETS | 14.50 | **0.850** | 0.860 | 90 | 352 |" in full
    assert "|  | Naive2 | 16.50 | 1.100 | 1.000 | 0 |  |" in full  # the yardstick is never bold
    assert "| tourism monthly (3 series, h 18) | lstm-trainer (6 seeds) | 14.20 |" in full  # Theta's 14.00 wins there
    # Every record says when, by what, where and under what load it was measured, and from which file.
    assert (
        "- m3_monthly: Measured 2026-12-08 03:04 UTC by `python bench/competition.py` on AMD EPYC 7B13, 2 cores, "
        in full
    )
    assert "load average 0.4 before, 1.6 after" in full and "From `" in full and "m3_monthly.json`" in full
    headline = tables.render("competition_headline", tmp_path)
    assert "| m3 monthly | 3, 18 | **13.60** / **0.840** | 14.00 / 0.850 | 14.50 / 0.860 | 16.50 / 1.000 |" in headline
    # One source line for all: a README is read, not audited (the benchmarks page lists each record).
    assert headline.rstrip().splitlines()[-1] == (
        "Measured 2026-12-08 by `python bench/competition.py` on AMD EPYC 7B13, 2 cores, 23.5 GiB; "
        f"load average 0.4 to 1.6. From `{tables.relative(tmp_path / 'competition')}/`."
    )
    one = tables.competition_one(competition_record("m3_monthly", 13.6))
    assert one.splitlines()[4].startswith("| lstm-trainer (6 seeds) | 13.60 |")  # sorted by sMAPE
    assert one.rstrip().endswith("Published: N-BEATS paper, sMAPE: Theta 13.85")


def test_the_real_series_tables(tmp_path: Path) -> None:
    write(tmp_path, real_series_record("default", 0.99))
    write(tmp_path, real_series_record("no_linear_skip", 1.32))
    chose = tables.render("real_series", tmp_path)
    assert (
        "| `sunspots`: yearly sunspots | 309 | 16, 150 (early stop, epoch 15) | **0.9900** | 1.4000 | 1.6200 (11) "
        in chose
    )
    assert "nile" not in chose and "From `" in chose
    checks = tables.render("real_series_checks", tmp_path)
    assert (
        "| `nile`: yearly Nile flow | 100 | 16, 150 (15 epochs) | **1.0300** | 1.4000 | - | 1.4800 | 0.696 |" in checks
    )
    variants = tables.render("real_series_variants", tmp_path).splitlines()
    assert variants[:4] == [
        "| variant | flags | sunspots |",
        "|---|---|---:|",
        "| default | `none (the defaults)` | 0.9900 |",
        "| no_linear_skip | `--linear_skip 0` | 1.3200 |",
    ]
    assert variants[4:6] == ["| *persistence* | | 1.4000 |", "| *linear AR* | | 1.0500 |"]


def test_the_speed_latency_scale_and_covariate_tables(tmp_path: Path) -> None:
    run = {"title": "(a) bare PyTorch loop", "processes": 1, "threads_per_process": 1, "precision": "no", "epochs": 12,
           "timed_epochs": 11, "epoch_seconds_median": 2.44, "epoch_cpu_seconds_median": 2.4, "windows_per_second": 3246,
           "launch_to_first_step_seconds": 3.1, "peak_rss_mib_per_process": [462], "peak_cuda_mib_per_process": None,
           "dataset_seconds": 0.001, "seconds_to_target_mse": 4.3, "epochs_to_target_mse": 1, "best_val_mse": 0.011204}  # fmt: skip
    targets = {"help_seconds": {"value": 0.06, "limit": 1.0, "met": True}}
    settings = {"device": "cpu", "epochs": 12, "target_mse": 0.0115, "global_batch_size": 128, "train_args": []}
    write(tmp_path, envelope("speed", "cpu", settings=settings, runs={"bare": run}, targets=targets))
    speed = tables.render("speed", tmp_path)
    assert (
        "| training s / epoch (median) | 2.44 |" in speed
        and "| time to val MSE <= 0.0115, s (epoch) | 4.3 (1) |" in speed
    )
    assert "| `python train.py --help` < 1 s | 0.06 s | yes |" in speed
    latency = {"one_window_ms_median": 0.5, "predict_command_seconds": 2.14, "many_series": 10_000,
               "many_series_seconds": 1.0, "targets": {"one_window_ms": {"met": True}, "predict_command_s": {"met": True}}}  # fmt: skip
    write(tmp_path, envelope("latency", "cpu", model="the model exported by bench/run.py's (b)", latency=latency))
    assert "| 10,000 series, one window each, one call | 1.00 s | | |" in tables.render("latency", tmp_path)
    cells = [{"points": 10_000, "series": 1, "processes": 2, "runs": [
        {"peak_rss_mib": 491, "pss_mib": 397, "setup_seconds": 0.03, "windows_per_second": 2400},
        {"peak_rss_mib": 480, "pss_mib": 390, "setup_seconds": 0.02, "windows_per_second": 2414}]}]  # fmt: skip
    write(tmp_path, envelope("scale", "default", settings={}, cells=cells))
    assert "| 1e+04 | 1 | 2 | 491 | 397 | 0.03 | 2407 |" in tables.render("scale", tmp_path)
    scores = {"persistence_test_mse": 0.67, "persistence_test_mase": 2.8, "seasonal_naive_test_mse": 0.23,
              "seasonal_naive_test_mase": 1.45, "linear_test_mse": 0.15, "linear_test_mase": 1.28}  # fmt: skip
    found = {
        "none": [{**scores, "test_mse": 0.13, "test_mase": 1.13}, {**scores, "test_mse": 0.14, "test_mase": 1.14}],
        "drivers": [{**scores, "test_mse": 0.08, "test_mase": 0.9}, {**scores, "test_mse": 0.08, "test_mase": 0.92}],
    }
    write(tmp_path, envelope("covariates", "default", seq_length=72, season=24, drivers=["Temperature"], runs=found))
    covariates = tables.render("covariates", tmp_path)
    assert "| LSTM, the series alone | 0.1350 ± 0.0050 | 1.1350 ± 0.0050 | 2 |" in covariates
    assert "| LSTM + Temperature | **0.0800 ± 0.0000** | **0.9100 ± 0.0100** | 2 |" in covariates
    assert "| seasonal naive (24 steps) | 0.2300 | 1.4500 | |" in covariates and "| linear AR (72 lags) |" in covariates


def test_a_page_marker_becomes_its_table_and_the_readme_block_is_rewritten(tmp_path: Path) -> None:
    page = "# Bench\n\n<!-- results: competition_headline -->\n\nafter\n"
    assert hooks.fill_page(page, tmp_path) == (
        "# Bench\n\n*No result yet: `python bench/competition.py --dataset all` writes `"
        + tables.relative(tmp_path / "competition")
        + "/`.*\n\n\nafter\n"
    )
    write(tmp_path, competition_record("m3_monthly", 13.6))
    readme = "intro\n<!-- results: competition_headline -->\nstale figures\n<!-- /results -->\nend\n"
    filled = hooks.fill_blocks(readme, tmp_path)
    assert filled.startswith("intro\n<!-- results: competition_headline -->\n| data set |")
    assert filled.endswith("<!-- /results -->\nend\n") and "stale" not in filled
    assert hooks.fill_blocks(filled, tmp_path) == filled  # rewriting is idempotent


def test_every_marker_names_a_section_and_every_section_is_shown() -> None:
    used = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for name in hooks.MARKER.findall(page.read_text()):  # a marker is a line of its own
            assert name in tables.SECTIONS, f"{page.name}: no results section {name!r}"
            used.add(name)
    assert used == set(tables.SECTIONS)


def test_the_readme_block_is_what_the_records_give() -> None:
    """Fails after a bench wrote a record until `python docs/hooks.py` (make docs) rewrites README.md."""
    readme = hooks.README.read_text()
    assert "<!-- results: competition_headline -->" in readme
    assert hooks.fill_blocks(readme) == readme, "README.md's results block is stale: run `python docs/hooks.py`"


def test_committed_records_render() -> None:
    """Whatever the benches wrote to docs/results/ renders, table by table."""
    for name in tables.SECTIONS:
        assert tables.render(name).strip(), name
    for path in tables.RESULTS.glob("*/*.json"):
        record = json.loads(path.read_text())
        assert record["bench"] == path.parent.name and record["name"] == path.stem, path
        assert {"date", "command", "machine", "load_average"} <= record.keys(), path
