"""The Python API: configure, `fit(df)`, `predict(h)`, `save`, `load`, in one process (a notebook), no launcher.

    model = Forecaster(horizon=7, output_dir="runs/demo")   # the forecast protocol: an ensemble, chosen for you
    model.fit(df)                     # long format: unique_id, ds, y (NeuralForecast's names by default)
    forecast = model.predict()        # DataFrame: unique_id, ds, forecast, q0.1, q0.5, q0.9

    model = Forecaster(seq_length=24, horizon=7, num_train_epochs=20, output_dir="runs/one")   # one model, as told

With nothing but the horizon (and the season, select_on, output_dir, or the protocol's own seeds,
lookbacks, fallback, jobs), `fit` runs the forecast protocol (forecast/protocol.py), exactly what
`lstm-trainer forecast` runs. Naming any training option (seq_length, hidden_size, ...) trains that
one model instead; `ensemble=True` or `False` says which outright.

In one-model mode `fit` builds the RunConfig `train.py` would build from the same flags and calls the same
trainer (`train.trainer.run`), so output_dir holds what a command-line run writes: run_config.json,
all_results.json, checkpoints and the exported model/ folder. The DataFrame is written to
output_dir/fit_data.parquet first and named as --dataset, so the run is the command line's run on
that file (`python train.py --dataset output_dir/fit_data.parquet --id_column ...` repeats it).
Several processes stay `accelerate launch train.py`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstm_trainer.api.frames import Columns, future_times, original_ids, write_table
from lstm_trainer.api.options import OPTIONS, in_api_terms, run_config
from lstm_trainer.config import MAX_FORECAST_STEPS, DataConfig, RunConfig
from lstm_trainer.errors import UserError
from lstm_trainer.files import NoSpace, check_replaceable, replace_dir

# Options that leave the choice of model to the forecast protocol, and the protocol's own.
PROTOCOL_OPTIONS = frozenset({"horizon", "season", "select_on", "output_dir"})
ENSEMBLE_OPTIONS = frozenset({"seeds", "lookbacks", "fallback", "jobs"})
FIT_DATA = "fit_data.parquet"
# Beside the model's own files in a folder `save` writes: the DataFrame's column names, so `load` needs none.
COLUMNS_FILE = "api_columns.json"


class Forecaster:
    """An LSTM/GRU forecaster trained and used on pandas DataFrames in long format.

    Keyword options are the command line's flags by their names (`python train.py --help`):
    `seq_length`, `horizon`, `hidden_size`, `quantiles`, `num_train_epochs`, `output_dir`, ...
    `id_col`, `time_col` and `target_col` name the DataFrame's columns (None: one series / row order);
    they take the place of --id_column, --time_column and --data_column.
    """

    def __init__(
        self,
        *,
        target_col: str = "y",
        id_col: str | None = "unique_id",
        time_col: str | None = "ds",
        ensemble: bool | None = None,
        **options: Any,
    ) -> None:
        protocol: dict[str, Any] = {k: options.pop(k) for k in ENSEMBLE_OPTIONS & set(options)}
        if isinstance(protocol.get("lookbacks"), list):
            protocol["lookbacks"] = tuple(protocol["lookbacks"])
        self.ensemble = not (set(options) - PROTOCOL_OPTIONS) if ensemble is None else ensemble
        if protocol and not self.ensemble:
            raise UserError(f"{sorted(protocol)[0]} is an ensemble option; leave it out, or pass ensemble=True")
        if self.ensemble and set(options) - PROTOCOL_OPTIONS:
            chosen = sorted(set(options) - PROTOCOL_OPTIONS)[0]
            raise UserError(
                f"{chosen} is chosen by the forecast protocol (ensemble=True); leave it out, or pass ensemble=False "
                "to train one model as told"
            )
        self.config: RunConfig = run_config(options, target_col, id_col, time_col)  # checked now, before any data
        self._protocol = protocol
        self.columns = Columns(target_col, id_col, time_col, _covariate_columns(self.config.data))
        if self.ensemble:
            self._request(Path(self.config.train.output_dir) / FIT_DATA)  # its checks now, before any data
        self.results: Any = None  # the run's Results (all_results.json) after fit
        self.model_dir: Path | None = None
        self._history: pd.DataFrame | None = None  # what predict forecasts from when no df is given
        self._predictor: Any = None

    def fit(self, df: pd.DataFrame) -> Forecaster:
        """Train on `df` as `train.py` trains (splits, normalisation, early stopping, scoring, export); returns self."""
        from lstm_trainer.outputs.output_dir import MODEL
        from lstm_trainer.train.preflight import preflight
        from lstm_trainer.train.trainer import run

        df = self.columns.check(df)
        out = Path(self.config.train.output_dir)
        if self.ensemble:
            return self._fit_ensemble(df, out)
        config = replace(self.config, data=replace(self.config.data, dataset=str(out / FIT_DATA)))
        try:
            lock = preflight(config)  # output_dir checked and locked before the data file is written into it
            try:
                if lock is not None:
                    lock.stage(out / FIT_DATA)  # a run that fails its checks takes it away again
                write_table(df, self.columns, out / FIT_DATA)
            except BaseException:
                if lock is not None:
                    lock.release()
                raise
            self.results = run(config, lock)  # releases the lock
        except NoSpace:
            raise
        except UserError as err:
            raise _in_api_terms(err, out) from None
        self.config, self.model_dir, self._history = config, out / MODEL, df
        self._predictor = None
        return self

    def _request(self, dataset: Path) -> Any:
        """The forecast protocol's request for this Forecaster's options."""
        from lstm_trainer.forecast.protocol import Request

        data, train = self.config.data, self.config.train
        typed = train.typed
        asked = Request(
            str(dataset),
            data.horizon,
            train.output_dir,
            self.columns.target,
            self.columns.id,
            self.columns.time,
            data.season if "season" in typed else None,
            train.select_on if "select_on" in typed else "mase",
        )
        return replace(asked, **self._protocol)  # seeds, lookbacks, fallback, jobs: checked again by Request

    def _fit_ensemble(self, df: pd.DataFrame, out: Path) -> Forecaster:
        from lstm_trainer.forecast import protocol
        from lstm_trainer.outputs.output_dir import missing_folders

        protocol.check_folder(out, "output_dir")  # before the DataFrame is written into it
        made, staged = missing_folders(out), out / FIT_DATA
        earlier = staged.read_bytes() if staged.is_file() else None  # an earlier fit's, restored on a refusal
        out.mkdir(parents=True, exist_ok=True)
        request = self._request(staged)
        try:
            write_table(df, self.columns, staged)
            checked = protocol.check(request)  # the data's checks, before anything else is written
        except BaseException as err:
            staged.unlink(missing_ok=True)
            if earlier is not None:
                staged.write_bytes(earlier)
            for folder in reversed(made):
                with contextlib.suppress(OSError):  # a folder someone else wrote into meanwhile stays
                    folder.rmdir()
            if isinstance(err, UserError) and not isinstance(err, NoSpace):
                raise _in_api_terms(err, out) from None
            raise
        outcome = protocol.fit(request, checked=checked)
        self.model_dir, self._history, self._predictor = outcome.folder, df, None
        self.results = outcome.manifest
        return self

    def predict(
        self, h: int | None = None, df: pd.DataFrame | None = None, future_df: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """The `h` values (default: the model's horizon) after the end of every series of `df` (default: the
        DataFrame `fit` was given), one row per series and step: id, time (or step), forecast, and the
        quantile columns q<level> of a probabilistic model. Each series is normalised with its own training
        statistics (a series the model never saw: its history's), as the predict command does.

        A model trained with covariates reads them from `df` over the history, and the future ones over its
        horizon from `future_df` (NeuralForecast's futr_df: id, time and the future covariates, a row per
        series and step after its end); calendar features alone need no `future_df` (the times go on at the
        series' frequency)."""
        from datasets import Dataset

        from lstm_trainer.data.forecast_inputs import forecast_inputs
        from lstm_trainer.model.inference import choose_levels

        if h is not None and (
            isinstance(h, bool) or not isinstance(h, int | np.integer) or not 1 <= h <= MAX_FORECAST_STEPS
        ):
            raise UserError(f"h must be a whole number of steps from 1 to {MAX_FORECAST_STEPS:,}, got {h!r}")
        predictor = self._loaded()
        steps = predictor.horizon if h is None else h
        if df is None:
            if self._history is None:
                raise UserError("predict needs df= (the series to forecast from): a loaded model holds no data")
            df = self._history
        df = self.columns.check(df)
        table = Dataset.from_pandas(df[self.columns.used()], preserve_index=False)
        scaling = predictor.norm.covariates
        future = None
        if future_df is not None:
            future_df = self.columns.check(future_df, "future_df", target=False)
            future = (Dataset.from_pandas(future_df, preserve_index=False), "future_df")
        elif scaling is not None and scaling.names.calendar and not scaling.names.future:
            future = (Dataset.from_pandas(self._calendar_future(df, predictor.horizon), preserve_index=False), "future")
        rows, covariates = forecast_inputs(
            table,
            "df",
            [self.columns.target],
            self.columns.time,
            self.columns.id,
            self.config.data.fill_missing,
            scaling,
            predictor.horizon,
            future,
        )
        ids = list(rows.item_ids)
        histories = [rows.series(s) for s in range(rows.num_series)]
        ended = predictor.forecast_from_end(histories, ids, int(steps), covariates=covariates)
        levels = choose_levels(predictor.output, None)
        return self._frame(df, ids, ended.forecast, levels, int(steps))

    def save(self, path: str | Path) -> Path:
        """The exported model folder (what `predict --model` and `LSTMForecaster.from_pretrained` load), copied
        to `path` whole, with the DataFrame's column names. `path` must be new, empty, or a folder `save` (or a
        run) wrote: a folder holding anything else is refused (UserError), never replaced."""
        if self.model_dir is None or not self.model_dir.is_dir():
            raise UserError("nothing to save yet: call fit(df) first (or load a model folder)")
        target = Path(path)
        if target.resolve() == self.model_dir.resolve():
            raise UserError(f"{path} is the model folder itself; save to another folder")
        check_replaceable(target, "save: path", "model")
        with replace_dir(target, "model") as tmp:
            shutil.copytree(self.model_dir, tmp, dirs_exist_ok=True)
            (tmp / COLUMNS_FILE).write_text(json.dumps(self.columns.names(), indent=2) + "\n")
        return target

    @classmethod
    def load(cls, path: str | Path, **columns: Any) -> Forecaster:
        """A model folder written by `save`, or one `train.py` exported (output_dir/model); for the latter
        name the DataFrame's columns here (target_col=, id_col=, time_col=) where they differ from the defaults."""
        folder = Path(path)
        from lstm_trainer.forecast.ensemble import load_predictor

        predictor = load_predictor(folder)  # a model or an ensemble folder; a missing or damaged file: one line
        saved = folder / COLUMNS_FILE
        named = json.loads(saved.read_text()) if saved.is_file() else {}
        model = cls(**{**named, **columns}, **_covariate_options(predictor))
        model.model_dir, model._predictor = folder, predictor
        return model

    def _calendar_future(self, df: pd.DataFrame, steps: int) -> pd.DataFrame:
        """The times of the `steps` after each series' end, as a future_df for a model whose only future
        covariates are calendar features."""
        assert self.columns.time is not None  # calendar features need it (DataConfig)
        ids = [str(v) for v in pd.unique(df[self.columns.id])] if self.columns.id is not None else [self.columns.target]
        times = future_times(df, self.columns, ids, steps)
        assert times is not None
        frame: dict[str, Any] = {self.columns.time: np.concatenate(times)}
        if self.columns.id is not None:
            frame[self.columns.id] = np.repeat(ids, steps)
        return pd.DataFrame(frame)

    def _loaded(self) -> Any:
        from lstm_trainer.forecast.ensemble import load_predictor

        if self._predictor is None:
            if self.model_dir is None:
                raise UserError("nothing to forecast with yet: call fit(df) first, or Forecaster.load(folder)")
            if not self.model_dir.is_dir():
                raise UserError(
                    f"the run wrote no model to {self.model_dir} (no validation improvement was kept); fit again"
                )
            self._predictor = load_predictor(self.model_dir)
        return self._predictor

    def _frame(self, df: pd.DataFrame, ids: list[str], forecast: Any, levels: tuple[float, ...], steps: int) -> Any:
        """One row per series and step, in the user's id values and times."""
        by_text = original_ids(df, self.columns)
        times = future_times(df, self.columns, ids, steps)
        bands = forecast.quantiles(levels) if levels else None  # [S, steps, L]
        frame: dict[str, Any] = {}
        if self.columns.id is not None:
            frame[self.columns.id] = np.repeat(np.array([by_text[i] for i in ids], dtype=object), steps)
        if times is not None:
            assert self.columns.time is not None
            frame[self.columns.time] = np.concatenate(times)
        else:
            frame["step"] = np.tile(np.arange(1, steps + 1), len(ids))
        frame["forecast"] = forecast.point.reshape(-1)
        for k, q in enumerate(levels):
            assert bands is not None
            frame[f"q{q:g}"] = bands[:, :, k].reshape(-1)
        result = pd.DataFrame(frame)
        for column in (self.columns.id, self.columns.time if times is not None else None):
            if column is not None:  # the user's own types: a category id stays one, times keep their unit
                result[column] = result[column].astype(df[column].dtype)
        return result


def _in_api_terms(err: UserError, out: Path) -> UserError:
    """A run's message as the API names things: arguments for flags, and df for the file it became."""
    text = str(err).replace(str(out / FIT_DATA), "df").replace("fix the file", "fix df")
    return UserError(in_api_terms(text, OPTIONS))


def _covariate_columns(data: DataConfig) -> tuple[str, ...]:
    """The DataFrame's covariate columns the run reads (calendar features are made, not read)."""
    return (*(data.past_covariates or ()), *(data.future_covariates or ()), *(data.static_covariates or ()))


def _covariate_options(predictor: Any) -> dict[str, Any]:
    """A loaded model's covariates as the options that trained it (normalization.json records them)."""
    scaling = predictor.norm.covariates
    if scaling is None:
        return {}
    names = scaling.names
    given = {
        "past_covariates": names.past,
        "future_covariates": names.future,
        "static_covariates": names.static,
        "calendar_features": names.calendar,
    }
    return {option: list(value) for option, value in given.items() if value}
