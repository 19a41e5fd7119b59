"""Scores as text, in one place: the console's summary, the model card's tables and the backtest's.

Every figure goes through `number` (one format rule, "n/a" where there is none) and every
Markdown table through `markdown_table`; the console and the card list the same forecasts in
the same order (`SplitScores.rows`), so the three never disagree on what a run scored.
"""

from __future__ import annotations

from typing import Any

from lstm_trainer.evaluate import COVERAGES, Scores
from lstm_trainer.evaluate.scoring import RunScores, SplitScores

SHORT = {"validation": "val", "test": "test"}  # the split names of all_results.json's keys, for the card's tables


def number(value: Any, spec: str = ".6f") -> str:
    """A figure, or "n/a" where there is none (e.g. stopped by --max_train_steps in epoch 1).

    A spec ending in "%" appends the sign to a value already in percent ("81.2%" from 81.23, ".1f%").
    """
    if not isinstance(value, (int, float)):
        return "n/a"
    return f"{format(value, spec[:-1])}%" if spec.endswith("%") else format(value, spec)


def markdown_table(head: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A Markdown table: the first `left` columns aligned left, the others (figures) right."""
    align = "|" + "---|" * left + "---:|" * (len(head) - left)
    return [f"| {' | '.join(head)} |", align, *(f"| {' | '.join(row)} |" for row in rows)]


# The rows each table shows, picked once: the console and the card render the same rows.


def _overall(scores: RunScores) -> list[tuple[str, str, Scores]]:
    """(split, forecast, its MSE/MAE/MASE) for the model and every baseline scored on each split."""
    return [(label, name, forecast.overall) for label, split in scores.splits() for name, forecast in split.rows()]


def _intervals(scores: RunScores) -> list[tuple[str, float, list[float | None]]]:
    """(split, CRPS, coverage at each of COVERAGES) where the model is probabilistic."""
    found = []
    for label, split in scores.splits():
        intervals = split.model.intervals if split.model is not None else None
        if intervals is not None:
            found.append((label, intervals.crps, [intervals.coverage[level] for level in COVERAGES]))
    return found


def _by_step(validation: SplitScores | None) -> tuple[list[float], list[float]] | None:
    """Validation MSE per step ahead, the model's and persistence's (empty where not scored); None for H = 1."""
    if validation is None or validation.model is None or not validation.model.by_step:
        return None
    return [s.mse for s in validation.model.by_step], [s.mse for s in validation.persistence.by_step or []]


# The console (outputs/report.py's summary).


def baseline_table(scores: RunScores) -> list[str]:
    """The model beside every baseline on each split: MSE, MAE and MASE (forecasts not scored left out)."""
    rows = _overall(scores)
    if not rows:
        return []
    lines = ["", "Model and baselines (MASE: MAE / the training split's one-step naive MAE):"]
    lines += [
        f"  - {label:10s} {name:15s} MSE {number(overall.mse, '.6g'):>12s} | "
        f"MAE {number(overall.mae, '.6g'):>10s} | MASE {number(overall.mase, '.4f')}"
        for label, name, overall in rows
    ]
    return lines + per_series_table(scores)


PER_SERIES_HEAD = (
    "Per series, then the mean over {n} series (sMAPE in %; MASE: MAE / the series' own in-sample seasonal "
    "naive MAE; OWA: against Naive2, below 1 beats it):"
)


def _per_series(scores: RunScores) -> list[tuple[str, str, Any]]:
    return [
        (label, name, forecast.per_series)
        for label, split in scores.splits()
        for name, forecast in split.rows()
        if forecast.per_series is not None
    ]


def per_series_table(scores: RunScores) -> list[str]:
    """The competitions' measures: each series scored alone, then the mean over series (nothing on the sine)."""
    found = _per_series(scores)
    if not found:
        return []
    lines = ["", PER_SERIES_HEAD.format(n=found[0][2].series)]
    for label, name, s in found:
        lines.append(
            f"  - {label:10s} {name:15s} sMAPE {number(s.smape, '.3f'):>8s} | "
            f"MASE {number(s.mase, '.4f'):>8s} | OWA {number(s.owa, '.4f')}"
        )
    return lines


def interval_lines(scores: RunScores) -> list[str]:
    """A probabilistic model's CRPS and interval coverage per split (nothing for a point forecast)."""
    rows = _intervals(scores)
    if not rows:
        return []
    lines = [
        "",
        "Forecast distribution (CRPS: lower is better; coverage: share of targets inside the central interval):",
    ]
    for label, crps, shares in rows:
        coverage = ", ".join(
            f"{level}% {number(None if v is None else 100 * v, '.1f%')}"
            for level, v in zip(COVERAGES, shares, strict=True)
        )
        lines.append(f"  - {label:10s} CRPS {number(crps, '.6g')} | coverage {coverage}")
    return lines


def step_lines(validation: SplitScores | None) -> list[str]:
    """Validation MSE per step ahead for a horizon > 1, beside persistence's."""
    found = _by_step(validation)
    if found is None:
        return []
    model, scored = found
    naive: list[float | None] = [*scored] or [None] * len(model)
    lines = ["", "Validation MSE per step ahead (model | persistence):"]
    lines += [
        f"  - step {h:3d}: {number(m, '.6g')} | {number(p, '.6g')}"
        for h, (m, p) in enumerate(zip(model, naive, strict=True), start=1)
    ]
    return lines


def test_lines(test: SplitScores | None) -> list[str]:
    """The held-out test split, scored once at the end with the best model (absent for synthetic data)."""
    if test is None or test.model is None:
        return []
    return [
        "",
        "Test Summary (held out, scored once with the model kept):",
        f"  - Test MSE: {number(test.model.overall.mse)}",
        f"  - Persistence baseline (next = last value): {number(test.persistence.overall.mse)}",
    ]


# The model card (outputs/export.py).


def baseline_rows(scores: RunScores) -> str:
    """The model and each baseline on validation and test (MSE, MAE, MASE), as a Markdown table."""
    rows = [
        [SHORT[split], name, *(number(v, ".6g") for v in (overall.mse, overall.mae, overall.mase))]
        for split, name, overall in _overall(scores)
    ]
    if not rows:
        return ""
    table = markdown_table(["split", "forecast", "MSE", "MAE", "MASE"], rows, left=2)
    found = _per_series(scores)
    if found:
        per_series = [
            [SHORT[label], name, *(number(v, ".4g") for v in (s.smape, s.mase, s.owa))] for label, name, s in found
        ]
        table += ["", PER_SERIES_HEAD.format(n=found[0][2].series), ""]
        table += markdown_table(["split", "forecast", "sMAPE", "MASE", "OWA"], per_series, left=2)
    verdict = scores.verdict.text if scores.verdict is not None else None
    return "\n".join(["", *table, *([f"\nVerdict: {verdict}."] if verdict else [])])


def distribution_rows(scores: RunScores) -> str:
    """A probabilistic model's CRPS and central-interval coverage per split, as a Markdown table."""
    rows = [[SHORT[split], *(number(v, ".4g") for v in (crps, *shares))] for split, crps, shares in _intervals(scores)]
    if not rows:
        return ""
    table = markdown_table(["split", "CRPS", "coverage 50%", "coverage 80%", "coverage 95%"], rows)
    note = "\nCoverage is the share of targets inside the forecast's central interval: calibrated, it is close to the interval's level."
    return "\n".join(["", "", *table, note])  # a blank line: a table of its own


def step_rows(validation: SplitScores | None) -> str:
    """For a horizon > 1: validation MSE per step ahead, the model beside persistence, as a Markdown table."""
    found = _by_step(validation)
    if found is None:
        return ""
    model, naive = found
    rows = [["model val MSE", *(number(v, ".4g") for v in model)]]
    if naive:
        rows.append(["persistence val MSE", *(number(v, ".4g") for v in naive)])
    table = markdown_table(["step ahead", *(str(h) for h in range(1, len(model) + 1))], rows)
    return "\n".join(["", "", *table])


# The backtest (outputs/backtest.py): backtest.md from the record backtest.json holds.


def backtest_markdown(record: dict[str, Any]) -> str:
    """Two tables: every forecaster overall, then the model (and persistence) per step ahead."""
    probabilistic = "crps" in record
    extra = ["crps", "coverage_50", "coverage_80", "coverage_95"] if probabilistic else []
    head = ["mse", "mae", "mase", *extra]
    named = {"model": record, **record["baselines"]}
    overall = markdown_table(
        ["forecast", *head],
        [[name, *(number(figures.get(key), ".6g") for key in head)] for name, figures in named.items()],
    )
    by_step, naive = record["by_step"], record["baselines"]["persistence"]["by_step"]
    step_rows = []
    for h in range(record["horizon"]):
        cells = [by_step["mse"][h], by_step["mae"][h], by_step["mase"][h]]
        if probabilistic:
            cells += [by_step["crps"][h], by_step["coverage_80"][h]]
        step_rows.append([str(h + 1), *(number(v, ".6g") for v in [*cells, naive["mse"][h]])])
    step_head = ["step", "model MSE", "model MAE", "model MASE", *(["CRPS", "coverage 80%"] if probabilistic else [])]
    steps = markdown_table([*step_head, "persistence MSE"], step_rows, left=0)
    recursive = (
        f" Steps beyond the model's horizon ({record['model_horizon']}) are recursive: its forecasts fed back as inputs."
        if record["recursive"]
        else ""
    )
    return "\n".join(
        [
            f"# Backtest: {record['origins']} origins of the {record['split']} split, {record['horizon']} steps ahead, stride {record['stride']}",
            "",
            f"MASE: MAE over the training split's one-step naive MAE.{recursive}",
            "",
            *overall,
            "",
            "## Per step ahead",
            "",
            *steps,
            "",
        ]
    )


def backtest_line(record: dict[str, Any]) -> str:
    """The backtest's console line: the model's overall scores."""
    line = f"MSE {number(record['mse'], '.6g')}, MASE {number(record['mase'], '.6g')}"
    if "crps" in record:
        line += f", CRPS {number(record['crps'], '.6g')}, 80% coverage {number(100 * record['coverage_80'], '.1f%')}"
    return line
