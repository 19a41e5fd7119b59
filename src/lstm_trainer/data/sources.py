"""`--dataset` to series rows: the synthetic sine, a file, a `save_to_disk` folder or a Hub id.

Reading is done by `datasets` (`load_dataset` for files and the Hub, `load_from_disk` for
folders). A source holds either series rows already (the Hub's time-series layout: a list
column `target`, one row per series, as `build` and `push` write them), used in place, or a
table with one row per time step, whose columns become series (tables.py).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict

from lstm_trainer.config import DataConfig
from lstm_trainer.data.covariates import CovariateNames
from lstm_trainer.data.rows import ITEM_ID, NO_CLOCK, START, TARGET_COLUMN, SeriesSet, dynamic_real, flat_values
from lstm_trainer.data.splits import SplitPlan
from lstm_trainer.data.synthetic import build_synthetic, synthetic_params
from lstm_trainer.data.tables import table_to_series
from lstm_trainer.data.windows import ALL_SPLITS, dataset_params
from lstm_trainer.errors import UserError

# File suffix -> the `datasets` builder that reads it.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "json", ".json": "json"}
# Suffixes that say "this is meant as a file", so a missing one is not looked up on the Hub.
FILE_SUFFIXES = (*FORMATS, ".tsv", ".txt", ".xlsx", ".xls", ".feather", ".arrow", ".h5", ".npy", ".gz", ".zip")
# The card metadata key under which `push` stores the source parameters.
CARD_KEY = "lstm_trainer"
OFFLINE_HINT = "set HF_HUB_OFFLINE=1 to use a copy already in your cache"


@dataclass
class LoadedSeries:
    """What a source gives: its series, a fixed split where the source dictates one, and how it was read."""

    rows: SeriesSet
    params: dict[str, Any]
    plan: SplitPlan | None = None  # None: each series is split by --val_fraction / --test_fraction
    spans: dict[str, Any] = field(default_factory=dict)  # one series from a table: source rows and times


def load_series(config: DataConfig, seed: int) -> LoadedSeries:
    """The series of `config.dataset`, in data units, every value finite."""
    if config.is_synthetic:
        rows, plan = build_synthetic(config, seed)
        return LoadedSeries(rows, synthetic_params(config, seed), plan)
    name = config.dataset
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_loaded(_load_folder(path, name), config, {"source": "folder", "folder": path.name})
    if path.is_file():
        table, fmt = read_table(name)
        return _from_loaded(table, config, {"source": "file", "file": path.name, "format": fmt})
    if _looks_like_path(name):
        raise UserError(f"{name}: no such file or folder; check the path given to --dataset")
    loaded, params = _load_hub(name, config.dataset_revision)
    return _from_loaded(loaded, config, {"source": "hub", "repo_id": name, "revision": config.dataset_revision}, params)


def read_table(name: str) -> tuple[Dataset, str]:
    """A CSV, Parquet or JSON Lines file as a one-row-per-time-step table, and its format."""
    path = Path(name).expanduser()
    if path.is_dir():
        raise UserError(f"{name} is a folder; give a .csv, .parquet or .jsonl file in it")
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
        or (os.sep != "/" and os.sep in name)
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
    if fmt == "csv":
        _check_header(path, name)
    if fmt == "json":
        # Every line read by Python's parser first: pyarrow's JSON reader, which datasets calls, crashed the
        # process (a segmentation fault, no exception) on a generated malformed file (tests/test_generated_inputs.py).
        line = _first_bad_json_line(path)
        if line is not None:
            raise UserError(f"{name}: line {line} is not valid JSON; fix that line (one JSON object a line)")
    try:
        table = load_dataset(fmt, data_files=str(path.resolve()), split="train", **options)
    except DatasetGenerationError as err:
        cause = err.__cause__ or err
        line = _first_bad_json_line(path) if fmt == "json" else None
        if line is not None:  # Arrow counts rows from 0, within a block: the line as an editor numbers it
            raise UserError(f"{name}: line {line} is not valid JSON; fix that line (one JSON object a line)") from None
        raise UserError(f"{name}: cannot be read as {fmt.upper()} ({_first_line(cause)}); check the file") from None
    except (pa.ArrowException, OSError) as err:  # a damaged file, found while its schema is read
        raise UserError(f"{name}: cannot be read as {fmt.upper()} ({_first_line(err)}); check the file") from None
    except (ValueError, StopIteration) as err:  # a header without rows, or nothing but blank lines
        if isinstance(err, StopIteration) or "corresponds to no data" in str(err):
            raise UserError(f"{name} has no rows; give a file with one row per time step") from None
        if fmt != "json":
            raise
        # datasets falls back to pandas' JSON reader where Arrow's fails, which raises a bare ValueError.
        line = _first_bad_json_line(path)
        if line is not None:
            raise UserError(f"{name}: line {line} is not valid JSON; fix that line (one JSON object a line)") from None
        raise UserError(f"{name}: cannot be read as JSON Lines ({_first_line(err)}); check the file") from None
    return table


def _check_header(path: Path, name: str) -> None:
    """A CSV header that names a column twice (pandas would read the second as 'y.1', and --data_column y the
    first, without a word), or that is one column because the file is separated by something else."""
    import csv

    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            header = next((row for row in csv.reader(handle) if any(cell.strip() for cell in row)), None)
    except OSError:
        return  # the loader names what is wrong with the file
    if header is None:
        return
    names = [cell.strip() for cell in header]
    twice = next((n for n in names if n and names.count(n) > 1), None)
    if twice is not None:
        raise UserError(
            f"{name}: the header names column {twice!r} twice; rename one, so that it is clear which is meant"
        )
    if len(names) == 1:
        separator = next((s for s in (";", "\t", "|") if s in names[0]), None)
        if separator is not None:
            shown = "tab" if separator == "\t" else repr(separator)
            raise UserError(
                f"{name}: its header {names[0]!r} is one column: the file is separated by {shown}, and a .csv is "
                "read comma-separated; save it with commas"
            )


def _first_bad_json_line(path: Path) -> int | None:
    """The number (from 1) of the first non-blank line of a JSON Lines file that is not a JSON object."""
    import json

    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    return number
                if not isinstance(value, dict):
                    return number
    return None


def _load_folder(path: Path, name: str) -> Dataset | DatasetDict:
    from datasets import load_from_disk

    try:
        return load_from_disk(str(path))
    except FileNotFoundError:
        raise UserError(
            f"{name}: is a folder but not one written by save_to_disk (no dataset_dict.json or dataset_info.json); "
            "give a file, such a folder (e.g. from `python -m lstm_trainer.cli.data build`) or a Hub id"
        ) from None
    except (pa.ArrowException, OSError, ValueError) as err:  # a truncated or damaged Arrow file, bad JSON
        raise UserError(
            f"{name}: a file of this save_to_disk folder is truncated or damaged ({_first_line(err)}); "
            "write the folder again (save_to_disk, or `python -m lstm_trainer.cli.data build`)"
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
        raise UserError(
            f"{where}: the dataset is gated; accept its terms on {endpoint} and log in (`hf auth login` or HF_TOKEN)"
        ) from None
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
            raise UserError(
                f"{where}: the Hub ({endpoint}) refused the token (HTTP 401); check HF_TOKEN or run `hf auth login`"
            ) from None
        raise UserError(
            f"{where}: the Hub ({endpoint}) answered HTTP {status}; try again later, or {OFFLINE_HINT}"
        ) from None
    except Exception as err:
        if not is_network_error(err):
            raise
        raise UserError(
            f"{where}: cannot reach the Hub at {endpoint} ({_first_line(err)}); check the network, or {OFFLINE_HINT}"
        ) from None


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
        card = DatasetCard(
            Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision)).read_text()
        )
    except Exception:  # no card, or none cached while offline: the data is still usable
        return {}
    params = card.data.to_dict().get(CARD_KEY)
    return dict(params) if isinstance(params, dict) else {}


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _is_series_rows(data: Dataset, column: str) -> bool:
    """A list column: one whole series a row. Asked of Arrow, which names it the same in every
    `datasets` version (whose feature class moved from Sequence to List)."""
    if column not in data.column_names:
        return False
    kind = data.data.table.schema.field(column).type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def _from_loaded(
    loaded: Dataset | DatasetDict, config: DataConfig, source: dict[str, Any], card: dict[str, Any] | None = None
) -> LoadedSeries:
    name = config.dataset
    column = config.data_column[0] if config.data_column and len(config.data_column) == 1 else TARGET_COLUMN
    parts = loaded if isinstance(loaded, DatasetDict) else DatasetDict({"train": loaded})
    if any(_is_series_rows(part, column) for part in parts.values()):
        return _series_rows(parts, config, column, source, card or {})
    if len(parts) != 1:
        raise UserError(
            f"{name} has splits {', '.join(parts)} but no list column {column!r} of series; give one table with "
            "a row per time step, or series rows (item_id, start, target) as `python -m lstm_trainer.cli.data build` writes"
        )
    table = next(iter(parts.values()))
    rows, read = table_to_series(
        table,
        name,
        config.data_column,
        config.time_column,
        config.id_column,
        config.fill_missing,
        CovariateNames.of(config),
    )
    spans = read.pop("split_rows", {})
    params = {
        **{k: v for k, v in source.items() if v is not None},
        **read,
        "time_column": config.time_column,
        "rows": table.num_rows,
        "fill_missing": config.fill_missing,
    }
    return LoadedSeries(rows, params, None, spans)


def _series_rows(
    parts: DatasetDict, config: DataConfig, column: str, source: dict[str, Any], card: dict[str, Any]
) -> LoadedSeries:
    """Series rows, used in place (a memory map of the Arrow file where it allows).

    In the Hub's layout each later split holds the same series, longer: train, then validation
    (train + more), then test (all). The last split holds them whole and the shorter ones say
    where each series is cut; a single split is cut by --val_fraction / --test_fraction.
    """
    name = config.dataset
    present = [split for split in ALL_SPLITS if split in parts] or list(parts)[:1]
    whole = _rows_of(parts[present[-1]], column, name)
    names = CovariateNames.of(config)
    if names:
        whole.covariates = dynamic_real(parts[present[-1]], name, names, whole.lengths)
    stored = dataset_params(parts[present[-1]]) or card
    params = {**stored, **{k: v for k, v in source.items() if v is not None}, "data_column": column}
    if stored.get("source") == "synthetic":
        params["source"], params["stored_as"] = "synthetic", source["source"]
        if stored.get("seq_length") not in (None, config.seq_length):
            raise UserError(
                f"{name} is the synthetic sine built for --seq_length {stored['seq_length']}; pass --seq_length {stored['seq_length']}"
            )
    if len(present) < 2:
        return LoadedSeries(whole, params)
    cuts = []
    for split in present[:-1]:
        part = parts[split]
        ids = [str(v) for v in part.data.table.column(ITEM_ID).to_pylist()] if ITEM_ID in part.column_names else None
        lengths = np.asarray(part.data.table.column(column).combine_chunks().value_lengths().fill_null(0), np.int64)
        if (
            (ids is not None and ids != whole.item_ids)
            or len(lengths) != whole.num_series
            or (lengths > whole.lengths).any()
        ):
            params["splits_from"] = (
                f"the {present[-1]} split, by fraction (the {split} split does not hold its series' beginnings)"
            )
            return LoadedSeries(whole, params)
        cuts.append(lengths)
    cuts.append(whole.lengths)
    bounds, start = {}, np.zeros(whole.num_series, np.int64)
    for split, stop in zip(present, cuts, strict=True):
        bounds[split] = np.stack([start, stop], axis=1)
        start = stop
    params["splits_from"] = f"the dataset's own {', '.join(present)} splits"
    return LoadedSeries(whole, params, SplitPlan(bounds, context=stored.get("source") != "synthetic"))


def _rows_of(data: Dataset, column: str, name: str) -> SeriesSet:
    if data.num_rows == 0:
        raise UserError(f"{name}: holds no series (the {column!r} column has no rows)")
    table = data.data.table  # the Arrow table itself (memory-mapped for files on disk)
    value_type = table.column(column).type.value_type
    if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
        raise UserError(
            f"{name}: column {column!r} holds lists of {value_type}, not numbers; this trainer learns univariate "
            "series (one number per step): name a list-of-numbers column with --data_column"
        )
    values, offsets = flat_values(table.column(column))
    ids = (
        [str(v) for v in table.column(ITEM_ID).to_pylist()]
        if ITEM_ID in data.column_names
        else [str(i) for i in range(data.num_rows)]
    )
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        for twice in ids:
            if twice in seen:
                raise UserError(f"{name}: item_id {twice!r} names two rows; each series needs its own id")
            seen.add(twice)
    starts = np.full(len(ids), NO_CLOCK)
    if START in data.column_names:
        # A start the layout does not type is left out: it is not needed to train.
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowNotImplementedError):
            starts = table.column(START).cast(pa.timestamp("s")).to_numpy().astype("datetime64[s]")
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        s = int(np.searchsorted(offsets, first, side="right") - 1)
        count = int(np.sum(bad[offsets[s] : offsets[s + 1]]))
        raise UserError(
            f"{name}: series {ids[s]!r} has {count} missing (NaN) or infinite value{'s' if count > 1 else ''}, the first "
            f"at step {first - offsets[s] + 1}; repair it at the source (series rows are used as they are)"
        )
    return SeriesSet(values, offsets, ids, starts)
