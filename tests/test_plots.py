"""plots.py: four PNGs of the expected size that open as images and are not blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import made_results
from PIL import Image

from lstm_trainer.outputs import plots


@pytest.mark.parametrize("noise_floor", [0.01, None])  # None: real data, no known floor
def test_save_all_writes_the_four_pictures(tmp_path: Path, noise_floor: float | None) -> None:
    rng = np.random.default_rng(0)
    targets = np.sin(np.arange(512) * 0.1).astype(np.float32)
    predictions = targets + rng.normal(0, 0.1, 512).astype(np.float32)
    results = made_results(noise_floor=noise_floor)
    learning_rates = list(enumerate(np.linspace(0, 1e-3, 48), start=1))
    paths = plots.save_all(tmp_path, results, learning_rates, predictions, targets)
    assert list(paths) == list(plots.NAMES) == ["loss_curves", "learning_rate", "predictions", "residuals"]
    for name, path in paths.items():
        assert path == tmp_path / f"{name}.png"
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (800, 450), (name, image.size)
            pixels = np.asarray(image.convert("L"), dtype=np.float64)
        assert pixels.std() > 5, name  # something was drawn, not an empty canvas
