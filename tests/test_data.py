import numpy as np
import pytest
from conftest import every

from lstm_trainer.config import DataConfig
from lstm_trainer.data import build_synthetic, dataset_params, prepare_data, synthetic_series
from lstm_trainer.data.rows import from_values
from lstm_trainer.data.windows import Windows

SMALL = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100, noise_std=0.1)


def test_the_reference_is_one_series_row_cut_in_two() -> None:
    rows, _plan = build_synthetic(SMALL, seed=0)
    assert rows.num_series == 1 and rows.num_points == 300 + 10 + 100 + 10
    data = prepare_data(SMALL, seed=0)
    assert {split: len(w) for split, w in data.windows.items()} == {"train": 300, "validation": 100}
    inputs, targets = every(data.windows["train"])
    assert inputs.shape == (300, 10) and targets.shape == (300,) and inputs.dtype == targets.dtype == np.float32


def test_windows_are_next_step_pairs() -> None:
    rows = from_values(np.arange(8, dtype=np.float32))
    windows = Windows(rows.values, np.array([3]), np.array([5]), seq_length=3)
    inputs, targets = every(windows)
    assert inputs.tolist()[0] == [0, 1, 2] and targets[0] == 3
    assert inputs.tolist()[-1] == [4, 5, 6] and targets[-1] == 7
    assert len(windows) == 8 - 3


def test_a_window_is_series_and_offset_across_series() -> None:
    # Two series end to end: [0..9] and [100..105]; 3 + 2 windows of 4 steps.
    values = np.concatenate([np.arange(10), np.arange(100, 106)]).astype(np.float32)
    windows = Windows(values, first=np.array([4 + 3, 10 + 4]), counts=np.array([3, 2]), seq_length=4)
    series, position = windows.locate(np.arange(5))
    assert series.tolist() == [0, 0, 0, 1, 1] and position.tolist() == [7, 8, 9, 14, 15]
    inputs, targets = windows.gather(np.array([4, 0]))  # any order: one gather
    assert inputs.tolist() == [[101, 102, 103, 104], [3, 4, 5, 6]] and targets.tolist() == [105, 7]
    # Per-series normalisation is applied at gather time, in float64, each window with its own series'.
    scaled = windows.with_normalization(np.array([0.0, 100.0]), np.array([1.0, 2.0]))
    inputs, targets = scaled.gather(np.array([3]))
    assert inputs.tolist() == [[0.0, 0.5, 1.0, 1.5]] and targets.tolist() == [2.0]


def test_window_inputs_carry_what_a_forecast_reads_beside_the_values() -> None:
    values = np.concatenate([np.arange(10), np.arange(100, 106)]).astype(np.float32)
    windows = Windows(values, first=np.array([7, 14]), counts=np.array([3, 1]), seq_length=4, horizon=2)
    plain, targets = windows.window_inputs(np.array([3, 0]))
    assert plain.values.tolist() == [[100, 101, 102, 103], [3, 4, 5, 6]] and targets.tolist() == [[104, 105], [7, 8]]
    assert (plain.loc, plain.scale, plain.seasonal, plain.covariates) == (None, None, None, None)  # the saved z-score
    # Per-series statistics and seasonal factors come per window, in the data's units (values not scaled).
    seasonal = np.array([[1.0, 2.0], [3.0, 4.0]])  # each series' indices, from its first value (starts)
    adjusted = windows.with_normalization(np.array([0.0, 100.0]), np.array([1.0, 2.0]), seasonal)
    adjusted.starts = np.array([0, 10])
    given, _ = adjusted.window_inputs(np.array([3, 0]))
    assert given.values.tolist() == plain.values.tolist() and len(given) == 2
    assert given.loc is not None and given.scale is not None and given.seasonal is not None
    assert given.loc.tolist() == [100.0, 0.0] and given.scale.tolist() == [2.0, 1.0]
    into, ahead = given.seasonal  # series 1's window reads its values 0..3 and forecasts 4, 5; series 0's 3..6, 7, 8
    assert into.tolist() == [[3, 4, 3, 4], [2, 1, 2, 1]] and ahead.tolist() == [[3, 4], [2, 1]]
    # A model with a shorter window (an ensemble member) reads the last inputs and their factors.
    short = given.last(2)
    assert short.values.tolist() == [[102, 103], [5, 6]] and short.loc is given.loc
    assert short.seasonal is not None and short.seasonal[0].tolist() == [[3, 4], [2, 1]] and short.seasonal[1] is ahead


def test_horizon_targets_are_the_h_values_after_the_window() -> None:
    config = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100, horizon=3)
    data = prepare_data(config, seed=0)
    series = synthetic_series(config, seed=0)
    inputs, targets = data.windows["train"].gather(np.array([0, 5]))
    assert inputs.shape == (2, 10) and targets.shape == (2, 3)
    assert np.array_equal(inputs[1], series[5:15]) and np.array_equal(targets[1], series[15:18])
    # The same number of windows as horizon 1: each split holds seq_length + H values per window.
    assert len(data.windows["train"]) == 300 and len(data.windows["validation"]) == 100
    _, last_targets = data.windows["validation"].gather(np.array([99]))
    assert last_targets[0, -1] == series[-1]


def test_splits_are_chronological_without_leakage() -> None:
    series = synthetic_series(SMALL, seed=0)
    data = prepare_data(SMALL, seed=0)
    train, val = every(data.windows["train"]), every(data.windows["validation"])
    cut = SMALL.num_train_samples + SMALL.seq_length
    # Train uses exactly series[:cut], validation exactly series[cut:].
    assert np.array_equal(train[0][0], series[: SMALL.seq_length])
    assert train[1][-1] == series[cut - 1]
    assert np.array_equal(val[0][0], series[cut : cut + SMALL.seq_length])
    assert val[1][-1] == series[-1]
    # No value the model is asked to predict on one side is seen on the other.
    train_values = set(np.concatenate([train[0].ravel(), train[1]]).tolist())
    assert not train_values & set(val[1].tolist())
    assert not train_values & set(val[0].ravel().tolist())


def test_signal_is_the_reference_formula_plus_noise() -> None:
    quiet = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100, noise_std=0.0)
    series = synthetic_series(quiet, seed=0)
    t = np.arange(len(series)) * (4 * np.pi / (300 + 10 - 1))
    expected = np.sin(0.5 * t) + 0.5 * np.sin(2 * t) + 0.3 * np.sin(5 * t)
    assert np.allclose(series, expected, atol=1e-6)
    noisy = synthetic_series(SMALL, seed=0)
    assert np.std(noisy - series) == pytest.approx(0.1, rel=0.15)


def test_chunked_generation_is_bit_identical_to_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstm_trainer.data import synthetic

    whole = synthetic_series(SMALL, seed=4)
    monkeypatch.setattr(synthetic, "CHUNK", 37)
    assert synthetic_series(SMALL, seed=4).tobytes() == whole.tobytes()


def test_seed_fixes_the_data() -> None:
    a = synthetic_series(SMALL, seed=1)
    b = synthetic_series(SMALL, seed=1)
    c = synthetic_series(SMALL, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_memory_is_the_points_not_the_windows() -> None:
    # 10^6 points, windows of 50: materialised windows would be 51 x 4 bytes x ~10^6 = 204 MB.
    config = DataConfig(seq_length=50, num_train_samples=800_000, num_val_samples=199_900)
    data = prepare_data(config, seed=0)
    assert data.rows.num_points == 1_000_000
    assert data.rows.values.nbytes == 4_000_000
    for windows in data.windows.values():
        assert windows.values is data.rows.values  # every split reads the one array
        assert windows.first.nbytes + windows.counts.nbytes + windows.ends.nbytes < 100  # per series, not per window
    assert len(data.windows["train"]) == 800_000


def test_parameters_travel_with_the_built_rows(tmp_path) -> None:
    from datasets import load_from_disk

    prepare_data(SMALL, seed=7).split_rows().save_to_disk(tmp_path / "sine")
    loaded = load_from_disk(tmp_path / "sine")
    params = dataset_params(loaded["validation"])
    assert {
        k: params[k] for k in ("source", "seed", "seq_length", "num_train_samples", "num_val_samples", "noise_std")
    } == {
        "source": "synthetic",
        "seed": 7,
        "seq_length": 10,
        "num_train_samples": 300,
        "num_val_samples": 100,
        "noise_std": 0.1,
    }
    # The Hub's layout: one row per series, the later split holding the earlier one's values and more.
    assert loaded["train"].column_names == ["item_id", "start", "target"]
    train, whole = loaded["train"][0]["target"], loaded["validation"][0]["target"]
    assert len(train) == 310 and len(whole) == 420 and whole[:310] == train


def test_default_windows_are_the_materialised_ones_bit_for_bit() -> None:
    # Before windows were arithmetic, each split was sliding_window_view over its part of the
    # series; the default run trains on these same windows in the same order (its all_results.json
    # was compared key by key when the change was made).
    series = synthetic_series(SMALL, seed=42)
    data = prepare_data(SMALL, seed=42)
    cut = SMALL.num_train_samples + SMALL.seq_length
    for split, part in (("train", series[:cut]), ("validation", series[cut:])):
        old_inputs = np.lib.stride_tricks.sliding_window_view(part[:-1], SMALL.seq_length)
        inputs, targets = every(data.windows[split], normalised=True)
        assert inputs.tobytes() == np.ascontiguousarray(old_inputs).tobytes()
        assert targets.tobytes() == part[SMALL.seq_length :].tobytes()


def test_statistics_of_a_long_series_are_taken_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstm_trainer.data import prepare

    values = (np.random.default_rng(0).normal(3.0, 2.0, 10_001)).astype(np.float32)
    exact = prepare._mean_std(values)
    monkeypatch.setattr(prepare, "STATS_CHUNK", 1000)
    chunked = prepare._mean_std(values)
    assert chunked == pytest.approx(exact, rel=1e-12)
    assert exact == pytest.approx((values.astype(np.float64).mean(), values.astype(np.float64).std()), rel=0)
