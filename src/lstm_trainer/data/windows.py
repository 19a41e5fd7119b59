"""Windows as index arithmetic: window i of a split is (series, offset), gathered at batch time.

Nothing is materialised: a split is, per series, the position of its first target and how
many windows it holds. Window i lies in the series whose cumulative count passes i; its
inputs are the seq_length values before its target position, its target the `horizon`
values from there on. Where inputs would reach before the series' first value (a series
shorter than a window, see splits.py) they are that first value repeated: left padding, so a
short series trains and is forecast with the same model as a long one. A batch is one fancy index into the series values: [B, T] inputs,
[B] targets (horizon 1) or [B, H]. Memory is the series itself, 4 bytes a point, where
materialised windows took (seq_length + 1) x 4 bytes a window, twice (Arrow, then tensors).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from datasets import Dataset, DatasetInfo

from lstm_trainer.data.rows import series_features

INPUTS, TARGET = "inputs", "target"
SPLITS = ("train", "validation")
# Splits a run uses, in time order; "test" is optional and scored once at the end.
ALL_SPLITS = ("train", "validation", "test")
# Windows gathered at once where a whole split is read (scoring, the linear fits): 64 Ki
# windows of 50 steps are 13 MB of float32, whatever the split's size.
CHUNK = 65_536


@dataclass
class WindowInputs:
    """What a forecast of N windows reads, in one record: gathered from a split (Windows.window_inputs) or
    from the end of each series (model/inference.py), read by Predictor.forecast for the run's scoring, the
    backtest, predict and the API."""

    values: np.ndarray  # [N, T] the inputs, in the data's units
    # Each window's series statistics where they are per series (model value = (value - loc) / scale);
    # None: the model's saved z-score maps every window.
    loc: np.ndarray | None = None  # [N]
    scale: np.ndarray | None = None  # [N]
    # A --deseasonalize model's seasonal factors of the inputs [N, T] and of the steps ahead [N, H]
    # (data/seasonality.py): the inputs are divided by them, the forecast multiplied back. None: none.
    seasonal: tuple[np.ndarray, np.ndarray] | None = None
    # A covariate model's inputs beside the values, over the T inputs and the H steps ahead [N, T + H, C],
    # in the model's units (covariates.py); such a model forecasts up to its H. None: the series alone.
    covariates: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.values)

    def last(self, length: int) -> WindowInputs:
        """Each window's last `length` inputs, with what goes with them: what a model with a shorter window reads."""
        cut = self.values.shape[1] - length
        assert cut >= 0, (self.values.shape, length)
        seasonal = None if self.seasonal is None else (self.seasonal[0][:, cut:], self.seasonal[1])
        covariates = None if self.covariates is None else self.covariates[:, cut:]  # [N, length + H, C]
        return replace(self, values=self.values[:, cut:], seasonal=seasonal, covariates=covariates)


@dataclass
class Windows:
    """The windows of one split over `values` (all series end to end, data units)."""

    values: np.ndarray  # (P,) float32
    first: np.ndarray  # (S,) int64: position in `values` of each series' first target
    counts: np.ndarray  # (S,) int64: windows of each series in this split (may be 0)
    seq_length: int
    horizon: int = 1
    # Per series: model value = (value - loc) / scale, fitted on its training part (prepare.py).
    loc: np.ndarray | None = None  # (S,) float64
    scale: np.ndarray | None = None  # (S,) float64
    # (S,) position in `values` of each series' first value: inputs before it are padded with it.
    # None: every window lies whole within its series (the synthetic reference's own windows).
    starts: np.ndarray | None = None
    # (S, m) each series' multiplicative seasonal indices (data/seasonality.py), position 0 its first
    # value: the model sees value / index before the z-score. None: no seasonal adjustment.
    seasonal: np.ndarray | None = None
    # Covariates in the model's units (covariates.py): (P, C) beside `values`, the first `past` of them
    # known only up to each window's end, and (S, Cs) per series. None: the series alone.
    covariates: np.ndarray | None = None
    statics: np.ndarray | None = None
    past: int = 0
    ends: np.ndarray = field(init=False)  # (S,) cumulative window counts

    def __post_init__(self) -> None:
        self.first = np.asarray(self.first, np.int64)
        self.counts = np.asarray(self.counts, np.int64)
        self.ends = np.cumsum(self.counts)
        if self.starts is None:
            assert (self.first >= self.seq_length).all() or not len(self.first)
        else:
            self.starts = np.asarray(self.starts, np.int64)
            assert ((self.first > self.starts) | (self.counts == 0)).all()
        self._lags = np.arange(-self.seq_length, 0, dtype=np.int64)  # [T]
        self._ahead = np.arange(self.horizon, dtype=np.int64)  # [H]

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def is_normalised(self) -> bool:
        adjusted = self.seasonal is not None
        return adjusted or (
            self.loc is not None and self.scale is not None and bool(self.loc.any() or (self.scale != 1).any())
        )

    def with_normalization(self, loc: np.ndarray, scale: np.ndarray, seasonal: np.ndarray | None = None) -> Windows:
        return replace(self, loc=loc, scale=scale, seasonal=seasonal)

    def with_covariates(self, dynamic: np.ndarray, statics: np.ndarray, past: int) -> Windows:
        return replace(self, covariates=dynamic, statics=statics, past=past)

    def gather_covariates(self, index: np.ndarray) -> np.ndarray | None:
        """Each window's covariates over its inputs and the `horizon` steps after them, [B, T + H, C], in the
        model's units: past ones zero over the horizon (unknown there), statics on every step. None without."""
        if self.covariates is None or self.statics is None:
            return None
        series, position = self.locate(index)
        steps = position[:, None] + np.concatenate([self._lags, self._ahead])  # [B, T + H]
        if self.starts is not None:
            steps = np.maximum(steps, self.starts[series][:, None])  # left padding, as the values
        dynamic = self.covariates[steps]  # [B, T + H, Cp + Cf]
        dynamic[:, self.seq_length :, : self.past] = 0.0
        statics = np.broadcast_to(self.statics[series][:, None, :], (*steps.shape, self.statics.shape[1]))
        return np.concatenate([dynamic, statics], axis=2)

    def locate(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window indices (B,) -> their series (B,) and target positions in `values` (B,)."""
        index = np.asarray(index, np.int64)
        series = np.searchsorted(self.ends, index, side="right")
        return series, self.first[series] + index - (self.ends[series] - self.counts[series])

    def gather(self, index: np.ndarray, normalised: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """inputs [B, T] and targets [B] (horizon 1) or [B, H], float32; normalised per series if asked."""
        series, position = self.locate(index)
        lags = position[:, None] + self._lags  # [B, T]
        if self.starts is not None:
            lags = np.maximum(lags, self.starts[series][:, None])  # left padding with the first value
        inputs = self.values[lags]  # [B, T]
        targets = self.values[position] if self.horizon == 1 else self.values[position[:, None] + self._ahead]
        if normalised and self.is_normalised:
            assert self.loc is not None and self.scale is not None
            inputs, targets = inputs.astype(np.float64), targets.astype(np.float64)
            if self.seasonal is not None:
                into, ahead = self.factors(index)
                inputs, targets = inputs / into, targets / (ahead[:, 0] if self.horizon == 1 else ahead)
            loc, scale = self.loc[series][:, None], self.scale[series][:, None]  # [B, 1]
            inputs = ((inputs - loc) / scale).astype(np.float32)
            if self.horizon == 1:
                loc, scale = loc[:, 0], scale[:, 0]
            targets = ((targets - loc) / scale).astype(np.float32)
        return inputs, targets

    def window_inputs(self, index: np.ndarray) -> tuple[WindowInputs, np.ndarray]:
        """The windows at `index` as a forecast reads them (in the data's units, with their series' statistics
        where those are per series, their seasonal factors where the values are adjusted, their covariates),
        and their targets [B] (horizon 1) or [B, H], in the data's units."""
        inputs, targets = self.gather(index, normalised=False)
        loc = scale = None
        if self.loc is not None and self.scale is not None:
            series = self.series_of(index)
            loc, scale = self.loc[series], self.scale[series]
        seasonal = self.factors(index) if self.seasonal is not None else None
        return WindowInputs(inputs, loc, scale, seasonal, self.gather_covariates(index)), targets

    def factors(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Seasonal factors of each window's inputs [B, T] and of its `horizon` steps [B, H] (ones without
        adjustment): the model's forecast times these is in the data's seasonal shape again."""
        series, position = self.locate(index)
        steps = position[:, None] + np.concatenate([self._lags, self._ahead])  # [B, T + H]
        if self.seasonal is None or self.starts is None:
            ones = np.ones(steps.shape)
            return ones[:, : self.seq_length], ones[:, self.seq_length :]
        since = np.maximum(steps - self.starts[series][:, None], 0)  # padded inputs take the first value's
        season = self.seasonal.shape[1]
        f = self.seasonal[series[:, None], since % season]  # [B, T + H]
        return f[:, : self.seq_length], f[:, self.seq_length :]

    def series_of(self, index: np.ndarray) -> np.ndarray:
        return self.locate(index)[0]

    def chunks(self, size: int = CHUNK) -> Iterator[np.ndarray]:
        """Every window index in order, `size` at a time."""
        for start in range(0, len(self), size):
            yield np.arange(start, min(start + size, len(self)), dtype=np.int64)

    def spans(self) -> np.ndarray:
        """(S, 2) [start, stop) in `values` of what each series' windows read: inputs and targets."""
        start = self.first - self.seq_length
        if self.starts is not None:
            start = np.maximum(start, self.starts)
        stop = self.first + self.counts + self.horizon - 1
        return np.stack([start, np.where(self.counts > 0, stop, start)], axis=1)

    def covered_values(self) -> np.ndarray:
        """The values the split's windows read, series after series (float64): what summaries describe."""
        return np.concatenate([self.values[a:b].astype(np.float64) for a, b in self.spans() if b > a] or [np.zeros(0)])

    def naive_mae_parts(self) -> tuple[float, int]:
        """Sum and count of |one-step change| within each series' span: pooled MASE scale."""
        total, count = 0.0, 0
        for a, b in self.spans():
            if b - a >= 2:
                total += float(np.sum(np.abs(np.diff(self.values[a:b].astype(np.float64)))))
                count += int(b - a - 1)
        return total, count


def pack(inputs: np.ndarray, covariates: np.ndarray | None) -> np.ndarray:
    """The model's input: the windows [B, T] alone, or with their covariates [B, T + H, C] as
    [B, T + H, 1 + C], the values in channel 0 (zero over the H steps ahead, which are not known)."""
    if covariates is None:
        return inputs
    batch, length = inputs.shape
    packed = np.zeros((batch, covariates.shape[1], 1 + covariates.shape[2]), np.float32)
    packed[:, :length, 0] = inputs
    packed[:, :, 1:] = covariates
    return packed


def params_info(params: dict[str, Any], covariates: bool = False) -> DatasetInfo:
    """A DatasetInfo that carries the source parameters (as JSON) with the series rows (and feat_dynamic_real)."""
    return DatasetInfo(
        description=json.dumps(params, sort_keys=True, default=str),
        features=series_features(covariates),
        config_name=str(params.get("source", "default")),
    )


def dataset_params(dataset: Dataset) -> dict[str, Any]:
    """The generation or source parameters stored with a split (empty if it carries none)."""
    try:
        return dict(json.loads(dataset.info.description or "{}"))
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}
