"""An ensemble folder: several model folders (members) and a manifest of how they combine.

    model/
      ensemble.json        Manifest: members, how they combine (the median), the fallback if one was chosen
      members/0/ ...       each a model folder train.py exports (config.json, model.safetensors, normalization.json)
      README.md            the card

`load_predictor(folder)` reads a model folder or an ensemble folder, so predict, backtest and the
API read both through one call. The ensemble forecasts the median of its members' point forecasts
(the N-BEATS paper's combination, robust to one member that trained badly) and, as its quantiles,
the spread of the members' points: empirical quantiles over members, which show how much the
members disagree, not the noise in the data. Where the forecast command found a baseline better than
the members on validation, the manifest names it and the ensemble forecasts with it instead.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstm_trainer.data.covariates import Covariates
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.data.windows import WindowInputs
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate.accuracy import naive2
from lstm_trainer.evaluate.baselines import seasonal_naive
from lstm_trainer.model.forecast import Forecast
from lstm_trainer.model.inference import DEFAULT_LEVELS, ENSEMBLE_MANIFEST, EndForecast, Predictor

MANIFEST = ENSEMBLE_MANIFEST
FORMAT = "lstm-trainer-ensemble"
# Baselines the manifest may name as the forecaster (the protocol chooses; here they forecast).
FALLBACKS = ("naive", "seasonal_naive", "naive2")


@dataclass(frozen=True)
class Manifest:
    """What ensemble.json holds."""

    members: list[str]  # folders relative to the ensemble folder
    horizon: int
    season: int  # 1: no season
    combine: str = "median"
    fallback: str | None = None  # a baseline in FALLBACKS that beat the members on validation, or None
    # How the members were chosen and what they scored: the forecast command's record, read by the card.
    selection: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = 1

    def save(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            raw = json.loads(path.read_text())
            manifest = cls(**raw)
        except (OSError, json.JSONDecodeError, TypeError) as err:
            raise UserError(f"{path} is not an ensemble manifest this version reads ({err}); export it again") from None
        if manifest.format != FORMAT or manifest.combine != "median" or not manifest.members:
            raise UserError(f"{path} is not an ensemble manifest this version reads; export it again")
        if manifest.fallback is not None and manifest.fallback not in FALLBACKS:
            raise UserError(f"{path} names an unknown fallback {manifest.fallback!r}; export it again")
        return manifest


def is_ensemble(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def load_predictor(folder: str | Path, device: torch.device | str = "cpu") -> Predictor | EnsemblePredictor:
    """A model folder's Predictor, or an ensemble folder's EnsemblePredictor."""
    if is_ensemble(folder):
        return EnsemblePredictor.load(folder, device)
    return Predictor.load(folder, device)


@dataclass
class EnsemblePredictor:
    """The members' forecasts combined; answers what predict, backtest and the API ask of a Predictor."""

    members: list[Predictor]
    manifest: Manifest

    @classmethod
    def load(cls, folder: str | Path, device: torch.device | str = "cpu") -> EnsemblePredictor:
        folder = Path(folder)
        manifest = Manifest.load(folder)
        members = [Predictor.load(folder / name, device) for name in manifest.members]
        if any(m.horizon != manifest.horizon for m in members) or any(any(m.model.covariates) for m in members):
            raise UserError(f"{folder / MANIFEST}: its members do not share one horizon without covariates")
        return cls(members, manifest)

    @property
    def horizon(self) -> int:
        return self.manifest.horizon

    @property
    def seq_length(self) -> int:
        """The longest member window: a series at least this long is padded for none of them."""
        return max(m.seq_length for m in self.members)

    @property
    def norm(self) -> Normalization:
        # Members train on the same series with the same settings, so their statistics agree.
        return self.members[0].norm

    @property
    def output(self) -> tuple[str, tuple[float, ...] | None]:
        """The forecast's kind and levels: quantiles from the members' spread, a point for a baseline."""
        return ("point", None) if self.manifest.fallback else ("quantile", DEFAULT_LEVELS)

    def forecast(self, inputs: WindowInputs | np.ndarray, steps: int | None = None, batch_size: int = 4096) -> Forecast:
        """Predictor.forecast over windows of T inputs, T at least `seq_length`: each member reads its own last values."""
        given = inputs if isinstance(inputs, WindowInputs) else WindowInputs(np.asarray(inputs))
        steps = steps or self.horizon
        if self.manifest.fallback:
            return _point(_baseline(self.manifest.fallback, list(given.values), steps, self.manifest.season))
        points = []
        for member in self.members:
            part = member.forecast(given.last(member.seq_length), steps, batch_size)
            points.append(part.point)
        return combine(points)

    def forecast_from_end(
        self,
        histories: list[np.ndarray],
        item_ids: list[str],
        steps: int | None = None,
        covariates: Covariates | None = None,
    ) -> EndForecast:
        steps = steps or self.horizon
        if self.manifest.fallback:
            padded = [i for i, h in zip(item_ids, histories, strict=True) if len(h) < max(self.manifest.season, 1)]
            point = _baseline(self.manifest.fallback, histories, steps, self.manifest.season)
            return EndForecast(_point(point), padded, [])
        ends = [m.forecast_from_end(histories, item_ids, steps, covariates) for m in self.members]
        shorter = {item for end in ends for item in end.padded}  # for some member's window
        padded = [item for item in item_ids if item in shorter]
        return EndForecast(combine([end.forecast.point for end in ends]), padded, ends[0].unseen)


def combine(points: list[np.ndarray]) -> Forecast:
    """The median of the members' points [N, H] each; their spread as the quantiles DEFAULT_LEVELS."""
    stacked = np.stack(points)  # [M, N, H]
    median = np.median(stacked, axis=0)
    bands = np.moveaxis(np.quantile(stacked, DEFAULT_LEVELS, axis=0), 0, -1)  # [N, H, L]
    return Forecast("quantile", median, bands, DEFAULT_LEVELS)


def _point(point: np.ndarray) -> Forecast:
    return Forecast("point", point, point[..., None])


def _baseline(name: str, histories: list[np.ndarray], steps: int, season: int) -> np.ndarray:
    """[S, steps]: a baseline's forecast from the end of each history, evaluate/'s own functions."""
    if name == "naive2":
        return np.stack([naive2(np.asarray(x, np.float64), steps, season if season > 1 else None) for x in histories])
    lag = season if name == "seasonal_naive" else 1
    # The last season of each series; one shorter than a season is left-padded with its first value.
    last = np.stack([np.asarray(x, np.float64)[np.maximum(len(x) + np.arange(-lag, 0), 0)] for x in histories])
    return seasonal_naive(last, lag, steps).reshape(len(histories), steps)
