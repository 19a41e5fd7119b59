"""The forecaster: a stacked LSTM (or GRU) with a linear head on the last time step."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from lstm_trainer.config import ModelConfig
from lstm_trainer.errors import UserError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class LSTMForecaster(nn.Module):
    """Next-step forecaster.

    Inputs: `x` of shape [B, T] (univariate) or [B, T, input_size].
    Outputs: the predicted next value, shape [B].
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.seq_length: int | None = None  # the window it was trained on, where known
        rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            # PyTorch warns about (and ignores) dropout with a single layer.
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden_size, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference initialisation, which keeps early gradients in a healthy range."""
        for name, param in self.rnn.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(param)
            elif "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "bias" in name:
                nn.init.zeros_(param)
                if self.config.cell == "lstm":
                    # Gates are stacked (input, forget, cell, output): a forget bias of 1
                    # makes the cell remember by default, so gradients flow from the start.
                    n = param.size(0)
                    nn.init.ones_(param[n // 4 : n // 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(-1)  # [B, T] -> [B, T, 1]
        out, _ = self.rnn(x)  # [B, T, hidden]
        return self.head(out[:, -1]).squeeze(-1)  # [B]

    def save_pretrained(self, path: str | Path) -> None:
        """Write fp32 weights (safetensors, no pickle) and config.json to `path`.

        config.json holds the shape and, where known, the window length it was trained on.
        """
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        save_file(state, path / WEIGHTS_FILE)
        record = {**asdict(self.config), **({"seq_length": self.seq_length} if self.seq_length else {})}
        (path / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path) -> LSTMForecaster:
        """Load a folder written by `save_pretrained`, on CPU, without DeepSpeed or pickle.

        A missing, truncated or mismatched file is a `UserError` that names it.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for file in (config_file, weights_file):
            if not file.is_file():
                raise UserError(f"model file {file} is missing; point at a folder written by train.py (output_dir/model)")
        try:
            record = json.loads(config_file.read_text())
            seq_length = record.pop("seq_length", None)
            config = ModelConfig(**record)
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as err:
            raise UserError(f"model file {config_file} is not a valid model config ({err})") from None
        model = cls(config)
        model.seq_length = seq_length
        try:
            model.load_state_dict(load_file(weights_file))
        except (SafetensorError, OSError) as err:
            raise UserError(f"model file {weights_file} is truncated or corrupted ({err})") from None
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise UserError(f"model file {weights_file} does not match {config_file} ({first})") from None
        return model.eval()
