"""The data a run learns from, as a windowed `datasets.DatasetDict`.

    windows.py    the row format (seq_length inputs -> next value), windowing, split statistics
    synthetic.py  the reference's noisy multi-frequency sine wave
    series.py     one column of a table -> a clean series in time order; the chronological split
    sources.py    --dataset -> windows: synthetic, a CSV/Parquet/JSON Lines file, a folder, a Hub id
    prepare.py    train-only normalisation, and the windows as the model sees them
    card.py       the dataset card written by `push`
    cli.py        `python -m lstm_trainer.data build|push`
"""

from lstm_trainer.data.prepare import PreparedData, prepare_data
from lstm_trainer.data.sources import load_windows
from lstm_trainer.data.synthetic import build_synthetic, synthetic_series
from lstm_trainer.data.windows import (
    ALL_SPLITS,
    INPUTS,
    SPLITS,
    TARGET,
    dataset_params,
    features,
    make_windows,
    split_values,
    windows_to_dataset,
)

__all__ = [
    "ALL_SPLITS",
    "INPUTS",
    "SPLITS",
    "TARGET",
    "PreparedData",
    "build_synthetic",
    "dataset_params",
    "features",
    "load_windows",
    "make_windows",
    "prepare_data",
    "split_values",
    "synthetic_series",
    "windows_to_dataset",
]
