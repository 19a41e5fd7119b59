"""Every bad --dataset input: one line naming the file, column or row; exit code 2; nothing written.

Checked through the data command in-process (the same loading code train.py runs), and
through the real train.py for two of them. Hub errors are in test_data_hub.py.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_train

from lstm_trainer.cli.data import main as data_main

GOOD = pd.DataFrame(
    {
        "date": pd.date_range("2024-01-01", periods=400, freq="h").strftime("%Y-%m-%dT%H:%M"),
        "open": np.sin(np.arange(400) / 5.0),
        "close": np.cos(np.arange(400) / 5.0),
    }
)


def files(folder: Path) -> dict[str, Path]:
    """One file per kind of mistake."""
    good = folder / "good.csv"
    GOOD.to_csv(good, index=False)
    words = GOOD.astype({"close": object})
    words.loc[41, "close"] = "n/a?"  # row 42 of the data
    words.to_csv(folder / "words.csv", index=False)
    holes = GOOD.copy()
    holes.loc[[4, 9], "close"] = np.nan
    holes.loc[300, "close"] = np.inf
    holes.to_csv(folder / "holes.csv", index=False)
    twice = GOOD.copy()
    twice.loc[7, "date"] = twice.loc[3, "date"]
    twice.to_csv(folder / "twice.csv", index=False)
    GOOD.iloc[:100].to_json(folder / "short.jsonl", orient="records", lines=True)
    (folder / "empty.csv").write_text("")
    (folder / "header_only.csv").write_text("date,open,close\n")
    (folder / "prices.xlsx").write_text("not a spreadsheet")
    long = pd.DataFrame(
        {
            "store": np.repeat(["north", "south"], 200),
            "date": list(GOOD["date"][:200]) * 2,
            "sales": np.r_[np.sin(np.arange(200) / 5.0), np.cos(np.arange(200) / 5.0)],
        }
    )
    long.assign(row=np.arange(400)).to_csv(folder / "long.csv", index=False)
    gap = long.copy()
    gap.loc[250, "sales"] = np.nan  # south's 51st value, row 251 of the file
    gap.to_csv(folder / "long_gap.csv", index=False)
    repeated = long.copy()
    repeated.loc[210, "date"] = repeated.loc[205, "date"]  # south, twice at 2024-01-01T05:00
    repeated.to_csv(folder / "long_twice.csv", index=False)

    (folder / "notes").mkdir()
    (folder / "notes" / "readme.txt").write_text("hello")
    return {"good": good}


CASES = [
    (["--dataset", "{d}/missing.csv"], "missing.csv: no such file or folder"),
    (["--dataset", "{d}/prices.xlsx"], "prices.xlsx: unknown format '.xlsx'; give a .csv, .parquet or .jsonl file"),
    (["--dataset", "{d}/notes"], "notes: is a folder but not one written by save_to_disk"),
    (["--dataset", "{d}/empty.csv"], "empty.csv is empty"),
    (["--dataset", "{d}/header_only.csv"], "header_only.csv has no rows"),
    (
        ["--dataset", "{d}/good.csv", "--data_column", "price"],
        "good.csv has no column 'price' (--data_column); its columns are: date, open, close",
    ),
    (
        ["--dataset", "{d}/holes.csv", "--data_column", "open", "close"],
        "holes.csv: series 'close': column 'close' has 2 missing (empty or NaN) and 1 infinite values, at rows 5, 10, 301",
    ),
    (
        ["--dataset", "{d}/long.csv", "--id_column", "row", "--data_column", "sales"],
        "long.csv: --id_column 'row' has a different value on each of its 400 rows, so every series would be one point long",
    ),
    (
        ["--dataset", "{d}/long_gap.csv", "--id_column", "store", "--time_column", "date"],
        "long_gap.csv: series 'south': column 'sales' has 1 missing (empty or NaN) value, at row 251; repair them with "
        "--fill_missing ffill|interpolate|drop",
    ),
    (
        ["--dataset", "{d}/long_twice.csv", "--id_column", "store", "--time_column", "date"],
        "long_twice.csv: series 'south' (--id_column 'store') has time '2024-01-01T05:00' twice (rows 206 and 211)",
    ),
    (
        ["--dataset", "{d}/long.csv", "--id_column", "store", "--data_column", "sales", "--horizon", "40"],
        "long.csv: every one of its 2 series is too short for --val_fraction 0.15 / --test_fraction 0.15 and "
        "--horizon 40 (the longest has 200 values; each split needs 40, and training 41)",
    ),
    (
        ["--dataset", "{d}/long.csv", "--id_column", "store", "--data_column", "sales", "row"],
        "--id_column store holds a long table, one value column; --data_column names 2 (sales row)",
    ),
    (
        ["--dataset", "{d}/good.csv", "--data_column", "date"],
        "column 'date' row 1 holds '2024-01-01T00:00', which is not a number",
    ),
    (
        ["--dataset", "{d}/words.csv", "--data_column", "close"],
        "words.csv: column 'close' row 42 holds 'n/a?', which is not a number",
    ),
    (
        ["--dataset", "{d}/holes.csv", "--data_column", "close"],
        "holes.csv: column 'close' has 2 missing (empty or NaN) and 1 infinite values, at rows 5, 10, 301; "
        "repair them with --fill_missing ffill|interpolate|drop",
    ),
    (
        ["--dataset", "{d}/twice.csv", "--data_column", "close", "--time_column", "date"],
        "twice.csv: --time_column 'date' holds '2024-01-01T03:00' twice (rows 4 and 8)",
    ),
    (
        ["--dataset", "{d}/good.csv", "--data_column", "close", "--time_column", "when"],
        "good.csv has no column 'when' (--time_column)",
    ),
    # Windows are left-padded, so a series shorter than --seq_length trains; each split needs --horizon values.
    (
        ["--dataset", "{d}/short.jsonl", "--data_column", "close", "--horizon", "20"],
        "short.jsonl: the series has 100 values, too short for --val_fraction 0.15 / --test_fraction 0.15 and "
        "--horizon 20: the validation split gets 15 values and needs at least 20",
    ),
    (
        ["--dataset", "{d}/short.jsonl", "--data_column", "close", "--test_size", "30", "--horizon", "40"],
        "short.jsonl: the series has 100 values, too short for --val_size 30 / --test_size 30 and --horizon 40: "
        "the train split gets 40 values and needs at least 41",
    ),
    (
        ["--dataset", "{d}/short.jsonl", "--data_column", "close", "--val_size", "5"],
        "--val_size 5 cuts by size and needs --test_size too (0 for no test split); or use --val_fraction",
    ),
    (
        ["--dataset", "{d}/short.jsonl", "--data_column", "close", "--deseasonalize"],
        "--deseasonalize needs --season N (N >= 2): the season length to adjust for, e.g. 12",
    ),
    (
        ["--dataset", "{d}/good.csv", "--data_column", "close", "--fill_missing", "guess"],
        "argument --fill_missing: invalid choice: 'guess'",
    ),
    (["--dataset", "{d}/good.csv", "--val_fraction", "0.6", "--test_fraction", "0.4"], "leave nothing to train on"),
]


@pytest.mark.parametrize(("args", "message"), CASES, ids=[m.split(":")[0][:40] for _, m in CASES])
def test_bad_input_is_one_line_with_exit_code_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files(tmp_path)
    out = tmp_path / "built"
    code = data_main(["build", *[a.format(d=tmp_path) for a in args], "--output_dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1], err[-1]
    assert not out.exists()  # nothing half-written


def test_build_never_replaces_a_folder_it_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = files(tmp_path)["good"]
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "thesis.tex").write_text("precious")
    code = data_main(["build", "--dataset", str(good), "--data_column", "open", "--output_dir", str(keep)])
    assert code == 2 and "holds files lstm-trainer did not write (such as thesis.tex)" in capsys.readouterr().err
    assert [p.name for p in keep.iterdir()] == ["thesis.tex"]
    # Its own output it rebuilds in place, and the summary it prints is the data's.
    out = tmp_path / "built"
    for _ in range(2):
        assert data_main(["build", "--dataset", str(good), "--data_column", "open", "--output_dir", str(out)]) == 0
    printed = capsys.readouterr().out
    # Every test value is a target; its windows also cover the 50 values before the split.
    assert "| train | 1 | 280 | 230 |" in printed and "| test | 1 | 110 | 60 |" in printed, printed
    assert f"written to {out}" in printed


def test_train_py_reports_data_errors_without_writing_output(tmp_path: Path) -> None:
    files(tmp_path)
    for args, message in [
        (
            ["--dataset", str(tmp_path / "holes.csv"), "--data_column", "close"],
            "at rows 5, 10, 301; repair them with --fill_missing",
        ),
        (["--dataset", str(tmp_path / "nowhere.parquet")], "nowhere.parquet: no such file or folder"),
    ]:
        out = tmp_path / "out"
        done = run_train([*args, "--output_dir", str(out)])
        assert done.returncode == 2, done.stderr[-2000:]
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert not out.exists()
