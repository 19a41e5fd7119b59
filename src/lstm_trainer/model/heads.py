"""What the forecaster's last hidden state becomes, and the loss it trains on.

One `OutputHead` per `ModelConfig.output_kind`; the model (forecaster.py) calls it, and so do the
training loop (the loss, the point forecast for validation MSE) and the inference path. The
head's raw output is [B, H, P] (H forecast steps, P parameters a step) in the window's units;
`to_model_units` turns it into the parameters in the model's units (the data after the run's
z-score, see data/normalization.py), per kind:

    point      [B, H]     the value (the reference's output; [B] when H == 1, exactly as before)
    normal     [B, H, 2]  loc, log scale
    studentt   [B, H, 3]  loc, log scale, degrees of freedom (> 2, so the variance exists)
    quantile   [B, H, K]  one value per level of ModelConfig.quantiles, in level order, never crossing

Scales are carried as logs: a scale of 1e-4 is 0 in fp16 while its log is -9.2, and the
loss (float32) works from the log, so a half-precision forward gives no inf or NaN. The
parameters of a distribution or quantile head are formed in float32 even under fp16/bf16
(a few values per window): in fp16, 2 + softplus(-12) is exactly 2, a Student-t without variance.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Distribution, Normal, StudentT

from lstm_trainer.config import ModelConfig

# Smallest log scale in the window's units (each window has std ~1 there): a scale below a
# thousandth of the window's spread is a model that claims to know the future exactly, and
# its NLL (which falls without bound as the scale shrinks on a lucky fit) would swamp the rest.
LOG_SCALE_FLOOR = math.log(1e-3)
# Student-t degrees of freedom are MIN_DF + softplus(raw + DF_OFFSET): the variance exists and
# stays within 21 scale^2 (df / (df - 2) at df = 2.1; float32 rounds 2 + 1e-8 to 2, so the margin
# is not left to softplus), and an untrained head (raw = 0) starts at df ~ 10, near the normal.
MIN_DF = 2.1
DF_OFFSET = math.log(math.expm1(8.0))


def floored_log_scale(raw: torch.Tensor) -> torch.Tensor:
    """A smooth floor: ~raw above LOG_SCALE_FLOOR, never below it, with a gradient everywhere."""
    return LOG_SCALE_FLOOR + F.softplus(raw - LOG_SCALE_FLOOR)


class OutputHead:
    """The parametrisation, point forecast and loss of one kind of output (no weights of its own)."""

    def __init__(self, config: ModelConfig, horizon: int) -> None:
        self.kind = config.output_kind
        self.horizon = horizon
        self.levels: tuple[float, ...] | None = tuple(config.quantiles) if config.quantiles is not None else None
        self.params_per_step = config.params_per_step
        self.point_loss = config.loss
        # The output the linear skip and the delta head add to: the location, or the level nearest the median.
        levels = self.levels or (0.5,)
        self.center = min(range(len(levels)), key=lambda i: abs(levels[i] - 0.5))

    def to_model_units(
        self, location: torch.Tensor, raw: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        """The parameters in the model's units from `location` [B, H] (the centre in the window's units,
        skip and delta added), the raw head output [B, H, P] and the window's `loc`, `scale` [B]."""
        loc, scale = loc[:, None], scale[:, None]  # [B, 1]: the same window statistics for every step
        if self.kind != "point":
            location, raw, loc, scale = location.float(), raw.float(), loc.float(), scale.float()
        centre = location * scale + loc  # [B, H]
        if self.kind == "point":
            return centre if self.horizon > 1 else centre.squeeze(-1)
        if self.kind == "quantile":
            # Distances to the neighbouring level are positive (softplus), so the levels never cross.
            gaps = F.softplus(raw) * scale[..., None]  # [B, H, K]
            above = centre[..., None] + torch.cumsum(gaps[..., self.center + 1 :], dim=-1)
            below = centre[..., None] - torch.cumsum(gaps[..., : self.center].flip(-1), dim=-1).flip(-1)
            return torch.cat([below, centre[..., None], above], dim=-1)  # [B, H, K]
        log_scale = floored_log_scale(raw[..., 1]) + torch.log(scale)  # [B, H]
        parts = [centre, log_scale]
        if self.kind == "studentt":
            parts.append(MIN_DF + F.softplus(raw[..., 2] + DF_OFFSET))
        return torch.stack(parts, dim=-1)  # [B, H, P]

    def point(self, output: torch.Tensor) -> torch.Tensor:
        """The point forecast: the value, the mean (normal), the median (studentt, the quantile head's
        centre level). Same leading shape as the targets: [B] for one step, [B, H] for several."""
        if self.kind == "point":
            return output
        value = output[..., self.center]  # [B, H]
        return value if self.horizon > 1 else value.squeeze(-1)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The training loss, in float32 whatever the forward's precision: MSE, NLL or pinball."""
        if self.kind == "point":
            if self.point_loss == "mae":
                return F.l1_loss(output.float(), target.float())
            return F.mse_loss(output.float(), target.float())
        params = output.float().reshape(len(output), self.horizon, self.params_per_step)  # [B, H, P]
        y = target.float().reshape(len(target), self.horizon)  # [B, H]
        if self.kind == "quantile":
            assert self.levels is not None
            levels = params.new_tensor(self.levels)  # [K]
            error = y[..., None] - params  # [B, H, K]
            return torch.maximum(levels * error, (levels - 1) * error).mean()
        return -self.distribution(params).log_prob(y).mean()

    def distribution(self, params: torch.Tensor) -> Distribution:
        """The torch distribution of float32 parameters [B, H, P] in the model's units."""
        scale = params[..., 1].exp()
        if self.kind == "normal":
            return Normal(params[..., 0], scale)
        return StudentT(params[..., 2], params[..., 0], scale)

    def loss_in_data_units(self, loss: float, std: float) -> float:
        """A loss measured after the run's z-score (value / std), as it would read on the data itself."""
        if self.kind == "point":
            return loss * std if self.point_loss == "mae" else loss * std**2
        if self.kind == "quantile":
            return loss * std
        return loss + math.log(std)  # each density is 1 / std as high: the NLL rises by log(std)
