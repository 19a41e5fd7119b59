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

Writes backtest.json (overall and per-step MSE, MAE, MASE; CRPS and coverage_50/80/95 for a
probabilistic model; the same for the baselines), backtest.md (tables) and backtest.png.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstm_trainer.errors import UserError

if TYPE_CHECKING:
    import numpy as np

    from lstm_trainer.data import PreparedData
    from lstm_trainer.evaluate import LinearAR
    from lstm_trainer.evaluate.scoring import ForecastScores
    from lstm_trainer.model.inference import Predictor

RESULTS, TABLE, PICTURE = "backtest.json", "backtest.md", "backtest.png"


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


def rolling_origins(values: np.ndarray, seq_length: int, horizon: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [N, T] and targets [N, H] of every origin of `values` (its first T values are context only)."""
    import numpy as np

    if len(values) < seq_length + horizon:
        raise UserError(
            f"the span to backtest has {len(values)} values, fewer than the model's window ({seq_length}) + "
            f"--horizon {horizon}; lower --horizon or give a longer test span (--test_fraction)"
        )
    views = np.lib.stride_tricks.sliding_window_view(np.asarray(values, dtype=np.float64), seq_length + horizon)[
        ::stride
    ]
    return views[:, :seq_length], views[:, seq_length:]  # views: no copy of the N x (T + H) values


def run_backtest(
    predictor: Predictor,
    values: np.ndarray,
    train_values: np.ndarray,
    horizon: int,
    stride: int = 1,
    season: int | None = None,
    split: str = "test",
    batch_size: int = 4096,
) -> Backtest:
    """Forecast every origin of one series' `values` (its first seq_length values are context) and score
    them; the linear AR and MASE's scale are fitted on `train_values`, the training part of the series."""
    from lstm_trainer.evaluate import LinearAR, naive_scale

    seq_length = predictor.model.seq_length
    assert seq_length is not None
    inputs, targets = rolling_origins(values, seq_length, horizon, stride)
    linear = None
    if len(train_values) >= seq_length + horizon:
        linear = LinearAR.fit(*rolling_origins(train_values, seq_length, horizon, 1))
    return score_origins(
        predictor, inputs, targets, naive_scale(train_values), linear, season, split, stride, batch_size
    )


def backtest_split(
    predictor: Predictor,
    data: PreparedData,
    split: str,
    stride: int = 1,
    season: int | None = None,
    batch_size: int = 4096,
) -> Backtest:
    """Every `stride`-th window of `split` as an origin, across every series of `data` (whose windows
    were cut for the backtest's horizon), each forecast with its own series' statistics."""
    import numpy as np

    from lstm_trainer.evaluate.scoring import fit_on_training, window_statistics

    windows = data.windows[split]
    index = np.arange(0, len(windows), stride, dtype=np.int64)
    inputs, targets = windows.gather(index, normalised=False)  # data units
    loc, spread = window_statistics(windows, index)
    linear, scale = fit_on_training(data.windows["train"])  # as the run's own scores
    return score_origins(
        predictor,
        inputs,
        targets.reshape(len(index), -1),
        scale,
        linear,
        season,
        split,
        stride,
        batch_size,
        loc,
        spread,
    )


def score_origins(
    predictor: Predictor,
    inputs: np.ndarray,
    targets: np.ndarray,
    scale: float,
    linear: LinearAR | None,
    season: int | None,
    split: str,
    stride: int,
    batch_size: int,
    loc: np.ndarray | None = None,
    spread: np.ndarray | None = None,
) -> Backtest:
    """The model's forecasts of every origin's `inputs` [N, T] in one batched pass, and the baselines', scored
    against `targets` [N, H]; `loc`, `spread` [N] are each origin's series statistics where they are per series."""
    from lstm_trainer.evaluate import persistence, seasonal_naive
    from lstm_trainer.evaluate.scoring import score_forecast

    seq_length, horizon = inputs.shape[1], targets.shape[1]
    started = time.perf_counter()
    forecast = predictor.forecast(inputs, steps=horizon, batch_size=batch_size, loc=loc, scale=spread)
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


def to_markdown(record: dict[str, Any]) -> str:
    """Two tables: every forecaster overall, then the model (and persistence) per step ahead."""
    probabilistic = "crps" in record
    extra = ["crps", "coverage_50", "coverage_80", "coverage_95"] if probabilistic else []
    head = ["mse", "mae", "mase", *extra]
    rows = [f"| forecast | {' | '.join(head)} |", "|---|" + "---:|" * len(head)]
    named = {"model": record, **record["baselines"]}
    for name, figures in named.items():
        rows.append(f"| {name} | " + " | ".join(cell(figures.get(key)) for key in head) + " |")
    steps = [
        "| step | model MSE | model MAE | model MASE |"
        + (" CRPS | coverage 80% |" if probabilistic else "")
        + " persistence MSE |"
    ]
    steps.append("|---:|" + "---:|" * (5 + (2 if probabilistic else 0) - 1))
    by_step, naive = record["by_step"], record["baselines"]["persistence"]["by_step"]
    for h in range(record["horizon"]):
        cells = [by_step["mse"][h], by_step["mae"][h], by_step["mase"][h]]
        if probabilistic:
            cells += [by_step["crps"][h], by_step["coverage_80"][h]]
        steps.append(f"| {h + 1} | " + " | ".join(cell(v) for v in [*cells, naive["mse"][h]]) + " |")
    recursive = (
        f" Steps beyond the model's horizon ({record['model_horizon']}) are recursive: its forecasts fed back as inputs."
        if record["recursive"]
        else ""
    )
    return "\n".join(
        [
            f"# Backtest: {record['origins']} origins of the {record['split']} split, {record['horizon']} steps ahead, stride {record['stride']}",
            "",
            f"MASE: MAE over the training split's one-step naive MAE.{recursive}",
            "",
            *rows,
            "",
            "## Per step ahead",
            "",
            *steps,
            "",
        ]
    )


def cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, (int, float)) else "n/a"


def save_picture(record: dict[str, Any], path: Path) -> Path:
    """MSE per step ahead of the model and each baseline (and the 80% coverage, for a distribution)."""
    import numpy as np

    from lstm_trainer.outputs.plots import DPI, SIZE, _figure

    figure = _figure()
    probabilistic = "crps" in record
    ax = figure.add_subplot(1, 2 if probabilistic else 1, 1)
    steps = np.arange(1, record["horizon"] + 1)
    for name, figures in {"model": record, **record["baselines"]}.items():
        ax.plot(steps, figures["by_step"]["mse"], marker="o", markersize=3, label=name)
    ax.set(xlabel="step ahead", ylabel="MSE", title=f"Backtest over {record['origins']} origins")
    if record["recursive"]:
        ax.axvline(record["model_horizon"] + 0.5, color="grey", linestyle=":", label="recursive beyond")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    if probabilistic:
        cover = figure.add_subplot(1, 2, 2)
        for level in (50, 80, 95):
            line = cover.plot(
                steps, record["by_step"][f"coverage_{level}"], marker="o", markersize=3, label=f"{level}% interval"
            )
            cover.axhline(level / 100, color=line[0].get_color(), linestyle="--", linewidth=0.8)
        cover.set(xlabel="step ahead", ylabel="share of targets inside", title="Interval coverage (dashed: nominal)")
        cover.legend(fontsize="small")
        cover.grid(True, alpha=0.3)
    figure.set_size_inches(*SIZE)
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    return path
