"""What a model says about N windows x H steps ahead, in the data's units: `Forecast`.

Its point forecast and, for a probabilistic head, the distribution's parameters or the
quantiles (the parameter layout is model/heads.py's, after the run's z-score has been undone).
NumPy and SciPy only: evaluate/ scores it (CRPS, coverage) without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

KINDS = ("point", "normal", "studentt", "quantile")


@dataclass(frozen=True)
class Forecast:
    """N windows x H steps: `point` [N, H]; `params` [N, H, P] (see model/heads.py); all in data units."""

    kind: str
    point: np.ndarray
    params: np.ndarray
    levels: tuple[float, ...] | None = None  # the quantile head's levels

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert self.point.ndim == 2 and self.params.shape[:2] == self.point.shape, (self.point.shape, self.params.shape)

    @property
    def is_probabilistic(self) -> bool:
        return self.kind != "point"

    @staticmethod
    def concatenate(parts: list[Forecast]) -> Forecast:
        """The forecasts of consecutive chunks of windows, as one."""
        first = parts[0]
        point, params = np.concatenate([p.point for p in parts]), np.concatenate([p.params for p in parts])
        return Forecast(first.kind, point, params, first.levels)

    def rows(self, index: np.ndarray | slice) -> Forecast:
        return Forecast(self.kind, self.point[index], self.params[index], self.levels)

    def step(self, h: int) -> Forecast:
        """The forecast of step h + 1 ahead only: [N, 1]."""
        return Forecast(self.kind, self.point[:, h : h + 1], self.params[:, h : h + 1], self.levels)

    def quantiles(self, levels: tuple[float, ...]) -> np.ndarray:
        """The forecast's quantiles at `levels`: [N, H, L]. A quantile head answers only its own levels."""
        p = self.params
        if self.kind == "normal":
            z = special.ndtri(np.asarray(levels, dtype=np.float64))  # [L]
            return p[..., :1] + np.exp(p[..., 1:2]) * z
        if self.kind == "studentt":
            t = special.stdtrit(p[..., 2:3], np.asarray(levels, dtype=np.float64))  # [N, H, L]
            return p[..., :1] + np.exp(p[..., 1:2]) * t
        if self.kind == "quantile":
            assert self.levels is not None
            found = [_level_index(self.levels, q) for q in levels]
            missing = [q for q, i in zip(levels, found, strict=True) if i is None]
            if missing:
                raise ValueError(f"levels {missing} are not among the quantile head's {list(self.levels)}")
            return p[..., [i for i in found if i is not None]]
        raise ValueError("a point forecast has no quantiles")

    def interval(self, coverage: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The central `coverage`% interval [N, H] each side, or None where the forecast has none."""
        if not self.is_probabilistic:
            return None
        low, high = (100 - coverage) / 200, (100 + coverage) / 200
        if self.kind == "quantile" and (
            _level_index(self.levels, low) is None or _level_index(self.levels, high) is None
        ):
            return None
        bounds = self.quantiles((low, high))
        return bounds[..., 0], bounds[..., 1]


def _level_index(levels: tuple[float, ...] | None, q: float) -> int | None:
    for i, level in enumerate(levels or ()):
        if abs(level - q) < 1e-9:
            return i
    return None
