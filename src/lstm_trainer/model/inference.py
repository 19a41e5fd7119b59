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

from lstm_trainer.data.normalization import Normalization
from lstm_trainer.model.forecast import Forecast
from lstm_trainer.model.forecaster import LSTMForecaster


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

    @torch.no_grad()
    def forecast(
        self,
        inputs: np.ndarray,
        steps: int | None = None,
        batch_size: int = 4096,
        loc: np.ndarray | None = None,
        scale: np.ndarray | None = None,
    ) -> Forecast:
        """Forecasts of the `steps` values (default: the model's horizon) after each window `inputs` [N, T].

        `loc` and `scale` [N] are each window's own series statistics where they are per series
        (the numbers normalization.json holds by item_id); without them the saved transform
        applies to every window.
        """
        steps = steps or self.horizon
        head = self.model.output_head
        x = np.asarray(inputs, dtype=np.float64)
        loc = np.full(len(x), self.norm.mean) if loc is None else np.asarray(loc, dtype=np.float64)
        scale = np.full(len(x), self.norm.std) if scale is None else np.asarray(scale, dtype=np.float64)
        windows = (x - loc[:, None]) / scale[:, None]  # [N, T], model units
        length = windows.shape[1]
        params, points = [], []
        for _ in range(math.ceil(steps / self.horizon)):
            out = self._call(windows[:, -length:], batch_size)  # [N, H, P], model units, float64
            point = out[..., head.center]  # [N, H]
            params.append(out)
            points.append(point)
            windows = np.concatenate([windows, point], axis=1)  # recursion: forecasts become inputs
        model_params = np.concatenate(params, axis=1)[:, :steps]  # [N, steps, P]
        point = np.concatenate(points, axis=1)[:, :steps] * scale[:, None] + loc[:, None]  # [N, steps]
        return Forecast(head.kind, point, _to_data_units(model_params, head.kind, loc, scale), head.levels)

    def _call(self, windows: np.ndarray, batch_size: int) -> np.ndarray:
        outs = []
        for i in range(0, len(windows), batch_size):
            x = torch.from_numpy(windows[i : i + batch_size]).to(self.device, torch.float32)  # [B, T]
            out = self.model(x).double().cpu()  # [B], [B, H] or [B, H, P]
            outs.append(out.reshape(len(x), self.horizon, -1))
        return torch.cat(outs).numpy()


def _to_data_units(params: np.ndarray, kind: str, loc: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Parameters in the model's units -> the data's, window by window: locations and quantiles
    un-z-scored, log scales shifted by the log of the window's series scale."""
    out = params.copy()
    m, s = loc[:, None, None], scale[:, None, None]  # [N, 1, 1]
    if kind in ("point", "quantile"):
        return out * s + m
    out[..., 0:1] = out[..., 0:1] * s + m
    out[..., 1:2] += np.log(s)
    return out
