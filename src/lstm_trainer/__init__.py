"""lstm-trainer: forecast a time series with an LSTM or GRU on Accelerate + DeepSpeed ZeRO-2.

Kept import-free so `train.py --help` does not pay for torch; import submodules directly.
"""

__version__ = "0.1.0"
