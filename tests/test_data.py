import numpy as np
import pytest
from datasets import Sequence, Value

from lstm_trainer.config import DataConfig
from lstm_trainer.data import INPUTS, TARGET, build_synthetic, dataset_params, make_windows, synthetic_series

SMALL = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100, noise_std=0.1)


def test_splits_sizes_and_features() -> None:
    dsd = build_synthetic(SMALL, seed=0)
    assert dsd.num_rows == {"train": 300, "validation": 100}
    for split in dsd.values():
        feature = split.features[INPUTS]
        assert isinstance(feature, Sequence) and feature.length == 10 and feature.feature == Value("float32")
        assert split.features[TARGET] == Value("float32")


def test_windows_are_next_step_pairs() -> None:
    series = np.arange(8, dtype=np.float32)
    inputs, targets = make_windows(series, 3)
    assert inputs.tolist()[0] == [0, 1, 2] and targets[0] == 3
    assert inputs.tolist()[-1] == [4, 5, 6] and targets[-1] == 7
    assert len(inputs) == len(series) - 3


def test_splits_are_chronological_without_leakage() -> None:
    series = synthetic_series(SMALL, seed=0)
    dsd = build_synthetic(SMALL, seed=0).with_format("numpy")
    train, val = dsd["train"][:], dsd["validation"][:]
    cut = SMALL.num_train_samples + SMALL.seq_length
    # Train uses exactly series[:cut], validation exactly series[cut:].
    assert np.array_equal(train[INPUTS][0], series[: SMALL.seq_length])
    assert train[TARGET][-1] == series[cut - 1]
    assert np.array_equal(val[INPUTS][0], series[cut : cut + SMALL.seq_length])
    # No value the model is asked to predict on one side is seen on the other.
    train_values = set(np.concatenate([train[INPUTS].ravel(), train[TARGET]]).tolist())
    assert not train_values & set(val[TARGET].tolist())
    assert not train_values & set(val[INPUTS].ravel().tolist())


def test_signal_is_the_reference_formula_plus_noise() -> None:
    quiet = DataConfig(seq_length=10, num_train_samples=300, num_val_samples=100, noise_std=0.0)
    series = synthetic_series(quiet, seed=0)
    t = np.arange(len(series)) * (4 * np.pi / (300 + 10 - 1))
    expected = np.sin(0.5 * t) + 0.5 * np.sin(2 * t) + 0.3 * np.sin(5 * t)
    assert np.allclose(series, expected, atol=1e-6)
    noisy = synthetic_series(SMALL, seed=0)
    assert np.std(noisy - series) == pytest.approx(0.1, rel=0.15)


def test_seed_fixes_the_data() -> None:
    a = build_synthetic(SMALL, seed=1)["train"].with_format("numpy")[:][INPUTS]
    b = build_synthetic(SMALL, seed=1)["train"].with_format("numpy")[:][INPUTS]
    c = build_synthetic(SMALL, seed=2)["train"].with_format("numpy")[:][INPUTS]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_parameters_travel_with_the_dataset(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datasets import load_from_disk

    build_synthetic(SMALL, seed=7).save_to_disk(tmp_path / "sine")
    params = dataset_params(load_from_disk(tmp_path / "sine")["validation"])
    assert params == {"source": "synthetic", "seed": 7, "seq_length": 10, "num_train_samples": 300,
                      "num_val_samples": 100, "noise_std": 0.1}
