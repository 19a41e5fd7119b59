"""Every value in range or refused in one line: NaN and infinity in every float flag and API argument, values of
the wrong type from Python, duplicated columns and quantiles, a season longer than what it is measured on; and
messages in the user's terms (the line of a JSON Lines file, the separator of a one-column CSV)."""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, child_env, output

from lstm_trainer.cli.data import main as data_main
from lstm_trainer.cli.train import parse_config
from lstm_trainer.config import DataConfig, ModelConfig, TrainConfig, config_fields
from lstm_trainer.errors import UserError

FLOAT_FLAGS = [
    f.name for cls in (DataConfig, ModelConfig, TrainConfig) for f in config_fields(cls) if str(f.type) == "float"
]


def test_there_are_float_flags_to_check() -> None:
    assert {"learning_rate", "noise_std", "dropout", "val_fraction", "weight_decay"} <= set(FLOAT_FLAGS)


@pytest.mark.parametrize("flag", FLOAT_FLAGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_infinity_are_refused_in_every_float_flag(flag: str, value: str) -> None:
    with pytest.raises(UserError, match=rf"^--{flag} must be a finite number, got {value}$"):
        parse_config([f"--{flag}={value}"])


def test_quantiles_nan_is_refused() -> None:
    with pytest.raises(UserError, match=r"^each value of --quantiles must be a finite number, got nan$"):
        parse_config(["--quantiles", "0.1", "nan"])


def test_train_py_learning_rate_nan_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--learning_rate", "nan"],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: --learning_rate must be a finite number, got nan"
    ], output(done)


@pytest.mark.parametrize(
    ("cls", "changes", "message"),
    [
        (DataConfig, {"seq_length": "12"}, "--seq_length must be a whole number, got '12'"),
        (DataConfig, {"seq_length": 12.0}, "--seq_length must be a whole number, got 12.0"),
        (DataConfig, {"deseasonalize": "yes"}, "--deseasonalize must be True or False, got 'yes'"),
        (DataConfig, {"data_column": ["y", 3]}, "each value of --data_column must be a string, got 3"),
        (ModelConfig, {"quantiles": 0.5}, "--quantiles must be a list of numbers, got 0.5"),
        (ModelConfig, {"quantiles": ()}, "--quantiles must be a list of numbers, got ()"),
        (ModelConfig, {"hidden_size": True}, "--hidden_size must be a whole number, got True"),
        (TrainConfig, {"learning_rate": math.nan}, "--learning_rate must be a finite number, got nan"),
        (TrainConfig, {"output_dir": Path("x")}, "--output_dir must be a string, got PosixPath('x')"),
    ],
)
def test_python_values_of_the_wrong_type_are_one_line(cls: type, changes: dict, message: str) -> None:
    with pytest.raises(UserError) as err:
        cls(**changes)
    assert str(err.value) == message


def test_numpy_numbers_are_numbers() -> None:
    assert DataConfig(seq_length=np.int64(12)).seq_length == 12
    assert TrainConfig(learning_rate=np.float32(1e-3)).learning_rate == pytest.approx(1e-3)


def test_every_config_field_has_a_type_the_check_knows() -> None:
    known = {"bool", "float", "int", "str", "str | None", "int | None", "list[str] | None", "tuple[float, ...] | None"}
    for cls in (DataConfig, ModelConfig, TrainConfig):
        assert {str(f.type) for f in fields(cls) if f.metadata.get("flag", True)} <= known, cls


# -- files, through the data command (the loader train.py, backtest and predict share) ------------------------


def build(tmp_path: Path, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = data_main(["build", "--output_dir", str(tmp_path / "out"), *args])
    said = (out.getvalue() + err.getvalue()).splitlines()
    lines = [line for line in said if line.startswith(("error:", "note:"))]
    return code, lines[-1] if lines else ""


def sine(n: int = 300) -> np.ndarray:
    return np.sin(np.arange(n) / 5.0)


def test_a_header_with_a_column_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("t,y,y\n" + "".join(f"{i},{v},{i}\n" for i, v in enumerate(sine())))
    code, line = build(tmp_path, "--dataset", str(path), "--data_column", "y")
    assert (
        code == 2
        and line == f"error: {path}: the header names column 'y' twice; rename one, so that it is clear which is meant"
    )
    assert not (tmp_path / "out").exists()


def test_a_semicolon_file_names_its_separator(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("t;y\n" + "".join(f"{i};{v}\n" for i, v in enumerate(sine())))
    code, line = build(tmp_path, "--dataset", str(path))
    assert code == 2 and "is one column: the file is separated by ';'" in line and "__index_level_0__" not in line


def test_a_bad_json_line_is_named_as_an_editor_numbers_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [f'{{"y": {v}}}' for v in sine(100)]
    lines[50] = '{"y": oops}'  # the 51st line
    path.write_text("\n".join(lines) + "\n")
    code, line = build(tmp_path, "--dataset", str(path))
    assert code == 2 and line == f"error: {path}: line 51 is not valid JSON; fix that line (one JSON object a line)"


def test_deseasonalize_on_data_with_zeros_or_negatives_says_so(tmp_path: Path) -> None:
    path = tmp_path / "signed.csv"
    pd.DataFrame({"y": sine()}).to_csv(path, index=False)
    args = ["--dataset", str(path), "--season", "12", "--seq_length", "24", "--deseasonalize"]
    code, line = build(tmp_path, *args)
    assert code == 0 and line.startswith("note: --deseasonalize left 1 of 1 series unadjusted: their train part")
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "out"))["train"].num_rows == 1


# -- the API ---------------------------------------------------------------------------------------------------


def frame(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=n, freq="D"), "y": sine(n)})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: pd.concat([df, df[["y"]]], axis=1), "df has two columns named 'y'; rename one"),
        (
            lambda df: df.astype({"y": object}).assign(y=lambda d: d.y.where(d.index != 5, "oops")),
            "df column 'y' holds 'oops' at index 5, not a number",
        ),
        (
            lambda df: df.astype({"unique_id": object}).assign(unique_id=lambda d: d.unique_id.where(d.index >= 30, 1)),
            "df column 'unique_id' (id_col) mixes int and str ids",
        ),
        (lambda df: pd.concat([df, df.iloc[:3]]), "id_col 'unique_id') has time '2024-01-01 00:00:00' twice"),
    ],
)
def test_a_bad_frame_is_one_line_in_the_apis_words_and_leaves_nothing(tmp_path: Path, change, message: str) -> None:
    from lstm_trainer.api import Forecaster

    out = tmp_path / "run"
    with pytest.raises(UserError) as err:
        Forecaster(seq_length=8, horizon=2, num_train_epochs=1, output_dir=str(out)).fit(change(frame()))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "--" not in str(err.value) and "fit_data.parquet" not in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("h", [0, 10_001, 10**7, 2.5, "3", True])
def test_predict_h_is_bounded_and_whole(h: object, tmp_path: Path) -> None:
    from lstm_trainer.api import Forecaster

    model = Forecaster(output_dir=str(tmp_path / "run"))
    model.model_dir = tmp_path  # not reached: h is checked first
    with pytest.raises(UserError, match=r"^h must be a whole number of steps from 1 to 10,000, got "):
        model.predict(h=h)  # type: ignore[arg-type]
