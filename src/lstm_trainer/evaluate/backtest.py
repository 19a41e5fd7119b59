"""Backtest a trained model over rolling origins of the held-out span, all origins in one pass.

    python -m lstm_trainer.cli.backtest --model outputs/model --horizon 24 --output_dir backtest
    python -m lstm_trainer.cli.backtest --model you/sine-lstm --dataset prices.csv --data_column close \\
        --horizon 12 --stride 6 --season 12 --output_dir backtest

Every origin of the test split (validation where the data has no test split, as the synthetic
sine), in every series of the dataset, is a forecast of the `--horizon` values after it from
the `seq_length` values before it, each series with its own statistics. The origins' windows
are one [N, T] matrix gathered from the series (data/windows.py) and the model is called on it
in batches: one pass of the data for a horizon within the model's own, one
per model horizon beyond it (recursive: forecasts fed back, still batched). A per-origin loop
(one model call per origin, as Darts' `historical_forecasts` does) costs N calls instead.

The scores are a `Backtest`; `to_json` is backtest.json's content (overall and per-step MSE,
MAE, MASE; CRPS and coverage_50/80/95 for a probabilistic model; the same for the baselines).
The files, the Markdown table and the picture are outputs/backtest.py's. The model is any
`Forecaster` (model/inference.py's Predictor is one): evaluate/ calls it, never loads it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lstm_trainer.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from lstm_trainer.data import PreparedData
    from lstm_trainer.data.windows import WindowInputs
    from lstm_trainer.evaluate.scoring import ForecastScores
    from lstm_trainer.model.forecast import Forecast
    from lstm_trainer.model.linear_ar import LinearAR


class Forecaster(Protocol):
    """What the backtest asks of a model: model/inference.py's Predictor answers it."""

    @property
    def horizon(self) -> int: ...  # steps the model forecasts at once; beyond them it recurses

    def forecast(
        self, inputs: WindowInputs | np.ndarray, steps: int | None = None, batch_size: int = 4096
    ) -> Forecast: ...


@dataclass
class Backtest:
    """What `run_backtest` measured: the model and each baseline, overall and per step ahead."""

    split: str
    origins: int
    horizon: int
    stride: int
    model_horizon: int  # steps beyond it were forecast recursively
    seconds: float  # the model's forecasts of every origin, all included
    scores: dict[str, ForecastScores]  # model, persistence, seasonal_naive (with --season), linear


def backtest_split(
    predictor: Forecaster,
    data: PreparedData,
    split: str,
    stride: int = 1,
    season: int | None = None,
    batch_size: int = 4096,
) -> Backtest:
    """Every `stride`-th window of `split` as an origin, across every series of `data` (whose windows
    were cut for the backtest's horizon), each forecast with its own series' statistics."""
    import numpy as np

    from lstm_trainer.evaluate.scoring import fit_on_training

    windows = data.windows[split]
    index = np.arange(0, len(windows), stride, dtype=np.int64)
    # Data units, with what the model reads beside them, as in the run's scoring.
    origins, targets = windows.window_inputs(index)
    linear, scale = fit_on_training(data.windows["train"])  # as the run's own scores
    return score_origins(
        predictor, origins, targets.reshape(len(index), -1), scale, linear, season, split, stride, batch_size
    )


def score_origins(
    predictor: Forecaster,
    origins: WindowInputs,
    targets: np.ndarray,
    scale: float,
    linear: LinearAR | None,
    season: int | None,
    split: str,
    stride: int,
    batch_size: int = 4096,
) -> Backtest:
    """The model's forecasts of every origin's window (`origins`: N windows of T inputs, with what the model
    reads beside them) in one batched pass, and the baselines', scored against `targets` [N, H] with MASE's
    `scale`; `linear` and `season` name the baselines beside persistence."""
    from lstm_trainer.evaluate import persistence, seasonal_naive
    from lstm_trainer.evaluate.scoring import score_forecast

    inputs = origins.values  # [N, T], data units
    seq_length, horizon = inputs.shape[1], targets.shape[1]
    started = time.perf_counter()
    forecast = predictor.forecast(origins, steps=horizon, batch_size=batch_size)
    seconds = time.perf_counter() - started
    scores = {"model": score_forecast(forecast.point, targets, scale, forecast)}
    scores["persistence"] = score_forecast(persistence(inputs, horizon).reshape(targets.shape), targets, scale)
    if season is not None:
        if season > seq_length:
            raise UserError(
                f"--season {season} is longer than the model's window ({seq_length}); the seasonal naive needs a season back"
            )
        scores["seasonal_naive"] = score_forecast(
            seasonal_naive(inputs, season, horizon).reshape(targets.shape), targets, scale
        )
    if linear is not None:
        scores["linear"] = score_forecast(linear.predict(inputs).reshape(targets.shape), targets, scale)
    return Backtest(split, len(inputs), horizon, stride, predictor.horizon, seconds, scores)


def to_json(result: Backtest) -> dict[str, Any]:
    """backtest.json: the model's figures at the top level (mse, mae, mase, crps, coverage_80, ...),
    `by_step` lists, and the same for each baseline under `baselines`."""

    def figures(scores: ForecastScores) -> dict[str, Any]:
        flat: dict[str, Any] = dict(asdict(scores.overall))
        by_step = scores.by_step or [scores.overall]
        steps: dict[str, Any] = {name: [getattr(s, name) for s in by_step] for name in flat}
        if scores.intervals is not None:
            flat["crps"] = scores.intervals.crps
            flat.update({f"coverage_{level}": value for level, value in scores.intervals.coverage.items()})
            per_step = scores.intervals_by_step or [scores.intervals]
            steps["crps"] = [s.crps for s in per_step]
            steps.update(
                {f"coverage_{level}": [s.coverage[level] for s in per_step] for level in scores.intervals.coverage}
            )
        return {**flat, "by_step": steps}

    return {
        "split": result.split,
        "origins": result.origins,
        "horizon": result.horizon,
        "stride": result.stride,
        "model_horizon": result.model_horizon,
        "recursive": result.horizon > result.model_horizon,
        "forecast_seconds": result.seconds,
        **figures(result.scores["model"]),
        "baselines": {name: figures(scores) for name, scores in result.scores.items() if name != "model"},
    }
