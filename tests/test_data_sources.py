"""--dataset sources: files, folders, the chronological split, missing values, normalisation."""

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import every, persistence_mse
from datasets import Dataset, load_from_disk

from lstm_trainer.cli.data import main as data_main
from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data, synthetic_series
from lstm_trainer.data.normalization import Normalization

SEQ = 8


def write(frame: pd.DataFrame, path: Path) -> Path:
    """The same table as a CSV, Parquet, JSON Lines file or a save_to_disk folder."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(path))
    return path


def config(path: Path, **kwargs: Any) -> DataConfig:
    return DataConfig(dataset=str(path), seq_length=SEQ, **kwargs)


def arrays(windows, normalised: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every window of every split, in data units unless `normalised` (as the model sees them)."""
    return {split: every(w, normalised) for split, w in windows.items()}


def load_windows(config: DataConfig, seed: int):
    return prepare_data(config, seed).windows


def table(n: int = 200) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "price": 100 + 10 * np.sin(0.3 * t) + 0.01 * t,
            "volume": (t % 7).astype(np.int64),
        }
    )


def test_csv_parquet_jsonl_and_save_to_disk_give_identical_windows(tmp_path: Path) -> None:
    frame = table()
    got = {
        suffix: load_windows(
            config(write(frame, tmp_path / f"series{suffix}"), data_column="price", time_column="date"), 0
        )
        for suffix in (".csv", ".parquet", ".jsonl", "_folder")
    }
    expected = arrays(got[".csv"])
    assert list(expected) == ["train", "validation", "test"]
    for suffix, windows in got.items():
        for split, (inputs, targets) in arrays(windows).items():
            assert np.array_equal(inputs, expected[split][0]) and np.array_equal(targets, expected[split][1]), (
                suffix,
                split,
            )
    # The series is the column itself, in file order, cut 70 / 15 / 15 before windowing.
    price = frame["price"].to_numpy(np.float32)
    assert np.array_equal(expected["train"][0][0], price[:SEQ])
    # Every validation and test value is a target; their first inputs are the values before the split.
    assert np.array_equal(expected["test"][1], price[170:])
    assert np.array_equal(expected["test"][0][0], price[170 - SEQ : 170])
    assert [len(w) for w in got[".csv"].values()] == [140 - SEQ, 30, 30]
    params = prepare_data(config(tmp_path / "series.parquet", data_column="price", time_column="date"), 0).params
    assert params["split_rows"]["test"] == {
        "first_row": 171,
        "last_row": 200,
        "values": 30,
        "first_time": "2024-06-19",
        "last_time": "2024-07-18",
    }
    # A folder written by `build` holds the series rows, cut where the run cut them: the same windows.
    assert (
        data_main(
            [
                "build",
                "--dataset",
                str(tmp_path / "series.csv"),
                "--data_column",
                "price",
                "--seq_length",
                str(SEQ),
                "--output_dir",
                str(tmp_path / "built"),
            ]
        )
        == 0
    )
    rebuilt = load_windows(config(tmp_path / "built"), 0)
    assert all(
        np.array_equal(a[0], expected[s][0]) and np.array_equal(a[1], expected[s][1])
        for s, a in arrays(rebuilt).items()
    )
    assert load_from_disk(str(tmp_path / "built"))["test"].column_names == ["item_id", "start", "target"]


def test_time_column_puts_rows_in_order_and_one_numeric_column_needs_no_flag(tmp_path: Path) -> None:
    frame = table()[["date", "price"]]
    ordered = load_windows(config(write(frame, tmp_path / "ordered.csv")), 0)  # 'price' is the only numeric column
    shuffled = frame.sample(frac=1.0, random_state=0)
    from_shuffled = load_windows(config(write(shuffled, tmp_path / "shuffled.csv"), time_column="date"), 0)
    for split, (inputs, targets) in arrays(from_shuffled).items():
        assert np.array_equal(inputs, arrays(ordered)[split][0]) and np.array_equal(targets, arrays(ordered)[split][1])


def test_splits_do_not_leak_and_statistics_come_from_train_only(tmp_path: Path) -> None:
    # Three regimes with different means: a leak, or statistics over the whole series, would show.
    rng = np.random.default_rng(0)
    level = np.concatenate([np.full(140, 0.0), np.full(30, 50.0), np.full(30, 100.0)])
    values = level + rng.normal(0, 1, 200)
    data = prepare_data(config(write(pd.DataFrame({"y": values}), tmp_path / "regimes.parquet")), 0)
    raw = arrays(data.windows)
    # Targets stay in their split's regime; inputs are the values just before each target, so a
    # later split's first windows read the end of the split before it, and never anything later.
    for split, centre, start in (("train", 0.0, SEQ), ("validation", 50.0, 140), ("test", 100.0, 170)):
        inputs, targets = raw[split]
        assert np.abs(targets - centre).max() < 6, split
        assert np.allclose(targets, values[start : start + len(targets)], atol=1e-4), split
        assert np.allclose(
            inputs, np.stack([values[t - SEQ : t] for t in range(start, start + len(targets))]), atol=1e-4
        ), split
    # The z-score is the train part's: its mean and std, not the series'.
    norm = data.normalization
    assert norm.mean == pytest.approx(values[:140].mean()) and norm.std == pytest.approx(values[:140].std())
    assert abs(norm.mean - values.mean()) > 20 and norm.std < 2 < values.std()
    model = arrays(data.windows, normalised=True)
    assert model["train"][1].mean() == pytest.approx(norm.apply(values[SEQ:140]).mean(), abs=1e-5)
    assert np.allclose(model["test"][1], norm.apply(raw["test"][1].astype(np.float64)), atol=1e-4)
    # Baselines stay in data units, over every test target: the first follows the jump from 50 to
    # 100 (about 50^2 / 30 of the mean), the others score the noise (about 2 * 1^2).
    assert persistence_mse(data.windows["test"]) == pytest.approx(
        float(np.mean((values[169:199] - values[170:200]) ** 2)), rel=1e-5
    )
    assert persistence_mse(data.windows["test"]) == pytest.approx(2.0 + 2500 / 30, rel=0.1)
    assert data.noise_floor is None


def test_synthetic_default_is_the_reference_data_and_not_normalised() -> None:
    small = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100)
    data = prepare_data(small, 3)
    assert data.normalization == Normalization.identity()
    assert not data.windows["train"].is_normalised  # bit for bit what the reference trains on
    series = synthetic_series(small, 3)
    assert np.array_equal(arrays(data.windows, normalised=True)["train"][0][0], series[:10])
    assert "test" not in data.windows
    assert data.noise_floor == pytest.approx(0.01)
    zscored = prepare_data(
        DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100, normalization="zscore"), 3
    )
    assert zscored.normalization.std == pytest.approx(float(np.std(series[:310])))


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("ffill", [1.0, 2.0, 2.0, 2.0, 5.0]), ("interpolate", [1.0, 2.0, 3.0, 4.0, 5.0]), ("drop", [1.0, 2.0, 5.0])],
)
def test_fill_missing_policies(tmp_path: Path, policy: str, expected: list[float]) -> None:
    frame = pd.DataFrame({"y": [1.0, 2.0, np.nan, np.inf, 5.0] * 40})
    data = prepare_data(
        DataConfig(dataset=str(write(frame, tmp_path / "gaps.parquet")), seq_length=2, fill_missing=policy), 0
    )
    inputs, targets = every(data.windows["train"])
    series = np.concatenate([inputs[0], targets])
    assert series[: len(expected)].tolist() == expected
    params = data.params
    assert (params["filled_values"], params["dropped_rows"]) == ((0, 80) if policy == "drop" else (80, 0))


def test_series_rows_from_a_folder_are_used_in_place(tmp_path: Path) -> None:
    small = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100)
    prepare_data(small, 0).split_rows().save_to_disk(str(tmp_path / "sine"))
    before = sorted(p.name for p in (tmp_path / "sine").rglob("*"))
    data = prepare_data(DataConfig(dataset=str(tmp_path / "sine"), seq_length=10, normalization="zscore"), 0)
    assert data.params["source"] == "synthetic" and not data.normalization.is_identity
    assert sorted(p.name for p in (tmp_path / "sine").rglob("*")) == before  # no cache files written into it
    # The values are the Arrow file's own buffer (memory-mapped), not a copy.
    assert not data.rows.values.flags.owndata and not data.rows.values.flags.writeable
    assert {split: len(w) for split, w in data.windows.items()} == {"train": 300, "validation": 100}
    same = prepare_data(small, 0)
    for split in ("train", "validation"):
        assert all(
            np.array_equal(a, b) for a, b in zip(every(data.windows[split]), every(same.windows[split]), strict=True)
        )
