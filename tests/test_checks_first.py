"""Every check before the first write: predict, backtest and data build refuse a bad output place before any
work, in one line (exit 2), and a command with several outputs writes all of them or none.

In-process through each command's own `main` (a subprocess per case is slow here), and once as a subprocess
where the exit code and the absence of a traceback are the point.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY, child_env, output, train_in_process

from lstm_trainer.cli.backtest import main as backtest_main
from lstm_trainer.cli.data import main as data_main
from lstm_trainer.cli.predict import main as predict_main
from lstm_trainer.files import MARKER


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("checks_first") / "run"
    train_in_process([*TINY, "--output_dir", str(out), "--num_train_epochs", "1", "--seq_length", "12"])
    return out / "model"


@pytest.fixture
def series(tmp_path: Path) -> Path:
    path = tmp_path / "inputs" / "series.csv"
    path.parent.mkdir()
    pd.DataFrame({"id": np.repeat(["a", "b"], 60), "y": np.sin(np.arange(120) / 5)}).to_csv(path, index=False)
    return path


def call(main, args: list[str]) -> tuple[int, list[str]]:
    """A command's exit code and its stderr lines, run in this process."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args)
    return code, err.getvalue().strip().splitlines()


def refused(main, args: list[str], message: str) -> None:
    code, lines = call(main, args)
    # datasets' "Generating train split" progress lines may come first, where a table was read.
    errors = [line for line in lines if line.strip() and not line.startswith("Generating ")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], lines


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--output", "{tmp}/inputs"], "--output {tmp}/inputs is a folder; give a file name inside it"),
        (["--output", "{tmp}/nowhere/f.csv"], "the folder {tmp}/nowhere does not exist; create it first"),
        (
            ["--output", "{tmp}/f.xlsx"],
            "--output {tmp}/f.xlsx: '.xlsx' is not a format written here; end the name in .csv",
        ),
        (["--plot", "{tmp}/p.bmp"], "--plot {tmp}/p.bmp: '.bmp' is not a format written here"),
        (["--plot", "{tmp}/nowhere/p.png"], "the folder {tmp}/nowhere does not exist"),
        (["--plot", "{tmp}/f.csv"], "--plot {tmp}/f.csv: '.csv' is not a format written here"),
        (["--horizon", "100000000"], "--horizon 100000000 is more than 10,000 steps"),
        (["--actuals", "{tmp}/inputs/series.csv"], "--actuals scores many series"),
        (["--id_column", "id", "--plot", "{tmp}/p.png"], "--plot draws one series"),
        (["--quantiles", "0.5", "0.5"], "--quantiles names 0.5 twice"),
    ],
)
def test_predict_refuses_before_it_writes(
    model: Path, series: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = ["--model", str(model), "--input", str(series), "--data_column", "y", "--output", f"{tmp_path}/f.csv"]
    refused(predict_main, [*args, *(a.format(tmp=tmp_path) for a in extra)], message.format(tmp=tmp_path))
    assert files_under(tmp_path) == ["inputs", "inputs/series.csv"]


def test_predict_writes_the_forecast_and_its_scores_or_neither(model: Path, series: Path, tmp_path: Path) -> None:
    (tmp_path / "actuals.csv").write_text("id,y\na,1.0\na,0.9\n")  # b has no future: found after the forecast
    args = ["--model", str(model), "--input", str(series), "--id_column", "id", "--data_column", "y", "--horizon", "1"]
    args += ["--output", str(tmp_path / "f.csv"), "--actuals", str(tmp_path / "actuals.csv")]
    refused(predict_main, args, "has no values for 1 series forecast (e.g. 'b')")
    assert files_under(tmp_path) == ["actuals.csv", "inputs", "inputs/series.csv"]
    (tmp_path / "actuals.csv").write_text("id,y\na,1.0\na,0.9\nb,0.5\nb,0.4\n")
    code, _ = call(predict_main, args)
    assert code == 0 and (tmp_path / "f.csv").is_file() and (tmp_path / "f.scores.csv").is_file()


def test_predict_with_a_plot_writes_both(model: Path, series: Path, tmp_path: Path) -> None:
    args = ["--model", str(model), "--input", str(series), "--data_column", "y", "--horizon", "3"]
    code, _ = call(predict_main, [*args, "--output", str(tmp_path / "f.csv"), "--plot", str(tmp_path / "f.svg")])
    assert code == 0 and (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml")
    assert files_under(tmp_path) == ["f.csv", "f.svg", "inputs", "inputs/series.csv"]  # no temporary file left


def test_the_horizon_cap_answers_in_seconds(model: Path, series: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    args = ["--model", str(model), "--input", str(series), "--data_column", "y", "--horizon", "10000"]
    code, _ = call(predict_main, [*args, "--output", str(tmp_path / "f.csv")])
    assert code == 0 and len((tmp_path / "f.csv").read_text().splitlines()) == 10_001
    assert time.perf_counter() - started < 60  # measured: about 2 s on one core


def test_predict_into_a_folder_is_one_line_and_exit_2_as_a_user_runs_it(model: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lstm_trainer.cli.predict",
            "--model",
            str(model),
            "--input",
            "x.csv",
            "--output",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, output(done)
    assert done.stderr.strip().splitlines() == [
        f"error: --output {tmp_path} is a folder; give a file name inside it, such as {tmp_path / 'out.csv'}"
    ]


BACKTEST = ["--num_train_samples", "2048", "--num_val_samples", "512"]


def test_backtest_refuses_its_output_dir_before_it_runs(model: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    args = ["--model", str(model), *BACKTEST]
    refused(backtest_main, [*args, "--output_dir", str(tmp_path / "file")], "is a file, not a folder")
    refused(backtest_main, [*args, "--output_dir", str(tmp_path / "file" / "bt")], "is a file, not a folder")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("mine")
    refused(backtest_main, [*args, "--output_dir", str(mine)], "holds files lstm-trainer did not write")
    assert files_under(tmp_path) == ["file", "mine", "mine/notes.md"]
    assert (tmp_path / "file").read_text() == "mine"
    bt = tmp_path / "bt"
    for _ in range(2):  # its own folder it replaces whole
        assert call(backtest_main, [*args, "--output_dir", str(bt)])[0] == 0
    assert files_under(bt) == sorted([MARKER, "backtest.json", "backtest.md", "backtest.png"])


def test_data_build_refuses_an_unwritable_place_before_reading(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    refused(data_main, ["build", "--output_dir", str(tmp_path / "file" / "data")], "is a file, not a folder")
    refused(data_main, ["build", "--output_dir", str(tmp_path / "file")], "is a file, not a folder")
    assert files_under(tmp_path) == ["file"]
