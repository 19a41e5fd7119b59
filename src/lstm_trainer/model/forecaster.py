"""The forecaster: a stacked LSTM (or GRU) with a linear head on the last time step.

Options (ModelConfig) that make it robust on real series, all inside `forward` so a saved
model forecasts the same wherever it is loaded: each window scaled by its own statistics
(`window_norm`), a head that predicts the change from the last value (`head`), and a
linear autoregression learned beside the RNN (`linear_skip`). The head forecasts `horizon`
steps at once (a direct multi-output head), as a value, a distribution or quantiles (heads.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstm_trainer.config import FUTURE_UNITS, ForecasterConfig
from lstm_trainer.errors import UserError
from lstm_trainer.model.heads import LOG_SCALE_FLOOR, OutputHead
from lstm_trainer.model.linear_ar import LinearAR

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# The sha256 of the weights' bytes, kept in the safetensors header's metadata: safetensors checks
# the header but not the numbers, so a damaged file would otherwise load and forecast nonsense.
CHECKSUM = "lstm_trainer_sha256"
# Variance floor for a window's own scale, in the model's units (z-scored data has variance
# ~1): a flat window is then shifted but not blown up.
WINDOW_VAR_EPS = 1e-4


class LSTMForecaster(nn.Module):
    """Forecaster of the `horizon` values after a window.

    Inputs: `x` of shape [B, T] (univariate) or [B, T, input_size]; with covariates (past, future, static
    channels: `covariates`), [B, T + H, 1 + past + future + static]: the values in channel 0 over the T
    inputs, the covariates over the inputs and the H steps ahead (data/windows.py `pack`). Past and static
    channels go through the RNN with the values. Future ones go through a small network shared by the H
    steps (`future_effect`): a step's covariates and their difference from the window's mean in, an
    addition to that step's head output out, so every head (value, distribution, quantiles; any H) sees
    them, and the RNN is the one a model without future covariates has.
    Outputs (heads.py): the next value [B] (the reference), [B, H] for a horizon H > 1, or a
    distribution's parameters / quantiles [B, H, P].
    """

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        self.config = config
        arch, horizon = config.model, config.horizon
        self.output_head = OutputHead(arch, horizon)
        rnn_class = nn.LSTM if arch.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            input_size=arch.input_size + self.covariates[0] + self.covariates[2],
            hidden_size=arch.hidden_size,
            num_layers=arch.num_layers,
            batch_first=True,
            # PyTorch warns about (and ignores) dropout with a single layer.
            dropout=arch.dropout if arch.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(arch.hidden_size, horizon * arch.params_per_step)
        # One function of a step's future covariates, the same at every step, beside the RNN rather than in it.
        # Measured on fpp2's elecdemand (bench/covariates.py): flattened into the head (H x C inputs), a shuffled
        # covariate raised the test MSE 15%; shared by the steps but also read by the RNN over the window, 5%.
        future = self.covariates[1]
        self.future_effect = (
            nn.Sequential(nn.Linear(2 * future, FUTURE_UNITS), nn.ReLU(), nn.Linear(FUTURE_UNITS, arch.params_per_step))
            if future
            else None
        )
        # The skip forecasts the centre of each step: the value, the location, the median level.
        self.skip = nn.Linear(self.skip_length, horizon) if self.skip_length else None
        self.reset_parameters()

    @property
    def seq_length(self) -> int:
        return self.config.seq_length

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def covariates(self) -> tuple[int, int, int]:
        """(past, future, static) input channels."""
        return self.config.covariates

    @property
    def skip_length(self) -> int:
        """Inputs the linear skip reads: linear_skip, or the whole window where that is None."""
        skip = self.config.model.linear_skip
        return self.seq_length if skip is None else skip

    def reset_parameters(self) -> None:
        """The reference initialisation, which keeps early gradients in a healthy range."""
        for name, param in self.rnn.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "bias" in name:
                nn.init.zeros_(param)
                if self.config.model.cell == "lstm":
                    # Gates are stacked (input, forget, cell, output): a forget bias of 1
                    # makes the cell remember by default, so gradients flow from the start.
                    n = param.size(0)
                    nn.init.ones_(param[n // 4 : n // 2])
        # The residual parts start at zero, so training starts from "next = last" and
        # learns only what improves on it.
        residual = [self.skip] if self.skip is not None else []
        if self.future_effect is not None:  # starts at "no effect": the forecast of the series alone
            last = self.future_effect[-1]
            assert isinstance(last, nn.Linear)
            residual.append(last)
        if self.config.model.head == "delta":
            residual.append(self.head)
        for layer in residual:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def window_units(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The windows as the RNN sees them, and the (loc, scale) that map its output back: [B, T, 1], [B], [B]."""
        if x.dim() == 2:
            x = x.unsqueeze(-1)  # [B, T] -> [B, T, 1]
        if self.config.model.window_norm == "window":
            loc = x.mean(dim=(1, 2))  # [B]
            scale = torch.sqrt(x.var(dim=(1, 2), unbiased=False) + WINDOW_VAR_EPS)  # [B]
        else:
            loc, scale = x.new_zeros(len(x)), x.new_ones(len(x))
        return (x - loc[:, None, None]) / scale[:, None, None], loc, scale

    @torch.no_grad()
    def fit_linear_skip(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Start the linear skip at the least-squares autoregression on these windows (in the RNN's units).

        Trained by Adam from zero, its weights move about one learning rate a step: thousands of
        steps to reach the linear AR, more than a short series offers. Fitted in closed form,
        training starts at the linear baseline and the RNN learns what it misses.
        """
        if self.skip is None:
            return
        z, loc, scale = self.window_units(inputs.double())
        goal = (targets.double().reshape(len(z), -1) - loc[:, None]) / scale[:, None]  # [N, H]
        if self.config.model.head == "delta":
            goal = goal - z[:, -1, :1]
        # NumPy's SVD-based solver: the windows of a smooth series are nearly collinear, and
        # torch's default CPU driver (gelsy) gave fits that differed from call to call there.
        lags = z[:, -self.skip_length :, 0].numpy()
        fit = LinearAR.fit(lags, goal.numpy())  # one AR per step
        self.skip.weight.copy_(torch.from_numpy(fit.weights.reshape(self.skip_length, -1).T))  # [H, L]
        self.skip.bias.copy_(torch.as_tensor(fit.intercept).reshape(-1))  # [H]
        if self.config.model.head == "delta" and self.output_head.kind != "point":
            # The spread starts where the linear AR's errors are, not at the window's own spread
            # (log scale 0): Adam moves that bias ~one learning rate a step, thousands of steps to
            # come down to a noise ten times smaller, so short runs gave intervals far too wide.
            residuals = goal.numpy() - fit.predict(lags).reshape(goal.shape)  # [N, H], the window's units
            self._start_spread(residuals.std(axis=0))

    @torch.no_grad()
    def _start_spread(self, spread: np.ndarray) -> None:
        """Set the head's bias so that an untrained head (zero weights) gives this spread [H] a step."""
        head = self.output_head
        bias = self.head.bias.view(self.horizon, -1)  # [H, P]
        sd = torch.from_numpy(np.maximum(spread, 1e-3)).to(bias)  # [H]
        if head.kind in ("normal", "studentt"):
            # floored_log_scale(raw) = floor + softplus(raw - floor): its inverse at log(sd).
            bias[:, 1] = LOG_SCALE_FLOOR + torch.log(torch.expm1(torch.log(sd) - LOG_SCALE_FLOOR))
        elif head.kind == "quantile":
            # Gaps between neighbouring levels of a normal with that spread (softplus of the raw gap).
            assert head.levels is not None
            z = (
                torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(head.levels, dtype=torch.float64)).to(bias)
            )  # [K]
            gaps = torch.zeros_like(bias)  # [H, K]: entries below the centre hold the gap to the level above
            gaps[:, : head.center] = (z[1 : head.center + 1] - z[: head.center]) * sd[:, None]
            gaps[:, head.center + 1 :] = (z[head.center + 1 :] - z[head.center : -1]) * sd[:, None]
            raw = torch.log(torch.expm1(gaps.clamp_min(1e-6)))
            bias[:, : head.center] = raw[:, : head.center]
            bias[:, head.center + 1 :] = raw[:, head.center + 1 :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not any(self.covariates):
            z, loc, scale = self.window_units(x)  # [B, T, 1], [B], [B]
            out, _ = self.rnn(z)  # [B, T, hidden]
            raw = self.head(out[:, -1]).view(len(z), self.horizon, -1)  # [B, H, P], in the window's units
        else:
            assert x.dim() == 3, x.shape
            length, past, future = self.seq_length, self.covariates[0], self.covariates[1]
            z, loc, scale = self.window_units(x[:, :length, 0])  # the values alone are scaled by the window
            beside = torch.cat([x[:, :length, 1 : 1 + past], x[:, :length, 1 + past + future :]], dim=2)  # past, static
            out, _ = self.rnn(torch.cat([z, beside], dim=2))  # [B, T, hidden]
            raw = self.head(out[:, -1]).view(len(z), self.horizon, -1)  # [B, H, P]
            if self.future_effect is not None:
                ahead = x[:, length:, 1 + past : 1 + past + future]  # [B, H, F]
                seen = x[:, :length, 1 + past : 1 + past + future].mean(dim=1, keepdim=True)  # [B, 1, F]
                raw = raw + self.future_effect(torch.cat([ahead, ahead - seen], dim=2))  # [B, H, P]
        y = raw[..., self.output_head.center]  # [B, H]: the centre the skip and the delta add to
        if self.skip is not None:
            y = y + self.skip(z[:, -self.skip_length :, 0])
        if self.config.model.head == "delta":
            y = y + z[:, -1, :1]
        return self.output_head.to_model_units(y, raw, loc, scale)  # see heads.py for the shape

    def save_pretrained(self, path: str | Path) -> None:
        """Write fp32 weights (safetensors, no pickle) and config.json to `path`.

        config.json holds the whole ForecasterConfig: the architecture, the window, the horizon, the covariates.
        """
        from safetensors.torch import save, save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        # The data section does not depend on the metadata (offsets count from its start).
        save_file(state, path / WEIGHTS_FILE, metadata={CHECKSUM: _data_sha256(save(state))})
        (path / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> LSTMForecaster:
        """Load a folder written by `save_pretrained`, on CPU, without DeepSpeed or pickle.

        A missing, truncated or mismatched file is a `UserError` that names it.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load

        path = Path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for file in (config_file, weights_file):
            if not file.is_file():
                raise UserError(
                    f"model file {file} is missing; point at a folder written by train.py (output_dir/model)"
                )
        try:
            record = json.loads(config_file.read_text())
            if isinstance(record, dict) and "horizon" in record and "seq_length" not in record:
                raise UserError(
                    f"model file {config_file} does not say the window length it was trained on (it predates "
                    "seq_length in config.json); retrain with this version"
                )
            config = ForecasterConfig.from_dict(record)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError, ValueError, KeyError) as err:
            raise UserError(f"model file {config_file} is not a valid model config ({err})") from None
        model = cls(config)
        try:
            blob = weights_file.read_bytes()
            weights = load(blob)
            # Models saved before the checksum have none to check.
            expected = json.loads(blob[8 : 8 + _header_length(blob)]).get("__metadata__", {}).get(CHECKSUM)
            if expected is not None and expected != _data_sha256(blob):
                raise SafetensorError("its weights do not match the checksum saved with them")
            model.load_state_dict(weights)
        except (SafetensorError, OSError) as err:
            raise UserError(f"model file {weights_file} is truncated or corrupted ({err}); export it again") from None
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise UserError(f"model file {weights_file} does not match {config_file} ({first})") from None
        return model.eval()


def _header_length(blob: bytes) -> int:
    """A safetensors file: 8 bytes (little-endian length N), an N-byte JSON header, then the data."""
    return int.from_bytes(blob[:8], "little")


def _data_sha256(blob: bytes) -> str:
    import hashlib

    return hashlib.sha256(blob[8 + _header_length(blob) :]).hexdigest()
