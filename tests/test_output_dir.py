"""One run per output_dir: the lock, and the checks made before anything heavy loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, child_env, output, results, run_train

from lstm_trainer.errors import UserError
from lstm_trainer.files import MARKER
from lstm_trainer.outputs.output_dir import LOCK, claim


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder` with its size and modification time, to show nothing changed."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_a_second_claim_names_the_holder_and_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    held = claim(str(out))
    (out / "all_results.json").write_text("{}")
    before = tree(out)
    with pytest.raises(
        UserError, match=rf"--output_dir {out} is in use by another run \(pid {os.getpid()} on .*, started "
    ):
        claim(str(out))
    assert tree(out) == before
    held.release()
    claim(str(out)).release()  # free again once released


def test_a_folder_the_run_made_and_never_used_is_removed_on_release(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    claim(str(fresh)).release()
    assert not fresh.exists()
    used = tmp_path / "used"
    lock = claim(str(used))
    lock.start(replace_earlier=True)
    (used / "run_config.json").write_text("{}")
    lock.release()
    assert sorted(p.name for p in used.iterdir()) == sorted([MARKER, LOCK, "run_config.json"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file", "is a file, not a folder"),
        (lambda tmp: (tmp / "file").write_text("x") and tmp / "file" / "sub", "cannot be created (Not a directory)"),
    ],
)
def test_an_output_dir_that_cannot_be_written_stops_before_torch_loads(make, message: str, tmp_path: Path) -> None:
    out = make(tmp_path)
    script = (
        "import sys; from lstm_trainer.cli.train import main; code = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported first'; sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "--output_dir", str(out)], env=child_env(), capture_output=True, text=True
    )
    assert done.returncode == 2, output(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --output_dir {out} {message}; "), output(done)


def test_a_model_too_big_for_the_machine_is_one_line(tmp_path: Path) -> None:
    done = run_train(["--hidden_size", "1000000000", "--output_dir", str(tmp_path / "out")])
    assert done.returncode == 2, output(done)
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("error: --hidden_size 1000000000 x --num_layers 2 is 1.2e+19 parameters")
    )
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.e2e
def test_two_runs_on_one_output_dir_and_a_killed_holder(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    args = [*TINY, "--num_train_epochs", "50", "--output_dir", str(out), "--checkpointing_steps", "2"]
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoints" / "latest").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first run never saved a checkpoint"
            time.sleep(0.05)
        holder = json.loads((out / LOCK).read_text())
        assert holder["pid"] == first.pid
        second = run_train([*TINY, "--output_dir", str(out), "--seed", "2"])
        assert second.returncode == 2, output(second)
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"is in use by another run (pid {first.pid} on" in lines[0], output(second)
        # The second run deleted none of the first's checkpoints, even a save in progress.
        assert first.poll() is None
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # as a crash or power cut would
        first.wait()
    # The dead run's lock file is still there and blocks nothing.
    assert (out / LOCK).is_file()
    resumed = run_train(
        [
            *TINY,
            "--num_train_epochs",
            "1",
            "--output_dir",
            str(out),
            "--checkpointing_steps",
            "2",
            "--resume_from_checkpoint",
            "latest",
            "--num_train_epochs",
            "50",
            "--max_train_steps",
            "20",
        ]
    )
    assert resumed.returncode == 0, output(resumed)
    assert results(out)["optimizer_steps"] == 20
