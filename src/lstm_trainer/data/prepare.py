"""What a run trains on: series -> splits in time -> per-series normalisation -> windows.

Statistics come from each series' training part only (validation and test values never
shape the transform). The series stay in the data's own units; the z-score is applied per
window as a batch is gathered (windows.py), so no normalised copy of the data is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from datasets import DatasetDict

from lstm_trainer.config import DataConfig
from lstm_trainer.data.covariates import CovariateScaling
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.data.rows import SeriesSet
from lstm_trainer.data.seasonality import factors, seasonal_indices
from lstm_trainer.data.sources import load_series
from lstm_trainer.data.splits import SHOWN_IDS, SplitPlan, plan_by_fraction, plan_by_size
from lstm_trainer.data.windows import Windows, params_info
from lstm_trainer.errors import UserError


@dataclass
class PreparedData:
    rows: SeriesSet  # every series used, in data units
    windows: dict[str, Windows]  # train / validation / optional test; gather(normalised=True) is what the model sees
    normalization: Normalization
    params: dict[str, Any]  # the source's generation or reading parameters
    plan: SplitPlan  # where each series is cut in time
    notes: list[str] = field(default_factory=list)  # series dropped, and why

    def split_rows(self) -> DatasetDict:
        """The series rows in the Hub's layout, one split per part in time, each holding every series
        up to the end of that part (train, then validation = train + more, then test = all), as
        the Hub's time-series sets do; the source parameters travel in each split's DatasetInfo."""
        covariates = self.rows.covariates
        if covariates is not None and (covariates.names.past or covariates.names.static):
            raise UserError(
                "series rows keep future-known covariates only (feat_dynamic_real); leave out --past_covariates "
                "and --static_covariates here, or train on the table itself"
            )
        with_covariates = covariates is not None and bool(covariates.names.dynamic)
        info = params_info({k: v for k, v in self.params.items() if k != "normalization"}, with_covariates)
        return DatasetDict(
            {split: self.rows.to_dataset(bounds[:, 1], info.copy()) for split, bounds in self.plan.bounds.items()}
        )

    @property
    def noise_floor(self) -> float | None:
        """For synthetic data the best possible MSE is the noise variance; unknown otherwise."""
        if self.params.get("source") == "synthetic":
            return float(self.params["noise_std"]) ** 2
        return None

    def with_covariate_scaling(self, scaling: CovariateScaling) -> PreparedData:
        """The windows' covariates scaled as a trained model recorded (the backtest), not as fitted here."""
        assert self.rows.covariates is not None and self.rows.covariates.names == scaling.names
        dynamic, statics = scaling.apply(self.rows.covariates)
        past = len(scaling.names.past)
        windows = {split: w.with_covariates(dynamic, statics, past) for split, w in self.windows.items()}
        return replace(self, windows=windows, normalization=replace(self.normalization, covariates=scaling))

    @property
    def covariate_counts(self) -> tuple[int, int, int]:
        """(past, future, static) covariate channels the model takes: none without covariates."""
        return (0, 0, 0) if self.rows.covariates is None else self.rows.covariates.names.counts

    @property
    def per_series(self) -> bool:
        return self.normalization.series is not None

    def describe(self) -> str:
        sizes = ", ".join(f"{split} {len(w)}" for split, w in self.windows.items())
        train = self.windows["train"]
        norm = self.normalization
        if norm.is_identity:
            scaling = "values as they are (no normalisation)"
        elif self.per_series:
            scaling = (
                "z-score per series from its train part; losses during training are in those units, "
                "the final scores in the data's units"
            )
        else:
            scaling = f"z-score from the train split (mean {norm.mean:.6g}, std {norm.std:.6g}); every MSE in the data's units"
        ahead = f", {train.horizon} steps ahead" if train.horizon > 1 else ""
        series = f"{self.rows.num_series} series, {self.rows.num_points:,} points; "
        notes = "".join(f"\n  note: {note}" for note in self.notes)
        return f"  data {source_text(self.params)}: {series}{sizes} windows of {train.seq_length} steps{ahead}; {scaling}{notes}"


def prepare_data(config: DataConfig, seed: int) -> PreparedData:
    loaded = load_series(config, seed)
    rows, params = loaded.rows, loaded.params
    notes: list[str] = []
    if loaded.plan is None and config.by_size:
        val_size, test_size = config.split_sizes
        rows, plan = plan_by_size(rows, val_size, test_size, config.seq_length, config.horizon, config.dataset)
        notes += plan.dropped
        params.update(val_size=val_size, test_size=test_size)
    elif loaded.plan is None:
        rows, plan = plan_by_fraction(
            rows, config.val_fraction, config.test_fraction, config.seq_length, config.horizon, config.dataset
        )
        notes += plan.dropped
        params.update(val_fraction=config.val_fraction, test_fraction=config.test_fraction)
    else:
        plan = loaded.plan
    params.update(seq_length=config.seq_length, series=rows.num_series, points=rows.num_points)
    if config.horizon > 1:
        params["horizon"] = config.horizon
    if loaded.spans and rows.num_series == 1:
        params["split_rows"] = _split_rows(plan, loaded.spans)
    windows = {
        split: plan.windows(rows, split, config.seq_length, config.horizon, config.min_inputs) for split in plan.bounds
    }
    empty = [split for split, w in windows.items() if len(w) == 0]
    if empty:
        raise UserError(
            f"{config.dataset}: the {empty[0]} split holds no windows of {config.seq_length} + {config.horizon} values"
        )
    unadjusted = _unadjusted(rows, windows["train"].spans(), config) if config.deseasonalize else ""
    normalization, rows, plan, windows, dropped = _normalize(rows, plan, windows, config, params)
    notes += dropped
    if rows.covariates is not None:
        # Fitted where the training windows read, as the target's statistics are.
        scaling = CovariateScaling.fit(rows.covariates, windows["train"].spans())
        dynamic, statics = scaling.apply(rows.covariates)
        past = len(rows.covariates.names.past)
        windows = {split: w.with_covariates(dynamic, statics, past) for split, w in windows.items()}
        normalization = replace(normalization, covariates=scaling)
        params["covariates"] = rows.covariates.names.to_dict()
    if notes:
        params["dropped_series"] = notes
    if unadjusted:  # recorded beside the settings, and said with the run's other notes
        params["deseasonalize_note"] = unadjusted
        notes = [*notes, unadjusted]
    return PreparedData(rows, windows, normalization, params, plan, notes)


def _unadjusted(rows: SeriesSet, spans: np.ndarray, config: DataConfig) -> str:
    """The note for series --deseasonalize leaves as they are because their train part holds a value <= 0 (a
    multiplicative season is a ratio to the trend: seasonality.py), or "" where there are none."""
    bad = [s for s, (a, b) in enumerate(spans) if (rows.values[a:b] <= 0).any()]
    if not bad:
        return ""
    shown = ", ".join(repr(rows.item_ids[s]) for s in bad[:SHOWN_IDS]) + (", ..." if len(bad) > SHOWN_IDS else "")
    return (
        f"--deseasonalize left {len(bad)} of {rows.num_series} series unadjusted: their train part holds zeros or "
        f"negative values, and a multiplicative season needs positive ones: {shown}"
    )


def _normalize(
    rows: SeriesSet, plan: SplitPlan, windows: dict[str, Windows], config: DataConfig, params: dict[str, Any]
) -> tuple[Normalization, SeriesSet, SplitPlan, dict[str, Windows], list[str]]:
    """z-score per series fitted on its train part; none for the reference's synthetic data under `auto`.

    The sine wave is already centred with unit-order amplitude, and the reference trains on it
    raw: normalising would change its loss values and nothing else, so `auto` leaves it alone.
    """
    mode = config.normalization
    if mode == "auto":
        mode = "none" if params.get("source") == "synthetic" else "zscore"
    spans = windows["train"].spans()
    seasonal = None
    if config.deseasonalize:
        # Fitted on each series' training part, position 0 its first value (spans start there).
        seasonal = np.stack([seasonal_indices(rows.values[a:b], config.season) for a, b in spans])  # (S, m)
    if mode == "none":
        if seasonal is None:
            return Normalization.identity(), rows, plan, windows, []
        ones, zeros = np.ones(rows.num_series), np.zeros(rows.num_series)
        norm = Normalization(0.0, 1.0, seasonal=_by_id(rows, seasonal))
        return (
            norm,
            rows,
            plan,
            {split: w.with_normalization(zeros, ones, seasonal) for split, w in windows.items()},
            [],
        )
    # (S, 2); a loop over series, not points
    stats = np.array([_mean_std(_adjusted(rows.values[a:b], seasonal, s)) for s, (a, b) in enumerate(spans)])
    constant = stats[:, 1] == 0.0
    if constant.all():
        first = rows.values[spans[0, 0]]
        what = (
            "the training split is constant" if rows.num_series == 1 else "every series is constant in its train part"
        )
        raise UserError(
            f"{config.dataset}: {what} (every value {first:g}), so it cannot be "
            "z-scored and there is nothing to learn; check --data_column, or pass --normalization none"
        )
    notes = []
    if constant.any():
        bad = np.flatnonzero(constant)
        shown = ", ".join(repr(rows.item_ids[s]) for s in bad[:SHOWN_IDS]) + (", ..." if len(bad) > SHOWN_IDS else "")
        notes.append(
            f"{len(bad)} of {rows.num_series} series dropped, constant in their train part (nothing to scale or learn): {shown}"
        )
        keep = ~constant
        rows = rows.select(keep)
        plan = SplitPlan({split: b[keep] for split, b in plan.bounds.items()}, plan.context)
        windows = {
            split: plan.windows(rows, split, config.seq_length, config.horizon, config.min_inputs)
            for split in plan.bounds
        }
        stats = stats[keep]
        seasonal = seasonal[keep] if seasonal is not None else None
        spans = windows["train"].spans()
    by_id = _by_id(rows, seasonal) if seasonal is not None else None
    if rows.num_series == 1:
        normalization = Normalization(float(stats[0, 0]), float(stats[0, 1]), seasonal=by_id)
    else:
        pooled = (
            _pooled(rows.values, spans) if seasonal is None else (float(stats[:, 0].mean()), float(stats[:, 1].mean()))
        )
        normalization = Normalization(
            *pooled, series={rows.item_ids[s]: (float(m), float(d)) for s, (m, d) in enumerate(stats)}, seasonal=by_id
        )
    loc, scale = stats[:, 0].copy(), stats[:, 1].copy()
    adjusted = {split: w.with_normalization(loc, scale, seasonal) for split, w in windows.items()}
    return normalization, rows, plan, adjusted, notes


def _adjusted(values: np.ndarray, seasonal: np.ndarray | None, series: int) -> np.ndarray:
    """A series' values divided by its seasonal factors (as they are without adjustment)."""
    if seasonal is None:
        return values
    return values / factors(seasonal[series], np.arange(len(values)))


def _by_id(rows: SeriesSet, seasonal: np.ndarray) -> dict[str, tuple[float, ...]]:
    return {rows.item_ids[s]: tuple(float(v) for v in seasonal[s]) for s in range(rows.num_series)}


# A series longer than this gets its statistics a chunk at a time: a float64 copy of a
# 10^8-point series is 800 MB, twice (the deviations), and was most of that run's peak RSS.
STATS_CHUNK = 1 << 22


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and (population) std in float64; exactly NumPy's below STATS_CHUNK points."""
    if len(values) <= STATS_CHUNK:
        values = values.astype(np.float64)
        return float(values.mean()), float(values.std())
    parts = range(0, len(values), STATS_CHUNK)
    mean = sum(float(np.sum(values[a : a + STATS_CHUNK], dtype=np.float64)) for a in parts) / len(values)
    squares = sum(float(np.sum((values[a : a + STATS_CHUNK].astype(np.float64) - mean) ** 2)) for a in parts)
    return mean, float(np.sqrt(squares / len(values)))


def _pooled(values: np.ndarray, spans: np.ndarray) -> tuple[float, float]:
    """Mean and std of every training value together, from per-series sums (no concatenated copy)."""
    n = float(np.sum(spans[:, 1] - spans[:, 0]))
    pieces = [(a, min(a + STATS_CHUNK, b)) for start, b in spans for a in range(start, b, STATS_CHUNK)]
    mean = sum(float(np.sum(values[a:b], dtype=np.float64)) for a, b in pieces) / n
    squares = sum(float(np.sum((values[a:b].astype(np.float64) - mean) ** 2)) for a, b in pieces)
    return mean, float(np.sqrt(squares / n))


def _split_rows(plan: SplitPlan, spans: dict[str, Any]) -> dict[str, Any]:
    """For one series read from a table: the source rows (and times) each split covers, for the card."""
    rows, times = spans["rows"], spans.get("times")
    out = {}
    for split, bounds in plan.bounds.items():
        start, stop = int(bounds[0, 0]), int(bounds[0, 1])
        span: dict[str, Any] = {"first_row": int(rows[start]), "last_row": int(rows[stop - 1]), "values": stop - start}
        if times is not None:
            span.update(first_time=times[start], last_time=times[stop - 1])
        out[split] = span
    return out


def source_text(params: dict[str, Any]) -> str:
    """A short human description of where the series came from."""
    source = params.get("source")
    if source == "synthetic":
        return f"synthetic sine (seed {params.get('seed')}, noise_std {params.get('noise_std')})"
    if source in ("file", "folder", "hub"):
        where = params.get("file") or params.get("folder") or params.get("repo_id")
        column = params.get("data_column")
        columns = f"columns {', '.join(map(repr, column))}" if isinstance(column, list) else f"column {column!r}"
        by = f" by {params['id_column']!r}" if params.get("id_column") else ""
        return f"{where}, {columns}{by}"
    return "series"
