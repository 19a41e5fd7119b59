"""`--dataset` to windows: the synthetic sine, a file, a `save_to_disk` folder or a Hub id.

Reading is done by `datasets` (`load_dataset` for files and the Hub, `load_from_disk` for
folders). A source holds either windows already (`inputs` / `target` columns, as `build` and
`push` write them), used as they are, or a table with one row per time step, from which one
column becomes the series that is split in time order and windowed here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict

from lstm_trainer.config import DataConfig
from lstm_trainer.data.series import context_bounds, extract_series, split_series
from lstm_trainer.data.synthetic import build_synthetic
from lstm_trainer.data.windows import (
    ALL_SPLITS,
    INPUTS,
    TARGET,
    dataset_params,
    features,
    params_info,
    target_horizon,
    window_length,
    windows_to_dataset,
)
from lstm_trainer.errors import UserError

# File suffix -> the `datasets` builder that reads it.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "json", ".json": "json"}
# Suffixes that say "this is meant as a file", so a missing one is not looked up on the Hub.
FILE_SUFFIXES = (*FORMATS, ".tsv", ".txt", ".xlsx", ".xls", ".feather", ".arrow", ".h5", ".npy", ".gz", ".zip")
# The card metadata key under which `push` stores the source parameters.
CARD_KEY = "lstm_trainer"
OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to use a copy already in your cache"


def load_windows(config: DataConfig, seed: int) -> DatasetDict:
    """The windowed DatasetDict (train, validation, optional test) for `config.dataset`, in data units."""
    if config.is_synthetic:
        return build_synthetic(config, seed)
    name = config.dataset
    path = Path(name).expanduser()
    if path.is_dir():
        return _to_windows(_load_folder(path, name), config, {"source": "folder", "folder": path.name})
    if path.is_file():
        table, fmt = read_table(name)
        return _to_windows(table, config, {"source": "file", "file": path.name, "format": fmt})
    if _looks_like_path(name):
        raise UserError(f"{name}: no such file or folder; check the path given to --dataset")
    loaded, params = _load_hub(name, config.dataset_revision)
    return _to_windows(loaded, config, {"source": "hub", "repo_id": name, "revision": config.dataset_revision}, params)


def read_table(name: str) -> tuple[Dataset, str]:
    """A CSV, Parquet or JSON Lines file as a one-row-per-time-step table, and its format."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(f"{name}: no such file; check the path")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(
            f"{name}: unknown format {path.suffix or '(no suffix)'!r}; give a .csv, .parquet or .jsonl file, "
            "a folder written by save_to_disk, or a Hub dataset id"
        )
    return _load_file(path, fmt, name), fmt


def _looks_like_path(name: str) -> bool:
    """A Hub id is `name` or `namespace/name`; anything else given to --dataset is a local path."""
    return (
        name.lower().endswith(FILE_SUFFIXES)
        or name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or os.sep != "/" and os.sep in name
    )


def _load_file(path: Path, fmt: str, name: str) -> Dataset:
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    if path.stat().st_size == 0:
        raise UserError(f"{name} is empty; give a file with a header and one row per time step")
    # One pandas chunk for the whole CSV: types are then inferred over every row, so a stray
    # word deep in a number column makes it a text column (and an error naming the row)
    # instead of an Arrow cast failure that names nothing.
    options: dict[str, Any] = {"chunksize": 2**31 - 1} if fmt == "csv" else {}
    try:
        table = load_dataset(fmt, data_files=str(path.resolve()), split="train", **options)
    except DatasetGenerationError as err:
        cause = err.__cause__ or err
        raise UserError(f"{name}: cannot be read as {fmt.upper()} ({_first_line(cause)}); check the file") from None
    except (ValueError, StopIteration) as err:  # a header without rows, or nothing but blank lines
        if isinstance(err, StopIteration) or "corresponds to no data" in str(err):
            raise UserError(f"{name} has no rows; give a file with one row per time step") from None
        raise
    return table


def _load_folder(path: Path, name: str) -> Dataset | DatasetDict:
    from datasets import load_from_disk

    try:
        return load_from_disk(str(path))
    except FileNotFoundError:
        raise UserError(
            f"{name}: is a folder but not one written by save_to_disk (no dataset_dict.json or dataset_info.json); "
            "give a file, such a folder (e.g. from `python -m lstm_trainer.data build`) or a Hub id"
        ) from None


def _load_hub(repo_id: str, revision: str | None) -> tuple[DatasetDict, dict[str, Any]]:
    """A Hub dataset through `load_dataset`, plus the source parameters its card records."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants

    at = f" at revision {revision!r}" if revision else ""
    where = f"{repo_id}{at}"
    if not constants.HF_HUB_OFFLINE:
        _check_on_hub(repo_id, revision, where)
    try:
        loaded = load_dataset(repo_id, revision=revision)
    except DatasetNotFoundError as err:
        raise UserError(f"{where}: {_first_line(err)}{_offline_note()}") from None
    except ConnectionError as err:
        raise UserError(f"{where}: cannot reach the Hub ({_first_line(err)}){_offline_note()}") from None
    return loaded, _card_params(repo_id, revision)


def _check_on_hub(repo_id: str, revision: str | None, where: str) -> None:
    """One API call first, so a wrong id or an unreachable Hub gets a precise answer at once
    (`load_dataset` would retry for half a minute, then fall back to the cache or say little)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT
    try:
        HfApi().dataset_info(repo_id, revision=revision)
    except GatedRepoError:
        raise UserError(f"{where}: the dataset is gated; accept its terms on {endpoint} and log in (`hf auth login` or HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise UserError(
            f"{where}: no such local file or folder, and no such dataset on the Hub ({endpoint}); check the id, "
            "and for a private dataset log in (`hf auth login`) or set HF_TOKEN"
        ) from None
    except RevisionNotFoundError:
        raise UserError(f"{where}: the dataset has no such revision; check --dataset_revision") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        if status == 401:
            raise UserError(f"{where}: the Hub ({endpoint}) refused the token (HTTP 401); check HF_TOKEN or run `hf auth login`") from None
        raise UserError(f"{where}: the Hub ({endpoint}) answered HTTP {status}; try again later, or {OFFLINE_HINT}") from None
    except Exception as err:
        if not is_network_error(err):
            raise
        raise UserError(f"{where}: cannot reach the Hub at {endpoint} ({_first_line(err)}); check the network, or {OFFLINE_HINT}") from None


def is_network_error(err: BaseException) -> bool:
    """A connection or timeout error from the OS or the HTTP client (which one depends on the
    huggingface_hub version: requests, httpx or httpx2)."""
    return isinstance(err, OSError) or type(err).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3")


def _offline_note() -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "; HF_HUB_OFFLINE is set, so only cached copies can be used: unset it to download"
    return f"; {OFFLINE_HINT}"


def _card_params(repo_id: str, revision: str | None) -> dict[str, Any]:
    """The source parameters `push` wrote into the card's metadata (empty for other datasets)."""
    from huggingface_hub import DatasetCard, hf_hub_download

    try:
        card = DatasetCard(Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision)).read_text())
    except Exception:  # no card, or none cached while offline: the data is still usable
        return {}
    params = card.data.to_dict().get(CARD_KEY)
    return dict(params) if isinstance(params, dict) else {}


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _to_windows(
    loaded: Dataset | DatasetDict, config: DataConfig, source: dict[str, Any], params: dict[str, Any] | None = None
) -> DatasetDict:
    name = config.dataset
    if isinstance(loaded, DatasetDict) and all(INPUTS in s.column_names and TARGET in s.column_names for s in loaded.values()):
        return _windowed(loaded, config, params)
    if isinstance(loaded, DatasetDict):
        if len(loaded) != 1:
            raise UserError(
                f"{name} has splits {', '.join(loaded)} but no {INPUTS!r}/{TARGET!r} windows; give one table with "
                "a row per time step (it is split here) or windows written by `python -m lstm_trainer.data build`"
            )
        loaded = next(iter(loaded.values()))
    if INPUTS in loaded.column_names and TARGET in loaded.column_names:
        raise UserError(f"{name} holds windows without train/validation splits; build it with `python -m lstm_trainer.data build`")
    return _windows_from_table(loaded, config, source)


def _windows_from_table(table: Dataset, config: DataConfig, source: dict[str, Any]) -> DatasetDict:
    name = config.dataset
    series = extract_series(table, name, config.data_column, config.time_column, config.fill_missing)
    splits = split_series(len(series.values), config.val_fraction, config.test_fraction, config.seq_length, name, config.horizon)
    params: dict[str, Any] = {
        **{k: v for k, v in source.items() if v is not None},
        "data_column": series.column,
        "time_column": config.time_column,
        "rows": table.num_rows,
        "fill_missing": config.fill_missing,
        "filled_values": series.repaired,
        "dropped_rows": series.dropped,
        "val_fraction": config.val_fraction,
        "test_fraction": config.test_fraction,
        "seq_length": config.seq_length,
        "split_rows": {},
    }
    for split, (start, stop) in splits.bounds.items():
        span: dict[str, Any] = {"first_row": int(series.rows[start]), "last_row": int(series.rows[stop - 1]), "values": stop - start}
        if series.times is not None:
            span.update(first_time=series.times[start], last_time=series.times[stop - 1])
        params["split_rows"][split] = span
    info = params_info(params, config.seq_length, config.horizon)
    return DatasetDict(
        {
            split: windows_to_dataset(
                series.values[slice(*context_bounds(split, span, config.seq_length))], config.seq_length, info.copy(), config.horizon
            )
            for split, span in splits.bounds.items()
        }
    )


def _windowed(loaded: DatasetDict, config: DataConfig, params: dict[str, Any] | None) -> DatasetDict:
    """Windows as written by `build` / `push`: checked and used as they are."""
    name = config.dataset
    missing = [split for split in ("train", "validation") if split not in loaded]
    if missing:
        raise UserError(f"{name} holds windows but no {' or '.join(missing)} split (it has: {', '.join(loaded)})")
    splits = DatasetDict({split: loaded[split] for split in ALL_SPLITS if split in loaded})
    length = window_length(splits["train"])
    if length != config.seq_length:
        raise UserError(f"{name} holds windows of {length} steps but --seq_length is {config.seq_length}; pass --seq_length {length}")
    params = params if params is not None else dataset_params(splits["train"])
    out = {}
    for split, data in splits.items():
        if len(data) == 0:
            raise UserError(f"{name}: the {split} split holds no windows")
        data = data.select_columns([INPUTS, TARGET])
        if target_horizon(data) != config.horizon:
            raise UserError(
                f"{name} holds windows with {target_horizon(data)} target value(s) but --horizon is {config.horizon}; "
                f"pass --horizon {target_horizon(data)}, or build the windows with --horizon {config.horizon}"
            )
        if data.features != features(length, config.horizon):  # in memory: never write cache files into the user's folder
            data = data.cast(features(length, config.horizon), keep_in_memory=True)
        rows = data.with_format("numpy")[:]
        finite = np.isfinite(rows[INPUTS]).all(axis=1) & np.isfinite(rows[TARGET].reshape(len(data), -1)).all(axis=1)
        if not finite.all():
            raise UserError(f"{name}: the {split} split has NaN or inf values in window {int(np.argmin(finite)) + 1}; rebuild it from clean data")
        data.info.description = params_info(params, length, config.horizon).description
        out[split] = data
    return DatasetDict(out)
