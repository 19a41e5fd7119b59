"""The run's pictures, saved as PNG in output_dir: losses, learning rate, predictions, residuals;
and the backtest's backtest.png (outputs/backtest.py).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global
backend switch), and matplotlib is imported only when they are drawn, so `--help` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lstm_trainer.outputs.results import Results

# Every picture is SIZE inches at DPI: 800 x 450 pixels, wide enough for a W&B panel.
SIZE = (8.0, 4.5)
DPI = 100
PIXELS = (int(SIZE[0] * DPI), int(SIZE[1] * DPI))  # (width, height)
NAMES = ("loss_curves", "learning_rate", "predictions", "residuals")
# Validation windows shown in predicted-vs-actual: a few periods of the fastest component.
STRETCH = 300


def save_all(
    out: Path,
    results: Results,
    learning_rates: Sequence[tuple[int, float]],
    predictions: np.ndarray,
    targets: np.ndarray,
    interval: tuple[np.ndarray, np.ndarray] | None = None,
    data: str | None = None,
) -> dict[str, Path]:
    """Draw every picture into `out` as `<name>.png`; returns {name: path} in NAMES order.

    `results` is the run's (its histories and validation baseline); `learning_rates` holds (optimizer step, rate) for
    each step trained; `predictions` and `targets` are one per validation window, in order
    (series after series), and `interval` (a probabilistic model's) the low and high ends of
    its central 80% interval; `data` ("3 series, 1,050 points") goes under each picture's title.
    """
    drawers = {
        "loss_curves": lambda ax: _loss_curves(ax, results),
        "learning_rate": lambda ax: _learning_rate(ax, learning_rates),
        "predictions": lambda ax: _predictions(ax, predictions, targets, interval),
        "residuals": lambda ax: _residuals(ax, predictions - targets, results.noise_floor),
    }
    paths = {}
    for name in NAMES:
        figure = _figure()
        drawers[name](figure.add_subplot())
        if data:
            figure.suptitle(f"data: {data}", fontsize="small", y=0.995)
        figure.tight_layout()
        paths[name] = Path(out) / f"{name}.png"
        figure.savefig(paths[name], dpi=DPI)  # no bbox_inches="tight": the size stays PIXELS
    return paths


def _figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _loss_curves(ax: Axes, results: Results) -> None:
    from matplotlib.ticker import MaxNLocator

    train, val = results.train_loss_history, results.val_mse_history
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, train, marker="o", markersize=3, label="train loss (mean over the epoch)")
    # Epoch 0 is the model before training, so the curve starts where training did.
    initial = [] if results.initial_val_mse is None else [results.initial_val_mse]
    ax.plot(
        np.arange(1 - len(initial), len(val) + 1), [*initial, *val], marker="o", markersize=3, label="validation MSE"
    )
    best = int(np.argmin(val)) + 1
    ax.scatter(
        [best], [val[best - 1]], s=80, facecolors="none", edgecolors="black", zorder=3, label=f"best (epoch {best})"
    )
    if results.scores.validation is not None:
        persistence = results.scores.validation.persistence.overall.mse
        ax.axhline(persistence, color="grey", linestyle="--", label="persistence (next = last value)")
    if results.noise_floor:
        ax.axhline(results.noise_floor, color="grey", linestyle=":", label="noise floor")
    # A negative log-likelihood (a distribution head's loss) can be below zero: no log axis then.
    logarithmic = min([*train, *val]) > 0
    ax.set_yscale("log" if logarithmic else "linear")
    ax.set(xlabel="epoch", ylabel="MSE (log scale)" if logarithmic else "loss / MSE", title="Loss curves")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    ax.grid(True, which="both", alpha=0.3)


def _learning_rate(ax: Axes, learning_rates: Sequence[tuple[int, float]]) -> None:
    if learning_rates:
        steps, rates = zip(*learning_rates, strict=True)
        ax.plot(steps, rates)
    ax.set(xlabel="optimizer step", ylabel="learning rate", title="Learning-rate schedule")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax.grid(True, alpha=0.3)


def _predictions(
    ax: Axes, predictions: np.ndarray, targets: np.ndarray, interval: tuple[np.ndarray, np.ndarray] | None = None
) -> None:
    n = min(STRETCH, len(targets))
    steps = np.arange(n)
    ax.plot(steps, targets[:n], label="actual", linewidth=1.5)
    ax.plot(steps, predictions[:n], label="predicted", linewidth=1.2, linestyle="--")
    if interval is not None:
        ax.fill_between(
            steps, interval[0][:n], interval[1][:n], alpha=0.25, color="tab:orange", linewidth=0, label="80% interval"
        )
    mse = float(np.mean((predictions[:n].astype(np.float64) - targets[:n]) ** 2))
    ax.set(
        xlabel="validation window (time step)",
        ylabel="value",
        title=f"Best model: predicted vs actual, first {n} validation windows (MSE {mse:.5f})",
    )
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)


def _residuals(ax: Axes, residuals: np.ndarray, noise_floor: float | None) -> None:
    residuals = residuals.astype(np.float64)
    ax.hist(residuals, bins=50, density=True, alpha=0.7, label=f"residuals (std {residuals.std():.4f})")
    if noise_floor:
        # What a perfect forecaster would leave: the noise itself.
        sigma = math.sqrt(noise_floor)
        x = np.linspace(residuals.min(), residuals.max(), 200)
        ax.plot(x, np.exp(-0.5 * (x / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)), label=f"noise N(0, {sigma:g}²)")
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set(xlabel="predicted - actual", ylabel="density", title="Best model's residuals on the validation split")
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)


def backtest_picture(record: dict[str, Any], path: Path) -> Path:
    """MSE per step ahead of the model and each baseline (and the 80% coverage, for a distribution)."""
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
