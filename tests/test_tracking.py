"""tracking.py in-process, with a real one-process Accelerator and the real trackers' files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.tracking import TensorBoardTracker
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard.summary import hparams

from lstm_trainer.config import RunConfig, TrainConfig
from lstm_trainer.outputs import tracking
from lstm_trainer.outputs.results import StepLog

RUN_INFO = {
    "config": RunConfig().to_dict(),
    "world_size": 1,
    "deepspeed": {"zero_optimization": {"stage": 2}, "x": [1, 2]},
}


@pytest.fixture
def accelerator() -> Iterator[Callable[[TrainConfig], Accelerator]]:
    made: list[Accelerator] = []

    def make(train: TrainConfig) -> Accelerator:
        made.append(Accelerator(cpu=True, log_with=tracking.log_with(train)))
        return made[-1]

    yield make
    for acc in made:
        acc.end_training()
    AcceleratorState._reset_state(reset_partial_state=True)


def wandb_runs(out: Path) -> list[Path]:
    return sorted(p for p in (out / "wandb").glob("*run-*") if p.is_dir())


def wandb_summary(run_dir: Path) -> dict[str, Any]:
    """W&B's own reader of the run's .wandb log (`wandb leet inspect`), not anything we kept."""
    cli = Path(sys.executable).parent / "wandb"
    done = subprocess.run(
        [str(cli), "leet", "inspect", "--summary", "--json", str(run_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_flat_config_is_what_tensorboard_hparams_accepts() -> None:
    flat = tracking.flat_config(RUN_INFO)
    assert flat["model.hidden_size"] == 64 and flat["train.report_to"] == "none"
    assert flat["deepspeed.zero_optimization.stage"] == 2 and flat["world_size"] == 1
    assert flat["train.max_train_steps"] == "null" and flat["deepspeed.x"] == "[1, 2]"
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
    hparams(flat, {})  # TensorBoard's own check: raises on a value it cannot take


@pytest.mark.parametrize(
    ("report_to", "names"),
    [("none", []), ("wandb", ["wandb"]), ("tensorboard", ["tensorboard"]), ("all", ["wandb", "tensorboard"])],
)
def test_log_with_names_wandb_first(report_to: str, names: list[str], tmp_path: Path) -> None:
    trackers = tracking.log_with(TrainConfig(output_dir=str(tmp_path), report_to=report_to, run_name="r1"))
    assert [t.name if isinstance(t, TensorBoardTracker) else t for t in trackers] == names
    assert not any(tmp_path.iterdir())  # nothing is written before the run starts


def test_missing_wandb_says_one_line_and_tensorboard_still_logs(
    accelerator: Callable[[TrainConfig], Accelerator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # what Python sees where wandb is not installed
    train = TrainConfig(output_dir=str(tmp_path), report_to="all", run_name="r1")
    acc = accelerator(train)
    tracking.start(acc, train, RUN_INFO)
    tracking.log_step(acc, StepLog(step=20, epoch=1, loss=0.25, grad_norm=0.5, learning_rate=1e-3))
    acc.end_training()
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if "W&B" in line] == [
        "tracking: W&B is not installed (pip install wandb); the run goes on without it"
    ]
    scalars = EventAccumulator(str(tmp_path / "tensorboard" / "r1")).Reload().Scalars("train/loss")
    assert [(s.step, s.value) for s in scalars] == [(20, 0.25)]
    assert not (tmp_path / "wandb").exists()


def test_a_wandb_mode_wandb_rejects_says_one_line_and_the_run_goes_on(
    accelerator: Callable[[TrainConfig], Accelerator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "bogus")
    # W&B reads WANDB_MODE once per process, into a singleton an earlier in-process run may have
    # made (then the mode is whatever that run had): start from none, as a fresh process does.
    wandb.teardown()
    train = TrainConfig(output_dir=str(tmp_path), report_to="all", run_name="r1")
    try:
        acc = accelerator(train)
        tracking.start(acc, train, RUN_INFO)
        tracking.log_step(acc, StepLog(step=20, epoch=1, loss=0.25, grad_norm=0.5, learning_rate=1e-3))
        acc.end_training()
    finally:
        wandb.teardown()
    said = [line for line in capsys.readouterr().out.splitlines() if "W&B" in line]
    assert len(said) == 1 and said[0].startswith("tracking: W&B cannot start (") and "'bogus'" in said[0], said
    assert said[0].endswith("the run goes on without it")
    assert [t.name for t in acc.trackers] == ["tensorboard"] and not (tmp_path / "wandb").exists()
    assert EventAccumulator(str(tmp_path / "tensorboard" / "r1")).Reload().Scalars("train/loss")[0].value == 0.25


def test_no_api_key_logs_offline_and_says_so(
    accelerator: Callable[[TrainConfig], Accelerator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import wandb

    # Online, but no key anywhere W&B looks; a dead local address in case anything tried the network.
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_CONSOLE", "off")  # leave pytest's capture alone
    out = tmp_path / "out"
    out.mkdir()
    train = TrainConfig(output_dir=str(out), report_to="wandb", run_name="no-key")
    try:
        acc = accelerator(train)
        tracking.start(acc, train, RUN_INFO)
        tracking.log_step(acc, StepLog(step=5, epoch=1, loss=0.125, grad_norm=0.5, learning_rate=1e-3))
        acc.end_training()
    finally:
        wandb.teardown()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tracking: W&B has no API key")]
    assert len(lines) == 1 and "logging offline" in lines[0], lines
    (run_dir,) = wandb_runs(out)
    assert run_dir.name.startswith("offline-run-")
    summary = wandb_summary(run_dir)
    assert summary["summary"]["train/loss"] == 0.125 and summary["config"]["model.hidden_size"] == 64


def test_a_run_that_ends_in_an_error_is_failed_in_wandb(
    accelerator: Callable[[TrainConfig], Accelerator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    train = TrainConfig(output_dir=str(tmp_path), report_to="wandb")
    try:
        acc = accelerator(train)
        tracking.start(acc, train, RUN_INFO)
        tracking.fail(acc, 2)
        acc.end_training()  # what trainer.run's `finally` does next
    finally:
        wandb.teardown()
    (run_dir,) = wandb_runs(tmp_path)
    summary = wandb_summary(run_dir)
    assert (summary["state"], summary["exit_code"]) == ("failed", 2)
