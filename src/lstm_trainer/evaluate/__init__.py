"""Scores and the baselines a forecast must beat. What is exported here is pure NumPy: no torch, no files.

scores.py     MSE, MAE and MASE of a forecast, overall and per step ahead
probabilistic.py  forecasts with uncertainty: quantiles, CRPS, interval coverage (NumPy + SciPy)
baselines.py  persistence, seasonal naive (the linear autoregression is model/linear_ar.py's, exported here)
verdict.py    how a model compares with the baselines, in words
accuracy.py   the competitions' measures per series: sMAPE, MASE (seasonal scale), OWA against Naive2

scoring.py (the saved model and the baselines on every split) and backtest.py (a Forecaster over
rolling origins) build on them; neither writes a file or draws.
"""

from lstm_trainer.evaluate.baselines import persistence, seasonal_naive
from lstm_trainer.evaluate.probabilistic import COVERAGES, IntervalScores, crps, interval_scores
from lstm_trainer.evaluate.scores import Scores, naive_scale, score, score_by_step
from lstm_trainer.evaluate.verdict import Verdict, relative_verdict
from lstm_trainer.model.forecast import Forecast
from lstm_trainer.model.linear_ar import LinearAR

__all__ = [
    "COVERAGES",
    "Forecast",
    "IntervalScores",
    "LinearAR",
    "Scores",
    "Verdict",
    "crps",
    "interval_scores",
    "naive_scale",
    "persistence",
    "relative_verdict",
    "score",
    "score_by_step",
    "seasonal_naive",
]
