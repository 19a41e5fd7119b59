"""The one inference path: a saved model folder forecasting many windows at once, in the data's units.

The trainer's scoring and pictures, the predict command and the backtest all call
`Predictor.forecast`, so every figure is what a user of output_dir/model gets. Steps up to
the model's horizon H come from its direct head in one call; steps beyond are recursive,
H at a time: the point forecasts are appended to every window and the model called again,
still on the whole batch (one call per H steps, never one per window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lstm_trainer.data.covariates import Covariates
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.data.windows import WindowInputs, pack
from lstm_trainer.errors import UserError
from lstm_trainer.model.forecast import Forecast
from lstm_trainer.model.forecaster import LSTMForecaster

# Quantiles written for a distribution model when none are asked for: the median and an 80% interval.
DEFAULT_LEVELS = (0.1, 0.5, 0.9)
# An ensemble folder's manifest (forecast/ensemble.py reads it): members' folders and how they combine.
ENSEMBLE_MANIFEST = "ensemble.json"


@dataclass
class EndForecast:
    """Forecasts from the end of each series, and how each series was handled."""

    forecast: Forecast  # [S, steps]
    padded: list[str]  # ids of series shorter than the window: left-padded with their first value
    unseen: list[str]  # ids the model never saw: normalised with their own history's statistics


@dataclass
class Predictor:
    model: LSTMForecaster  # fp32, eval mode
    norm: Normalization  # the run's z-score: the model works on normalised values
    device: torch.device

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> Predictor:
        model = LSTMForecaster.from_pretrained(folder).to(device).eval()
        return cls(model, Normalization.load(folder) or Normalization.identity(), torch.device(device))

    @property
    def horizon(self) -> int:
        return self.model.horizon

    @property
    def seq_length(self) -> int:
        """The window it reads (its config.json); a series shorter than this is left-padded."""
        return self.model.seq_length

    @property
    def output(self) -> tuple[str, tuple[float, ...] | None]:
        """What its forecast holds (Forecast.kind) and a quantile head's levels: what choose_levels reads."""
        return self.model.output_head.kind, self.model.output_head.levels

    @torch.no_grad()
    def forecast(self, inputs: WindowInputs | np.ndarray, steps: int | None = None, batch_size: int = 4096) -> Forecast:
        """Forecasts of the `steps` values (default: the model's horizon) after each window of `inputs`: a
        WindowInputs (each window with its series' statistics, seasonal factors and covariates, as the model
        was trained to need them), or bare windows [N, T] in the data's units, which the saved z-score maps.
        A model trained with covariates forecasts up to its horizon H (the covariates beyond it are not known).
        """
        given = inputs if isinstance(inputs, WindowInputs) else WindowInputs(np.asarray(inputs))
        seasonal, covariates = given.seasonal, given.covariates
        steps = steps or self.horizon
        if any(self.model.covariates) and (covariates is None or steps > self.horizon):
            raise UserError(
                f"this model was trained with covariates, so it forecasts {self.horizon} step(s) from the covariates "
                f"given with them; ask for at most {self.horizon}, or train with --horizon {steps}"
            )
        head = self.model.output_head
        x = np.asarray(given.values, dtype=np.float64)
        if seasonal is not None:
            x = x / seasonal[0]
        loc = np.full(len(x), self.norm.mean) if given.loc is None else np.asarray(given.loc, dtype=np.float64)
        scale = np.full(len(x), self.norm.std) if given.scale is None else np.asarray(given.scale, dtype=np.float64)
        windows = (x - loc[:, None]) / scale[:, None]  # [N, T], model units
        length = windows.shape[1]
        params, points = [], []
        for _ in range(math.ceil(steps / self.horizon)):
            out = self._call(windows[:, -length:], batch_size, covariates)  # [N, H, P], model units, float64
            point = out[..., head.center]  # [N, H]
            params.append(out)
            points.append(point)
            windows = np.concatenate([windows, point], axis=1)  # recursion: forecasts become inputs
        model_params = np.concatenate(params, axis=1)[:, :steps]  # [N, steps, P]
        point = np.concatenate(points, axis=1)[:, :steps] * scale[:, None] + loc[:, None]  # [N, steps]
        in_data_units = _to_data_units(model_params, head.kind, loc, scale)
        if seasonal is not None:
            ahead = seasonal[1][:, :steps]  # [N, steps]
            point = point * ahead
            in_data_units = _to_data_units(in_data_units, head.kind, np.zeros(len(x)), np.ones(len(x)), ahead)
        return Forecast(head.kind, point, in_data_units, head.levels)

    def forecast_from_end(
        self,
        histories: list[np.ndarray],
        item_ids: list[str],
        steps: int | None = None,
        covariates: Covariates | None = None,
    ) -> EndForecast:
        """The `steps` values after the end of every series in one batched call, as training saw them:
        each with its own statistics (for an id the model never saw, its history's), its seasonal
        factors where the model was trained with --deseasonalize (each history starting at the
        series' first value), and left-padded with its first value where shorter than the window.

        `covariates` (a model trained with them): each series' covariates over its history and the
        model's horizon after it, series s at rows offsets(s) of `dynamic` (len(history) + H rows,
        past ones zero over the horizon), in the data's units; scaled here as in training."""
        assert len(histories) == len(item_ids)
        steps = steps or self.horizon
        length = self.model.seq_length
        lags = np.arange(-length, 0)
        windows = np.empty((len(histories), length))  # [S, T]
        into, ahead = np.ones((len(histories), length)), np.ones((len(histories), steps))
        stats = []
        for s, (history, item) in enumerate(zip(histories, item_ids, strict=True)):
            n = len(history)
            positions = np.maximum(n + lags, 0)  # left padding: positions before the first value read it
            windows[s] = np.asarray(history, np.float64)[positions]
            indices = self.norm.seasonal_indices(item, history)
            if indices is not None:
                into[s] = indices[positions % len(indices)]
                ahead[s] = indices[(n + np.arange(steps)) % len(indices)]
            stats.append(self.norm.for_history(item, history, indices))
        loc = np.array([n.mean for n in stats])
        scale = np.array([n.std for n in stats])
        seasonal = (into, ahead) if self.norm.seasonal is not None else None
        beside = self._end_covariates(histories, covariates) if covariates is not None else None
        forecast = self.forecast(WindowInputs(windows, loc, scale, seasonal, beside), steps)
        padded = [item for item, h in zip(item_ids, histories, strict=True) if len(h) < length]
        known = self.norm.series or {}
        unseen = [item for item in item_ids if self.norm.series is not None and item not in known]
        return EndForecast(forecast, padded, unseen)

    def _end_covariates(self, histories: list[np.ndarray], covariates: Covariates) -> np.ndarray:
        """[S, T + H, C] in the model's units: each series' last T steps (left-padded) and the H after them."""
        scaling = self.norm.covariates
        assert scaling is not None, "a covariate model saves their scaling"
        dynamic, statics = scaling.apply(covariates)
        length, ahead = self.model.seq_length, self.horizon
        out = np.empty((len(histories), length + ahead, dynamic.shape[1] + statics.shape[1]), np.float32)
        start = 0
        for s, history in enumerate(histories):
            n = len(history)
            positions = np.concatenate([np.maximum(n + np.arange(-length, 0), 0), n + np.arange(ahead)])
            rows = dynamic[start : start + n + ahead][positions]  # [T + H, Cd]
            rows[length:, : len(scaling.names.past)] = 0.0
            out[s] = np.concatenate([rows, np.broadcast_to(statics[s], (length + ahead, statics.shape[1]))], axis=1)
            start += n + ahead
        assert start == len(dynamic), "covariates: len(history) + horizon rows per series"
        return out

    def _call(self, windows: np.ndarray, batch_size: int, covariates: np.ndarray | None = None) -> np.ndarray:
        outs = []
        for i in range(0, len(windows), batch_size):
            part = windows[i : i + batch_size].astype(np.float32)  # [B, T]
            beside = covariates[i : i + batch_size] if covariates is not None else None  # [B, T + H, C]
            x = torch.from_numpy(pack(part, beside)).to(self.device, torch.float32)  # [B, T] or [B, T + H, 1 + C]
            out = self.model(x).double().cpu()  # [B], [B, H] or [B, H, P]
            outs.append(out.reshape(len(x), self.horizon, -1))
        return torch.cat(outs).numpy()


def choose_levels(output: tuple[str, tuple[float, ...] | None], asked: list[float] | None) -> tuple[float, ...]:
    """The quantile columns to write for a predictor's `output` (kind, levels): none for a point model."""
    kind, own = output
    if asked and len(set(asked)) < len(asked):
        twice = next(q for q in asked if asked.count(q) > 1)
        raise UserError(f"--quantiles names {twice:g} twice; give each level once")
    if kind == "point":
        if asked:
            raise UserError(
                "--quantiles needs a probabilistic model (trained with --distribution or --quantiles); this one gives a point forecast"
            )
        return ()
    levels = tuple(sorted(asked)) if asked else (own or DEFAULT_LEVELS)
    if not all(0 < q < 1 for q in levels):
        raise UserError(f"--quantiles must be levels strictly between 0 and 1, got {list(levels)}")
    if kind == "quantile":
        missing = [q for q in levels if not any(abs(q - o) < 1e-9 for o in own or ())]
        if missing:
            raise UserError(f"--quantiles {missing} were not trained; this quantile model gives {list(own or ())}")
    return levels


def _to_data_units(
    params: np.ndarray, kind: str, loc: np.ndarray, scale: np.ndarray, by_step: np.ndarray | None = None
) -> np.ndarray:
    """Parameters in the model's units -> the data's, window by window: locations and quantiles
    un-z-scored, log scales shifted by the log of the window's series scale. `by_step` [N, steps]
    multiplies each step too (the seasonal factors)."""
    out = params.copy()
    m, s = loc[:, None, None], scale[:, None, None]  # [N, 1, 1]
    if by_step is not None:
        s = s * by_step[..., None]  # [N, steps, 1]
    if kind in ("point", "quantile"):
        return out * s + m
    out[..., 0:1] = out[..., 0:1] * s + m
    out[..., 1:2] += np.log(s)
    return out
