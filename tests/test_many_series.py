"""Many series in one run: long and wide tables, per-series splits and statistics, dropped series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import every, train_in_process

from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data

SEQ = 12


def long_table(lengths: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """One row per (store, hour); each store its own level and scale, rows shuffled."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, (store, n) in enumerate(lengths.items()):
        t = np.arange(n)
        parts.append(
            pd.DataFrame(
                {
                    "store": store,
                    "hour": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:%M"),
                    "sales": 10.0**k * (5 + np.sin(t / 4.0)) + rng.normal(0, 0.05 * 10.0**k, n),
                }
            )
        )
    return pd.concat(parts).sample(frac=1.0, random_state=seed)


def test_long_table_is_one_series_per_id_split_in_time_each(tmp_path: Path) -> None:
    frame = long_table({"a": 200, "b": 100, "c": 300})
    frame.to_csv(tmp_path / "long.csv", index=False)
    data = prepare_data(
        DataConfig(dataset=str(tmp_path / "long.csv"), id_column="store", time_column="hour", seq_length=SEQ), 0
    )
    assert sorted(data.rows.item_ids) == ["a", "b", "c"] and data.rows.num_points == 600
    assert data.params["series"] == 3 and data.params["points"] == 600
    windows = data.windows
    # Each series is cut 70 / 15 / 15 of its own length: a (200) gives 140 / 30 / 30 values.
    s = data.rows.item_ids.index("a")
    assert (
        windows["train"].counts[s] == 140 - SEQ
        and windows["validation"].counts[s] == 30
        and windows["test"].counts[s] == 30
    )
    assert len(windows["train"]) == (140 - SEQ) + (70 - SEQ) + (210 - SEQ)
    # The values of a series are in time order: its first training window is its first hours.
    ordered = frame[frame.store == "a"].sort_values("hour")["sales"].to_numpy(np.float32)
    first = int(windows["train"].ends[s] - windows["train"].counts[s])  # windows of series s follow those before it
    inputs, targets = windows["train"].gather(np.array([first]), normalised=False)
    assert np.array_equal(inputs[0], ordered[:SEQ]) and targets[0] == ordered[SEQ]
    # Test windows of a read only a's values: the last of them is a's last value.
    test_inputs, test_targets = windows["test"].gather(np.array([windows["test"].ends[s] - 1]), normalised=False)
    assert test_targets[0] == ordered[-1] and np.array_equal(test_inputs[0], ordered[-1 - SEQ : -1])
    # Statistics per series, from its train part only: series of scale 1, 10 and 100 all look alike.
    norm = data.normalization
    assert norm.series is not None
    for store in ("a", "b", "c"):
        values = frame[frame.store == store].sort_values("hour")["sales"].to_numpy(np.float32).astype(np.float64)
        n_train = len(values) - 2 * round(len(values) * 0.15)
        assert norm.series[store] == pytest.approx((values[:n_train].mean(), values[:n_train].std()))
    _, normalised = every(windows["train"], normalised=True)
    assert abs(normalised.mean()) < 0.2 and 0.7 < normalised.std() < 1.3


def test_wide_table_is_one_series_per_column_with_mixed_lengths(tmp_path: Path) -> None:
    n = 240
    frame = pd.DataFrame({"t": np.arange(n), "x": np.sin(np.arange(n) / 3.0), "y": np.cos(np.arange(n) / 5.0) * 50})
    frame.loc[:39, "y"] = np.nan  # y starts 40 steps later: a shorter series, not a gap
    frame.to_csv(tmp_path / "wide.csv", index=False)
    named = prepare_data(DataConfig(dataset=str(tmp_path / "wide.csv"), data_column=["x", "y"], seq_length=SEQ), 0)
    assert named.rows.item_ids == ["x", "y"] and named.rows.lengths.tolist() == [240, 200]
    # Without --data_column every numeric column but the time column is a series.
    every = prepare_data(DataConfig(dataset=str(tmp_path / "wide.csv"), time_column="t", seq_length=SEQ), 0)
    assert every.rows.item_ids == ["x", "y"] and np.array_equal(every.rows.values, named.rows.values)
    assert every.params["data_column"] == ["x", "y"]


def hub_layout(lengths: list[int], cut: int = 0):
    """Series rows as the Hub's time-series sets hold them; `cut` > 0: train / validation / test
    splits, each series `cut` values longer than in the split before (as monash_tsf does)."""
    from datasets import Dataset, DatasetDict

    def rows(trim: int) -> Dataset:
        return Dataset.from_dict(
            {
                "start": [pd.Timestamp("2020-01-01")] * len(lengths),
                "target": [list(np.sin(np.arange(n - trim) / 7.0) * (k + 1)) for k, n in enumerate(lengths)],
                "feat_dynamic_real": [[list(np.arange(n - trim, dtype=float))] for n in lengths],
                "item_id": [f"T{k + 1}" for k in range(len(lengths))],
            }
        )

    if not cut:
        return DatasetDict({"train": rows(0)})
    return DatasetDict({"train": rows(2 * cut), "validation": rows(cut), "test": rows(0)})


def test_series_rows_in_the_hub_layout_train_directly(tmp_path: Path) -> None:
    hub_layout([300, 200, 250]).save_to_disk(str(tmp_path / "single"))
    data = prepare_data(DataConfig(dataset=str(tmp_path / "single"), seq_length=SEQ), 0)
    assert data.rows.item_ids == ["T1", "T2", "T3"] and data.rows.lengths.tolist() == [300, 200, 250]
    assert data.params["data_column"] == "target"  # --data_column's default for series rows
    assert data.windows["validation"].counts.tolist() == [45, 30, 38]  # 15 % of each series' own length (half to even)
    # The Hub's nested splits (validation = train + 24 values, test = validation + 24) are the cuts used.
    hub_layout([300, 200, 250], cut=24).save_to_disk(str(tmp_path / "nested"))
    nested = prepare_data(DataConfig(dataset=str(tmp_path / "nested"), seq_length=SEQ), 0)
    assert nested.rows.lengths.tolist() == [300, 200, 250]
    assert (
        nested.windows["validation"].counts.tolist() == [24, 24, 24]
        and nested.windows["test"].counts.tolist() == [24] * 3
    )
    assert nested.windows["train"].counts.tolist() == [300 - 48 - SEQ, 200 - 48 - SEQ, 250 - 48 - SEQ]
    assert "the dataset's own train, validation, test splits" in nested.params["splits_from"]
    _, last = nested.windows["test"].gather(np.array([23]), normalised=False)
    assert last[0] == pytest.approx(np.sin(299 / 7.0), abs=1e-6)  # T1's last value


def test_series_rows_with_a_gap_name_the_series(tmp_path: Path) -> None:
    from lstm_trainer.errors import UserError

    data = hub_layout([100, 120])
    broken = data["train"].map(
        lambda row: {"target": [*row["target"][:5], None, *row["target"][6:]]} if row["item_id"] == "T2" else row
    )
    broken.save_to_disk(str(tmp_path / "gap"))
    with pytest.raises(
        UserError, match=r"gap: series 'T2' has 1 missing \(NaN\) or infinite value, the first at step 6"
    ):
        prepare_data(DataConfig(dataset=str(tmp_path / "gap"), seq_length=SEQ), 0)


def test_too_short_series_are_dropped_and_named_not_fatal(tmp_path: Path) -> None:
    long_table({"long": 300, "tiny": 3, "mid": 200, "short": 18}).to_csv(tmp_path / "mixed.csv", index=False)
    data = prepare_data(
        DataConfig(dataset=str(tmp_path / "mixed.csv"), id_column="store", time_column="hour", seq_length=SEQ), 0
    )
    # 'short' has no whole window of 12 + 1 in its 12 training values: it trains on left-padded ones.
    assert sorted(data.rows.item_ids) == ["long", "mid", "short"]
    assert len(data.notes) == 1
    note = data.notes[0]
    assert note.startswith(
        "1 of 4 series dropped, too short for --val_fraction 0.15 / --test_fraction 0.15 and --horizon 1"
    )
    assert "'tiny' (3 values)" in note and data.params["dropped_series"] == data.notes
    assert "note: 1 of 4 series dropped" in data.describe()


def test_a_series_shorter_than_the_window_trains_left_padded(tmp_path: Path) -> None:
    long_table({"long": 300, "short": 18}).to_csv(tmp_path / "mixed.csv", index=False)
    data = prepare_data(
        DataConfig(dataset=str(tmp_path / "mixed.csv"), id_column="store", time_column="hour", seq_length=SEQ), 0
    )
    train = data.windows["train"]
    short = data.rows.item_ids.index("short")
    values = data.rows.series(short)
    # 18 values: 3 validate, 3 test, 12 train; windows from one real input on: 12 - 1 targets.
    assert train.counts[short] == 11
    first = int(train.ends[short] - train.counts[short])
    inputs, target = train.gather(np.array([first]), normalised=False)
    assert inputs[0].tolist() == [values[0]] * SEQ and target[0] == values[1]
    inputs, target = train.gather(np.array([first + 10]), normalised=False)
    assert inputs[0, 0] == values[0] and inputs[0, -1] == values[10] and target[0] == values[11]
    # The long series still trains on whole windows only, as before padding existed.
    long = data.rows.item_ids.index("long")
    assert train.counts[long] == 300 - 90 - SEQ
    # --min_inputs pads every series' first windows alike.
    padded = prepare_data(
        DataConfig(
            dataset=str(tmp_path / "mixed.csv"), id_column="store", time_column="hour", seq_length=SEQ, min_inputs=4
        ),
        0,
    )
    assert padded.windows["train"].counts.tolist() == [300 - 90 - 4, 12 - 4]


def test_the_competition_cut_takes_the_last_values_of_every_series(tmp_path: Path) -> None:
    long_table({"a": 40, "b": 25, "c": 9}).to_csv(tmp_path / "m.csv", index=False)
    data = prepare_data(
        DataConfig(
            dataset=str(tmp_path / "m.csv"), id_column="store", time_column="hour", seq_length=SEQ,
            test_size=4, val_size=4, horizon=4,
        ),
        0,
    )  # fmt: skip
    # 'c' (9 values) cannot give 4 + 4 and train on 5 steps ahead of one input: dropped by name.
    assert sorted(data.rows.item_ids) == ["a", "b"] and "'c' (9 values)" in data.notes[0]
    assert "--val_size 4 / --test_size 4 and --horizon 4" in data.notes[0]
    for split in ("validation", "test"):
        assert data.windows[split].counts.tolist() == [1, 1]  # one origin per series: its last 4 values
    _, target = data.windows["test"].gather(np.array([1]), normalised=False)
    assert target[0].tolist() == data.rows.series(1)[-4:].tolist()
    _, target = data.windows["validation"].gather(np.array([0]), normalised=False)
    assert target[0].tolist() == data.rows.series(0)[-8:-4].tolist()
    assert data.params["val_size"] == 4 and data.params["test_size"] == 4


def test_ten_thousand_series_load_without_a_loop_over_rows(tmp_path: Path) -> None:
    # 10,000 series x 1,000 points as a long Parquet file: loaded vectorised in seconds, not minutes.
    import time

    n_series, n_points = 10_000, 1_000
    ids = np.repeat(np.arange(n_series), n_points)
    steps = np.tile(np.arange(n_points), n_series)
    values = np.sin(steps / 10.0 + ids).astype(np.float32)
    pd.DataFrame({"id": ids.astype(str), "step": steps, "value": values}).to_parquet(
        tmp_path / "many.parquet", index=False
    )
    started = time.perf_counter()
    data = prepare_data(DataConfig(dataset=str(tmp_path / "many.parquet"), id_column="id", time_column="step"), 0)
    seconds = time.perf_counter() - started
    assert data.rows.num_series == n_series and data.rows.num_points == n_series * n_points
    assert len(data.windows["train"]) == n_series * (700 - 50)
    assert seconds < 60, seconds  # ~5 s on a 2-core CPU; a per-row Python loop takes minutes


def test_one_global_model_trains_on_every_series(tmp_path: Path) -> None:
    long_table({"a": 400, "b": 300, "c": 350, "d": 3}).to_csv(tmp_path / "stores.csv", index=False)
    out = tmp_path / "run"
    results = train_in_process(
        [
            "--dataset",
            str(tmp_path / "stores.csv"),
            "--id_column",
            "store",
            "--time_column",
            "hour",
            "--seq_length",
            str(SEQ),
            "--num_train_epochs",
            "2",
            "--hidden_size",
            "16",
            "--output_dir",
            str(out),
        ]
    )
    assert results.epochs_completed == 2
    # Scored over all series' windows, in the data's units: one model, three series of scales 1..100.
    val, test = results.scores.validation, results.scores.test
    assert val is not None and val.model is not None and val.persistence.overall.mse > val.linear.overall.mse
    assert test is not None and test.model is not None
    run_info = json.loads((out / "run_config.json").read_text())
    assert run_info["data"]["series"] == 3 and run_info["data"]["points"] == 1050
    assert "'d' (3 values)" in run_info["data"]["dropped_series"][0]
    saved = json.loads((out / "model" / "normalization.json").read_text())
    assert sorted(saved["series"]) == ["a", "b", "c"] and saved["series"]["c"]["std"] > 10 * saved["series"]["a"]["std"]
    # predict --id_column: every series in one call, each with its own statistics, as a user runs it.
    from lstm_trainer.cli.predict import main as predict_main
    from lstm_trainer.data.normalization import Normalization
    from lstm_trainer.model.forecaster import LSTMForecaster

    forecast = tmp_path / "forecast.csv"
    assert (
        predict_main(
            [
                "--model",
                str(out / "model"),
                "--input",
                str(tmp_path / "stores.csv"),
                "--id_column",
                "store",
                "--time_column",
                "hour",
                "--data_column",
                "sales",
                "--horizon",
                "3",
                "--output",
                str(forecast),
            ]
        )
        == 0
    )
    table = pd.read_csv(forecast)
    assert list(table.columns) == ["store", "step", "forecast"]
    assert sorted(set(table["store"])) == ["a", "b", "c", "d"] and len(table) == 12  # d is long enough to forecast from
    model, norm = LSTMForecaster.from_pretrained(out / "model"), Normalization.load(out / "model")
    assert norm is not None
    frame = pd.read_csv(tmp_path / "stores.csv")
    history = frame[frame.store == "c"].sort_values("hour")["sales"].to_numpy(np.float32).astype(np.float64)[-SEQ:]
    import torch

    with torch.no_grad():
        c = norm.for_series("c")
        expected = c.invert(float(model(torch.tensor(c.apply(history), dtype=torch.float32)[None])[0]))
    got = table[(table.store == "c") & (table.step == 1)]["forecast"].item()
    assert got == pytest.approx(expected, rel=1e-6) and 100 < got < 1000  # c's own scale, not a's
    # The backtest over every series' test windows (stride 1, one step) is the run's own test score.
    from lstm_trainer.cli.backtest import main as backtest_main

    assert (
        backtest_main(
            [
                "--model",
                str(out / "model"),
                "--dataset",
                str(tmp_path / "stores.csv"),
                "--id_column",
                "store",
                "--time_column",
                "hour",
                "--output_dir",
                str(tmp_path / "bt"),
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    assert record["split"] == "test" and record["origins"] == 60 + 45 + 52  # 15% of 400, 300 and 350 values
    assert record["mse"] == pytest.approx(test.model.overall.mse, rel=1e-9)
    assert record["baselines"]["persistence"]["mse"] == pytest.approx(test.persistence.overall.mse, rel=1e-9)
