"""One tracked run across a resume: the same W&B run id and TensorBoard folder, steps without overlap.

Offline W&B writes a folder per launch; both hold the same run id, which `wandb sync` joins
into one run. Read back with W&B's own reader (`wandb leet inspect`) and TensorBoard's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import TINY, train_in_process
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# 4 optimizer steps an epoch, every step logged, 3 epochs; the first launch stops at step 6.
ARGS = [
    *TINY,
    "--num_train_samples",
    "512",
    "--num_val_samples",
    "256",
    "--total_batch_size",
    "128",
    "--logging_steps",
    "1",
    "--report_to",
    "all",
]


def wandb_records(run_dir: Path) -> list[dict[str, Any]]:
    cli = Path(sys.executable).parent / "wandb"
    done = subprocess.run(
        [str(cli), "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_a_resumed_run_continues_the_same_wandb_run_and_tensorboard_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train_in_process([*ARGS, "--output_dir", str(out), "--max_train_steps", "6"])
    assert first.stopped_at_max_steps and first.optimizer_steps == 6
    state = json.loads((out / "checkpoints" / "step-0000006" / "trainer_state.json").read_text())
    kept = state["trackers"]
    assert kept.keys() == {"wandb_run_id", "tensorboard_run"}

    second = train_in_process([*ARGS, "--output_dir", str(out), "--resume_from_checkpoint", "latest"])
    assert second.optimizer_steps == 12

    runs = sorted(p for p in (out / "wandb").glob("offline-run-*") if p.is_dir())
    assert len(runs) == 2, runs  # one folder per launch
    ids, steps = [], []
    for run in runs:
        records = wandb_records(run)
        ids += [r["run"]["run_id"] for r in records if r["type"] == "run"]
        steps.append([r["history"]["step"]["num"] for r in records if r["type"] == "history"])
    assert ids == [kept["wandb_run_id"]] * 2
    assert steps[0] == list(range(1, 7)) and steps[1] == list(range(7, 13)), steps  # no step twice

    folders = [p for p in (out / "tensorboard").iterdir() if p.is_dir()]
    assert [p.name for p in folders] == [kept["tensorboard_run"]]
    events = EventAccumulator(str(folders[0]))
    events.Reload()
    logged = [e.step for e in events.Scalars("train/loss")]
    assert logged == list(range(1, 13)), logged
