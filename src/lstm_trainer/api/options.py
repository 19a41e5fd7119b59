"""Keyword options -> the RunConfig `train.py` builds from the same flags."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from lstm_trainer.config import DataConfig, ModelConfig, RunConfig, TrainConfig, config_fields
from lstm_trainer.errors import UserError

# --dataset until fit writes the DataFrame to output_dir.
PENDING = "(the DataFrame given to fit)"
GROUPS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
OPTIONS = tuple(f.name for cls in GROUPS.values() for f in config_fields(cls))
# Set from the DataFrame `fit` is given: its column names are the API's own arguments.
FROM_THE_FRAME = {
    "dataset": "the DataFrame given to fit",
    "data_column": "target_col=",
    "id_column": "id_col=",
    "time_column": "time_col=",
}
# The flags the API names otherwise, in its messages.
API_NAMES = {"data_column": "target_col", "id_column": "id_col", "time_column": "time_col", "dataset": "df"}


def run_config(options: dict[str, Any], target: str, id_column: str | None, time_column: str | None) -> RunConfig:
    """The run's config; an option the command line does not have, or one the DataFrame decides, is a UserError.

    Options named are recorded as typed flags, so a value equal to the default still wins over a
    DeepSpeed JSON, as it does when typed on the command line.
    """
    names = {f.name: group for group, cls in GROUPS.items() for f in config_fields(cls)}
    for name in options:
        if name in FROM_THE_FRAME:
            raise UserError(f"{name} is set by the API: use {FROM_THE_FRAME[name]} instead")
        if name not in names:
            near = difflib.get_close_matches(name, [*names, "target_col", "id_col", "time_col"], n=1)
            hint = f"; did you mean {near[0]}?" if near else "; the options are train.py's flags (--help)"
            raise UserError(f"unknown option {name!r}{hint}")
    try:
        return _build(options, names, target, id_column, time_column)
    except UserError as err:
        raise UserError(in_api_terms(str(err), names)) from None


def in_api_terms(message: str, options: Iterable[str]) -> str:
    """A message in the API's words: the flags it names as keyword arguments (--seq_length -> seq_length),
    the DataFrame's columns by the arguments that named them (--id_column -> id_col)."""
    known = {**{name: name for name in options}, **API_NAMES}
    return re.sub(r"--(\w+)", lambda m: known.get(m[1], m[0]), message)


def _build(
    options: dict[str, Any], names: dict[str, str], target: str, id_column: str | None, time_column: str | None
) -> RunConfig:
    parts: dict[str, Any] = {}
    for group, cls in GROUPS.items():
        given = {k: _field_value(v) for k, v in options.items() if names.get(k) == group}
        if group == "data":
            # The columns now, so that what needs them (static covariates, calendar features) is checked now;
            # fit names the file it writes the DataFrame to.
            given.update(dataset=PENDING, data_column=[target], id_column=id_column, time_column=time_column)
        if group == "train":
            given["typed"] = frozenset(options)
        parts[group] = cls(**given)
    return RunConfig(**parts)


def _field_value(value: Any) -> Any:
    # A list where a field holds a tuple (quantiles), as the command line's parser makes it; lists stay lists.
    return tuple(value) if isinstance(value, list) and value and isinstance(value[0], float | int) else value
