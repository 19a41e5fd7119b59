"""The data a run learns from: series rows, split in time, windows gathered per batch.

rows.py       series rows in the Hub's time-series layout (item_id, start, target), end to end in one array
synthetic.py  the reference's noisy multi-frequency sine wave, as one row
series.py     one column of a table -> a clean series in time order
tables.py     a table -> series: one column, a wide table (a column per series), a long one (--id_column)
sources.py    --dataset -> series: synthetic, a CSV/Parquet/JSON Lines file, a folder, a Hub id
splits.py     each series cut in time by fraction of its length; too-short series dropped by id
windows.py    windows as (series, offset) index arithmetic, gathered a batch at a time
prepare.py    per-series normalisation from the train part, and what a run trains on
normalization.py  per-series statistics, and a model's inputs scaled with them
loaders.py    the batch samplers: a whole global batch per optimizer step, whatever the process count
card.py       the dataset card written by `python -m lstm_trainer.cli.data push`
"""

from lstm_trainer.data.prepare import PreparedData, prepare_data
from lstm_trainer.data.rows import SeriesSet
from lstm_trainer.data.sources import LoadedSeries, load_series
from lstm_trainer.data.synthetic import build_synthetic, synthetic_series
from lstm_trainer.data.windows import ALL_SPLITS, INPUTS, SPLITS, TARGET, Windows, dataset_params

__all__ = [
    "ALL_SPLITS",
    "INPUTS",
    "SPLITS",
    "TARGET",
    "LoadedSeries",
    "PreparedData",
    "SeriesSet",
    "Windows",
    "build_synthetic",
    "dataset_params",
    "load_series",
    "prepare_data",
    "synthetic_series",
]
