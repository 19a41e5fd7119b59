"""Shared tiny settings and a runner for the real `train.py`, in-process or launched."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import numpy as np

    from lstm_trainer.data import Windows
    from lstm_trainer.outputs.results import Results

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# Test this checkout's package even where another one is installed in editable mode.
sys.path.insert(0, str(SRC))
# The datasets cache of a test session (files read by the tests, and what train.py runs read)
# lives and dies with the session, not in ~/.cache. Set before `datasets` is first imported.
_DATASETS_CACHE = tempfile.TemporaryDirectory(prefix="lstm_trainer_tests_datasets_")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE.name
# One compute thread per process, in this process and its children, as `accelerate launch`
# gives each CPU process. On a 2-core machine shared with other work, two OpenMP threads
# that spin-wait for each other made a 16-step epoch take 40 s instead of 0.5 s.
os.environ["OMP_NUM_THREADS"] = "1"
# Children get an empty HF_HOME too: a developer's own `accelerate config` default or Hub
# login must not change what a test launches.
_HF_HOME = tempfile.TemporaryDirectory(prefix="lstm_trainer_tests_hf_home_")

# Small enough for seconds per run, big enough that the model beats persistence.
TINY = [
    "--num_train_samples",
    "2048",
    "--num_val_samples",
    "512",
    "--num_train_epochs",
    "3",
    "--num_warmup_steps",
    "10",
    "--learning_rate",
    "3e-3",
    "--hidden_size",
    "32",
]


def train_in_process(args: list[str]) -> Results:
    """The real trainer, called as `train.py` would call it, in this process (one process).

    Seconds instead of the ~10 s a fresh interpreter spends importing torch, Accelerate and
    DeepSpeed. A user error raises `UserError`, as it does before `train.py` prints it.
    """
    from lstm_trainer.cli.train import parse_config
    from lstm_trainer.train.trainer import run

    os.environ.setdefault("WANDB_MODE", "offline")
    return run(parse_config(args))


def made_results(**changes: Any) -> Results:
    """A `Results` made by hand, for code that reads one (pictures, model card) without a run:
    three epochs on the synthetic sine, validation scores only; `changes` replaces fields."""
    from lstm_trainer.config import Plan
    from lstm_trainer.evaluate import Scores
    from lstm_trainer.evaluate.scoring import ForecastScores, RunScores, SplitScores
    from lstm_trainer.outputs.cost import Cost, RunTimings
    from lstm_trainer.outputs.results import EngineSettings, Results

    validation = SplitScores(
        model=ForecastScores(Scores(0.015, 0.1, 0.8)),
        persistence=ForecastScores(Scores(0.02, 0.11, 1.0)),
        linear=ForecastScores(Scores(0.016, 0.1, 0.82)),
        seasonal_naive=None,
    )
    made = Results(
        train_loss_history=[0.3, 0.05, 0.02],
        val_mse_history=[0.04, 0.015, 0.016],
        initial_val_mse=0.5,
        best_val_mse=0.015,
        logged_train_losses=[[16, 0.05], [32, 0.02]],
        optimizer_steps=48,
        stopped_early=False,
        stopped_at_max_steps=False,
        train_seconds=1.0,
        scores=RunScores(validation, None, 0.1, None),
        noise_floor=0.01,
        world_size=1,
        plan=Plan({"zero_optimization": {"stage": 2}}, 32, 128, 4, "no", 2, 48, "accelerate_configs/ds_zero2.json"),
        cost=Cost(RunTimings(), 1, [500.0]),
        deepspeed=EngineSettings(2, "none", "none", 1.0, "Adam"),
    )
    return dataclasses.replace(made, **changes)


def child_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))
    }
    # PYTHONFAULTHANDLER: a process killed by a signal (SIGABRT, SIGSEGV) still prints its Python stacks.
    env.update(
        PYTHONPATH=str(SRC), WANDB_MODE="offline", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1", HF_HOME=_HF_HOME.name
    )
    env.update(extra)  # a test may override the defaults, e.g. WANDB_MODE
    return env


def run_train(
    args: list[str], launcher: list[str] | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run train.py for real: `launcher` is e.g. ["accelerate", "launch", "--num_processes", "2"]; `env` over child_env's."""
    prefix = launcher or [sys.executable]
    if launcher and launcher[0] == "accelerate":
        # The console script beside this interpreter, as a user would type it.
        prefix = [str(Path(sys.executable).parent / "accelerate"), *launcher[1:]]
        if "--main_process_port" not in launcher:
            # Accelerate's default port is fixed (29500): two launches at once would collide.
            prefix[2:2] = ["--main_process_port", str(free_port())]
    return subprocess.run(
        [*prefix, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=child_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def output(proc: subprocess.CompletedProcess[str]) -> str:
    """All a launch printed, every rank's lines included, for an assertion message.

    Not a tail: under a launcher the failing rank's own message comes first and the
    launcher's report of it after, so a tail shows only the launcher's side.
    """
    return f"exit code {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


def hub_client(env: dict[str, str], script: str) -> dict[str, Any]:
    """Run `script` with the real Hub clients in a fresh interpreter (they read HF_ENDPOINT once,
    at import); it prints one JSON line as its last output, which is returned."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, output(done)
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def results(output_dir: Path) -> dict[str, Any]:
    return json.loads((Path(output_dir) / "all_results.json").read_text())


@pytest.fixture(autouse=True)
def _log_handlers_write_to_this_tests_stderr() -> None:
    """A library's StreamHandler (DeepSpeed's, made at its first import) keeps the sys.stderr of that
    moment: under pytest, the capture of whichever test imported it, closed when that test ended.
    Pointed at this test's stderr, a warning it logs lands in this test's output, not in an error."""
    import logging

    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler and getattr(handler.stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it flushes the closed one first


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def every(windows: Windows, normalised: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every window of a split at once, inputs [N, T] and targets [N] or [N, H]: small splits only."""
    import numpy as np

    return windows.gather(np.arange(len(windows), dtype=np.int64), normalised)


def persistence_mse(windows: Windows) -> float:
    """'Next value = last value' over every window of a split, in data units: as the run scores it."""
    from lstm_trainer.evaluate import persistence, score

    inputs, targets = every(windows)
    return score(persistence(inputs, windows.horizon), targets, scale=1.0).mse
