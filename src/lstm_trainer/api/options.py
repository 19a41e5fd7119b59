"""Keyword options -> the RunConfig `train.py` builds from the same flags."""

from __future__ import annotations

import difflib
from typing import Any

from lstm_trainer.config import DataConfig, ModelConfig, RunConfig, TrainConfig, config_fields

# --dataset until fit writes the DataFrame to output_dir.
PENDING = "(the DataFrame given to fit)"
GROUPS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# Set from the DataFrame `fit` is given: its column names are the API's own arguments.
FROM_THE_FRAME = {
    "dataset": "the DataFrame given to fit",
    "data_column": "target_col=",
    "id_column": "id_col=",
    "time_column": "time_col=",
}


def run_config(options: dict[str, Any], target: str, id_column: str | None, time_column: str | None) -> RunConfig:
    """The run's config; an option the command line does not have, or one the DataFrame decides, is a UserError.

    Options named are recorded as typed flags, so a value equal to the default still wins over a
    DeepSpeed JSON, as it does when typed on the command line.
    """
    from lstm_trainer.errors import UserError

    names = {f.name: group for group, cls in GROUPS.items() for f in config_fields(cls)}
    for name in options:
        if name in FROM_THE_FRAME:
            raise UserError(f"{name} is set by the API: use {FROM_THE_FRAME[name]} instead")
        if name not in names:
            near = difflib.get_close_matches(name, [*names, "target_col", "id_col", "time_col"], n=1)
            hint = f"; did you mean {near[0]}?" if near else "; the options are train.py's flags (--help)"
            raise UserError(f"unknown option {name!r}{hint}")
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
