import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstm_trainer.data.normalization import FILE, Normalization


def test_fit_apply_invert_round_trip() -> None:
    values = np.array([10.0, 12.0, 14.0, 16.0])
    norm = Normalization.fit(values)
    assert norm.mean == 13.0 and norm.std == pytest.approx(np.sqrt(5.0))
    scaled = norm.apply(values)
    assert scaled.mean() == pytest.approx(0.0) and scaled.std() == pytest.approx(1.0)
    assert np.allclose(norm.invert(scaled), values)
    # The same arithmetic on tensors and plain floats, as a predict step uses it.
    assert torch.allclose(norm.invert(norm.apply(torch.tensor(values))), torch.tensor(values))
    assert norm.invert(norm.apply(11.5)) == pytest.approx(11.5)


def test_mse_on_normalised_values_converts_to_data_units() -> None:
    rng = np.random.default_rng(0)
    truth, guess = rng.normal(50, 8, 100), rng.normal(50, 8, 100)
    norm = Normalization(50.0, 8.0)
    normalised_mse = float(np.mean((norm.apply(truth) - norm.apply(guess)) ** 2))
    assert norm.mse_in_data_units(normalised_mse) == pytest.approx(np.mean((truth - guess) ** 2))


def test_save_and_load(tmp_path: Path) -> None:
    assert Normalization.load(tmp_path) is None  # no file: nothing to undo
    Normalization(3.5, 0.25).save(tmp_path)
    assert json.loads((tmp_path / FILE).read_text())["mean"] == 3.5
    assert Normalization.load(tmp_path) == Normalization(3.5, 0.25)
    identity = Normalization.identity()
    assert identity.is_identity and not Normalization(3.5, 0.25).is_identity
    assert identity.apply(2.0) == 2.0 and identity.mse_in_data_units(0.5) == 0.5
