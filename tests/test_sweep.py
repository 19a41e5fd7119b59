"""sweep.yaml: the command `wandb agent` builds from it is one train.py accepts, and the metric is logged."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from conftest import ROOT
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args, load_sweep_config

from lstm_trainer.cli.train import parse_config
from lstm_trainer.outputs import tracking

SWEEP = load_sweep_config(str(ROOT / "sweep.yaml"))  # W&B's own loader


def agent_command(params: dict[str, Any]) -> list[str]:
    """What `wandb agent` runs for one trial (wandb_agent.Agent._command_run, its non-function path)."""
    assert SWEEP is not None
    variables = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    variables.update(interpreter=["python"], program=[SWEEP["program"]], env=["/usr/bin/env"])
    command: list[str] = []
    for chunk in create_sweep_command(list(SWEEP.get("command", []))):
        chunk = str(chunk)
        macro = chunk.startswith("${") and chunk.endswith("}")
        command += (variables.get(chunk[2:-1]) or []) if macro else [chunk]
    return command


def corners() -> list[dict[str, Any]]:
    """Every listed value and both ends of every range: what a search can hand train.py."""
    assert SWEEP is not None
    choices = {
        name: spec["values"] if "values" in spec else [spec["min"], spec["max"]]
        for name, spec in SWEEP["parameters"].items()
    }
    return [dict(zip(choices, combo, strict=True)) for combo in itertools.product(*choices.values())]


def test_program_and_metric_match_what_train_py_logs() -> None:
    assert SWEEP is not None
    assert (ROOT / SWEEP["program"]).is_file() and SWEEP["program"] == "train.py"
    assert SWEEP["metric"] == {"name": "epoch/best_val_mse", "goal": "minimize"}
    assert SWEEP["metric"]["name"] in tracking.EPOCH_KEYS
    assert {"hidden_size", "num_layers", "learning_rate", "cell"} <= SWEEP["parameters"].keys()


@pytest.mark.parametrize("params", corners(), ids=lambda p: "-".join(str(v) for v in p.values()))
def test_agent_command_parses_into_the_trial_config(params: dict[str, Any]) -> None:
    command = agent_command(params)
    assert command[:3] == ["/usr/bin/env", "python", "train.py"]
    config = parse_config(command[3:])
    assert config.train.report_to == "wandb"
    assert (config.model.hidden_size, config.model.num_layers, config.model.cell) == (
        params["hidden_size"],
        params["num_layers"],
        params["cell"],
    )
    assert config.train.learning_rate == pytest.approx(params["learning_rate"])
