"""Nothing the user had is lost: a folder is replaced or written into only where lstm-trainer's marker says
it wrote it, a finished run only with --overwrite_output_dir or --resume_from_checkpoint, and a run that fails
its checks leaves nothing behind (no lock, no run_config.json, no parent folders) and an earlier run as it was.

Real folders, real commands: the exit code cases run train.py as a subprocess (it stops before torch loads,
so each takes about a second); the rest call the same code in-process.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SRC, TINY, child_env, output, train_in_process

from lstm_trainer.cli.data import main as data_main
from lstm_trainer.cli.train import parse_config
from lstm_trainer.errors import UserError
from lstm_trainer.files import MARKER, check_replaceable, read_marker, replace_dir, write_marker
from lstm_trainer.outputs.output_dir import LOCK, RUN_FILES, claim
from lstm_trainer.train.preflight import preflight

ONE_EPOCH = [*TINY, "--num_train_epochs", "1"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` with a hash of its bytes: equal snapshots, nothing changed."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def train_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, env=child_env(), capture_output=True, text=True
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), output(done)
    assert "Traceback" not in done.stderr
    return lines[0]


# -- files.py: the marker and the check ------------------------------------------------------------------------


def test_a_missing_or_empty_folder_passes_and_a_file_or_a_users_folder_does_not(tmp_path: Path) -> None:
    check_replaceable(tmp_path / "new", "--output_dir")
    (tmp_path / "empty").mkdir()
    check_replaceable(tmp_path / "empty", "--output_dir")
    (tmp_path / "file").write_text("mine")
    with pytest.raises(UserError, match=r"--output_dir .*file is a file, not a folder"):
        check_replaceable(tmp_path / "file", "--output_dir")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"holds files lstm-trainer did not write \(such as notes.txt\)"):
        check_replaceable(mine, "--output_dir")
    assert (mine / "notes.txt").read_text() == "mine"


def test_replace_dir_marks_what_it_wrote_and_refuses_a_folder_with_a_users_file(tmp_path: Path) -> None:
    target = tmp_path / "saved"
    with replace_dir(target, "model") as tmp:
        (tmp / "config.json").write_text("{}")
    marker = read_marker(target)
    assert marker == {"written_by": "lstm-trainer", "kind": "model", "files": ["config.json"]}
    with replace_dir(target, "model") as tmp:  # ours: replaced whole
        (tmp / "weights").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == [MARKER, "weights"]
    (target / "notes.txt").write_text("mine")
    before = snapshot(target)
    with (
        pytest.raises(UserError, match=r"holds notes.txt, which lstm-trainer did not write"),
        replace_dir(target, "model"),
    ):
        raise AssertionError("never reached: the check comes before the temporary folder")
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]  # no temporary sibling left
    (target / "notes.txt").unlink()
    with pytest.raises(UserError, match=r"holds a model folder lstm-trainer wrote, not a dataset folder"):
        check_replaceable(target, "--output_dir", "dataset")


def test_a_replace_cut_short_leaves_names_the_next_check_knows_as_ours(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "model").mkdir()
    (run / ".model.tmp-4242").mkdir()  # a killed replace_dir's sibling
    (run / MARKER).write_text(json.dumps({"written_by": "lstm-trainer", "kind": "run", "files": ["model"]}))
    check_replaceable(run, "--output_dir", "run")
    (run / ".notes.tmp-1").write_text("")  # looks like a leftover, of a name the marker does not list
    with pytest.raises(UserError, match=r"holds .notes.tmp-1"):
        check_replaceable(run, "--output_dir")


def test_a_marker_someone_else_wrote_is_no_marker(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1\n")
    (tmp_path / MARKER).write_text(json.dumps({"kind": "run", "files": ["x.csv"]}))
    with pytest.raises(UserError, match=r"did not write"):
        check_replaceable(tmp_path, "--output_dir")


# -- train.py ---------------------------------------------------------------------------------------------------


def test_train_into_a_copy_of_the_package_deletes_nothing(tmp_path: Path) -> None:
    copy = tmp_path / "lstm_trainer"
    shutil.copytree(SRC / "lstm_trainer", copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(SRC / "lstm_trainer" / "model", copy / "model", dirs_exist_ok=True)
    before = snapshot(copy)
    line = one_error_line(train_cli([*ONE_EPOCH, "--output_dir", str(copy)]))
    assert "did not write" in line and str(copy) in line
    assert snapshot(copy) == before
    # --overwrite_output_dir does not make a user's folder the project's.
    line = one_error_line(train_cli([*ONE_EPOCH, "--output_dir", str(copy), "--overwrite_output_dir"]))
    assert "did not write" in line
    assert snapshot(copy) == before


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    train_in_process([*ONE_EPOCH, "--output_dir", str(out)])
    return out


def test_a_runs_folder_lists_every_name_it_holds(finished: Path) -> None:
    marker = read_marker(finished)
    assert marker is not None and marker["kind"] == "run" and list(marker["files"]) == sorted(RUN_FILES)
    check_replaceable(finished, "--output_dir", "run")
    for name, kind in (("model", "model"), ("best", "model"), ("checkpoints", "checkpoints")):
        check_replaceable(finished / name, "--output_dir's", kind)
    for step in (finished / "checkpoints").glob("step-*"):
        check_replaceable(step, "checkpoint", "checkpoint")


def test_a_finished_run_is_not_written_again_without_a_flag(finished: Path) -> None:
    before = snapshot(finished)
    line = one_error_line(train_cli([*ONE_EPOCH, "--output_dir", str(finished), "--seed", "7"]))
    assert line == (
        f"error: --output_dir {finished} holds a finished run; continue it with --resume_from_checkpoint latest, "
        "replace it with --overwrite_output_dir, or pick another --output_dir (nothing was changed)"
    )
    assert snapshot(finished) == before


def test_a_users_file_in_a_runs_folder_is_named_even_with_overwrite(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "model" / "my_notes.md").write_text("mine")
    before = snapshot(run)
    config = parse_config([*ONE_EPOCH, "--output_dir", str(run), "--overwrite_output_dir"])
    with pytest.raises(UserError, match=r"--output_dir's .*model holds my_notes.md, which lstm-trainer did not"):
        preflight(config)
    assert snapshot(run) == before


def test_a_refused_resume_leaves_the_earlier_run_byte_for_byte(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    changed = [*ONE_EPOCH, "--output_dir", str(run), "--resume_from_checkpoint", "latest", "--hidden_size", "16"]
    with pytest.raises(UserError, match=r"was trained with other settings \(--hidden_size 32 -> 16\)"):
        train_in_process(changed)
    assert snapshot(run) == before


def test_a_run_that_fails_its_checks_leaves_an_earlier_run_and_its_lock_as_they_were(
    finished: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    bad_data = [*ONE_EPOCH, "--output_dir", str(run), "--overwrite_output_dir", "--dataset", str(tmp_path / "no.csv")]
    with pytest.raises(UserError, match=r"no.csv"):
        train_in_process(bad_data)
    assert snapshot(run) == before


def test_overwrite_output_dir_replaces_the_run_and_keeps_no_stale_checkpoint(finished: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    stale = run / "checkpoints" / "step-9999999"
    shutil.copytree(next((run / "checkpoints").glob("step-*")), stale)
    write_marker(run / "checkpoints", "checkpoints")  # as an earlier run with more steps left it
    train_in_process([*ONE_EPOCH, "--output_dir", str(run), "--overwrite_output_dir", "--seed", "3"])
    assert not stale.exists()
    assert json.loads((run / "run_config.json").read_text())["config"]["train"]["seed"] == 3
    check_replaceable(run, "--output_dir", "run")


def test_a_failed_run_in_a_new_nested_folder_leaves_no_trace(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "c"
    with pytest.raises(UserError, match=r"missing.csv"):
        train_in_process([*ONE_EPOCH, "--output_dir", str(nested), "--dataset", str(tmp_path / "missing.csv")])
    assert list(tmp_path.iterdir()) == []


def test_a_lock_an_earlier_run_left_gets_its_text_back(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text('{"pid": 1, "host": "there", "started": "then"}\n')
    (out / MARKER).write_text(json.dumps({"written_by": "lstm-trainer", "kind": "run", "files": [LOCK]}))
    before = snapshot(out)
    claim(str(out)).release()
    assert snapshot(out) == before


# -- the API and data build --------------------------------------------------------------------------------------


def frame(n: int = 120) -> pd.DataFrame:
    return pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=n, freq="D"), "y": np.sin(np.arange(n) / 4)}
    )


def test_forecaster_save_never_wipes_a_users_folder(tmp_path: Path) -> None:
    from lstm_trainer.api import Forecaster

    model = Forecaster(seq_length=8, horizon=2, num_train_epochs=1, hidden_size=8, output_dir=str(tmp_path / "run"))
    model.fit(frame())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    before = snapshot(mine)
    with pytest.raises(UserError, match=r"save: path .*mine holds files lstm-trainer did not write"):
        model.save(mine)
    assert snapshot(mine) == before
    saved = model.save(tmp_path / "saved")
    model.save(saved)  # a folder save wrote is replaced
    assert (read_marker(saved) or {})["kind"] == "model"
    with pytest.raises(UserError, match=r"holds a finished run"):  # fit again into the same folder
        Forecaster(seq_length=8, horizon=2, num_train_epochs=1, output_dir=str(tmp_path / "run")).fit(frame())


def test_a_fit_that_fails_its_checks_leaves_no_file_behind(tmp_path: Path) -> None:
    from lstm_trainer.api import Forecaster

    out = tmp_path / "new" / "run"
    short = frame(5)  # too short for a window of 8
    with pytest.raises(UserError):
        Forecaster(seq_length=8, horizon=2, num_train_epochs=1, output_dir=str(out)).fit(short)
    assert list(tmp_path.iterdir()) == []


def test_data_build_replaces_its_own_folder_and_never_a_users_dataset(tmp_path: Path, capsys) -> None:
    out = tmp_path / "data"
    args = ["build", "--output_dir", str(out), "--num_train_samples", "256", "--num_val_samples", "64"]
    assert data_main(args) == 0
    assert data_main(args) == 0  # its own: replaced
    assert (read_marker(out) or {})["kind"] == "dataset"
    (out / "extra.txt").write_text("mine")
    before = snapshot(out)
    capsys.readouterr()
    assert data_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds extra.txt, which lstm-trainer did not write" in err[0]
    assert snapshot(out) == before
