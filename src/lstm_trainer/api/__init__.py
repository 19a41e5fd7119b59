"""The Python API for notebooks: `Forecaster(...).fit(df)`, `.predict(h)`, `.save(path)`, `Forecaster.load(path)`.

forecaster.py  the class: the same RunConfig and trainer as `train.py`, the same inference path as predict
options.py     keyword options -> RunConfig, checked as the command line checks its flags
frames.py      long-format DataFrames in (id, time, value) and forecasts out
"""

from lstm_trainer.api.forecaster import Forecaster

__all__ = ["Forecaster"]
