"""Scores and the baselines a forecast must beat: pure NumPy, no torch, no files.

    scores.py     MSE, MAE and MASE of a forecast
    baselines.py  persistence, seasonal naive, least-squares linear autoregression
    verdict.py    how a model compares with the baselines, in words
"""

from lstm_trainer.evaluate.baselines import LinearAR, persistence, seasonal_naive
from lstm_trainer.evaluate.scores import Scores, naive_scale, score
from lstm_trainer.evaluate.verdict import Verdict, relative_verdict

__all__ = ["LinearAR", "Scores", "Verdict", "naive_scale", "persistence", "relative_verdict", "score", "seasonal_naive"]
