"""The run's session: what setup builds and what the fit (loop.py) and the finish (trainer.py) share.

A module of its own so that the loop reads it without importing the trainer, which calls the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from lstm_trainer.config import Plan, RunConfig
from lstm_trainer.data import PreparedData
from lstm_trainer.data.loaders import GlobalBatchSampler
from lstm_trainer.evaluate import scoring
from lstm_trainer.model.heads import OutputHead
from lstm_trainer.outputs import report
from lstm_trainer.train import perf


@dataclass
class Session:
    """What setup made and fit and finish share: the prepared engine, loaders and data of one run."""

    accelerator: Accelerator
    config: RunConfig
    plan: Plan
    data: PreparedData
    model: Any  # the DeepSpeed engine around LSTMForecaster
    head: OutputHead  # the loss and the point forecast
    optimizer: Any
    scheduler: Any
    train_dl: Any
    val_dl: Any
    sampler: GlobalBatchSampler  # ours, inside the loader Accelerate prepared
    reporter: report.Reporter
    timings: perf.RunTimings
    out: Path
    selection: scoring.SelectionScore | None = None  # --select_on smape or mase, with a validation split

    # Losses are measured on normalised values. With one series every MSE (and NLL, pinball
    # loss) is reported in the data's units; with several, each series is scaled by its own
    # statistics and the losses stay in those units (a series in thousands would otherwise
    # drown one in units), while scoring reports every split over all series' windows in the
    # data's units.
    def mse_units(self, mse: float) -> float:
        return mse if self.data.per_series else self.data.normalization.mse_in_data_units(mse)

    def loss_units(self, loss: float) -> float:
        return loss if self.data.per_series else self.head.loss_in_data_units(loss, self.data.normalization.std)
