"""Heads (point, distributions, quantiles, horizon H) and the probabilistic scores, without training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lstm_trainer.config import DataConfig, ForecasterConfig, ModelConfig
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate import Forecast, interval_scores, probabilistic, seasonal_naive
from lstm_trainer.evaluate.probabilistic import normal_crps, studentt_crps
from lstm_trainer.model.forecaster import LSTMForecaster
from lstm_trainer.model.heads import LOG_SCALE_FLOOR, OutputHead

KINDS = [
    ({}, 1, (6,)),
    ({}, 4, (6, 4)),
    ({"distribution": "normal"}, 1, (6, 1, 2)),
    ({"distribution": "studentt"}, 3, (6, 3, 3)),
    ({"quantiles": (0.9, 0.1, 0.5)}, 2, (6, 2, 3)),
]


@pytest.mark.parametrize(("options", "horizon", "shape"), KINDS)
def test_output_shapes_parameter_count_and_point(options, horizon, shape) -> None:
    config = ModelConfig(hidden_size=8, **options)
    model = LSTMForecaster(ForecasterConfig(config, seq_length=12, horizon=horizon))
    out = model(torch.randn(6, 12))
    assert out.shape == shape
    assert model.output_head.point(out).shape == ((6,) if horizon == 1 else (6, horizon))
    assert model.config.num_parameters() == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("options", "horizon", "shape"), KINDS)
def test_untrained_delta_head_forecasts_the_last_value(options, horizon, shape) -> None:
    """Head and skip start at zero: every step's centre is the last input, whatever the kind."""
    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, **options), seq_length=12, horizon=horizon))
    x = torch.randn(5, 12)
    point = model.output_head.point(model(x)).reshape(5, -1)
    assert torch.allclose(point, x[:, -1:].expand(5, horizon), atol=1e-5)


def test_quantile_levels_never_cross() -> None:
    config = ModelConfig(hidden_size=8, quantiles=(0.95, 0.05, 0.5, 0.25, 0.75))
    assert config.quantiles == (0.05, 0.25, 0.5, 0.75, 0.95)
    head = OutputHead(config, horizon=3)
    assert head.center == 2
    # Seeded: a raw gap far below zero is a softplus of ~1e-9, which float32 adds to the centre as 0,
    # so neighbouring levels may be equal; they never cross.
    gen = torch.Generator().manual_seed(0)
    raw = 5 * torch.randn(64, 3, 5, generator=gen)
    params = head.to_model_units(
        torch.randn(64, 3, generator=gen), raw, torch.randn(64, generator=gen), torch.rand(64, generator=gen) + 0.1
    )
    assert torch.all(params.diff(dim=-1) >= 0)
    moderate = head.to_model_units(torch.zeros(64, 3), raw.clamp(-5, 5), torch.zeros(64), torch.ones(64))
    assert torch.all(moderate.diff(dim=-1) > 0)


def test_log_scale_floor_keeps_a_half_precision_loss_finite() -> None:
    """A raw log scale far below the floor (an fp16 exp would give 0) still gives a finite NLL."""
    head = OutputHead(ModelConfig(distribution="normal"), horizon=1)
    raw = torch.tensor([[[0.0, -60.0]], [[0.0, -1e4]]], dtype=torch.float16)  # [B=2, H=1, P=2]
    params = head.to_model_units(
        raw[..., 0], raw, torch.zeros(2, dtype=torch.float16), torch.ones(2, dtype=torch.float16)
    )
    assert torch.all(params[..., 1].float() >= LOG_SCALE_FLOOR - 1e-2)
    loss = head.loss(params, torch.tensor([0.5, -0.5]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    student = OutputHead(ModelConfig(distribution="studentt"), horizon=1)
    raw3 = torch.tensor([[[0.0, -60.0, -60.0]]], dtype=torch.float16)
    params3 = student.to_model_units(
        raw3[..., 0], raw3, torch.zeros(1, dtype=torch.float16), torch.ones(1, dtype=torch.float16)
    )
    assert float(params3[0, 0, 2]) > 2.0  # df > 2: the variance exists
    assert torch.isfinite(student.loss(params3, torch.tensor([3.0])))


@pytest.mark.parametrize("kind", ["normal", "studentt"])
def test_nll_in_data_units(kind: str) -> None:
    """The NLL measured after a z-score, shifted by log(std), is the NLL on the data itself."""
    head = OutputHead(ModelConfig(distribution=kind), horizon=1)
    norm = Normalization(3.0, 2.5)
    params = torch.tensor([[[0.2, -0.5, 4.0]]])[..., : head.params_per_step]
    y = torch.tensor([0.7])
    model_units = float(head.loss(params, y))
    data = params.clone()
    data[..., 0] = norm.invert(data[..., 0])
    data[..., 1] += math.log(norm.std)
    assert head.loss_in_data_units(model_units, norm.std) == pytest.approx(
        float(head.loss(data, norm.invert(y))), rel=1e-5
    )


def monte_carlo_crps(samples: np.ndarray, y: float) -> float:
    """CRPS = E|X - y| - E|X - X'| / 2 (Gneiting & Raftery 2007), from samples."""
    half = len(samples) // 2
    return float(np.mean(np.abs(samples - y)) - 0.5 * np.mean(np.abs(samples[:half] - samples[half : 2 * half])))


@pytest.mark.parametrize("y", [-0.3, 0.1, 2.0])
def test_closed_form_crps_matches_monte_carlo(y: float) -> None:
    rng = np.random.default_rng(0)
    loc, scale, df = 0.2, 0.7, 3.5
    normal = loc + scale * rng.standard_normal(2_000_000)
    assert float(normal_crps(np.array(y), np.array(loc), np.array(scale))) == pytest.approx(
        monte_carlo_crps(normal, y), rel=5e-3
    )
    student = loc + scale * rng.standard_t(df, 2_000_000)
    closed = float(studentt_crps(np.array(y), np.array(loc), np.array(scale), np.array(df)))
    assert closed == pytest.approx(monte_carlo_crps(student, y), rel=1e-2)


def test_quantiles_and_coverage_of_a_calibrated_forecast() -> None:
    """Targets drawn from the forecast itself: every central interval covers its level."""
    rng = np.random.default_rng(1)
    n = 200_000
    loc, log_scale = rng.normal(size=(n, 1)), np.full((n, 1), math.log(0.3))
    forecast = Forecast("normal", loc, np.stack([loc, log_scale], axis=-1))
    targets = loc + 0.3 * rng.standard_normal((n, 1))
    scores = interval_scores(forecast, targets)
    assert scores is not None
    for level, covered in scores.coverage.items():
        assert covered == pytest.approx(level / 100, abs=0.005)
    assert scores.crps == pytest.approx(0.3 / math.sqrt(math.pi), rel=0.01)  # E CRPS of a calibrated normal
    q = forecast.quantiles((0.1, 0.5, 0.9))
    assert q[0, 0] == pytest.approx(loc[0, 0] + 0.3 * np.array([-1.2815516, 0.0, 1.2815516]), abs=1e-6)
    df = np.full((n, 1), 4.0)
    student = Forecast("studentt", loc, np.stack([loc, log_scale, df], axis=-1))
    t_targets = loc + 0.3 * rng.standard_t(4.0, (n, 1))
    scores = interval_scores(student, t_targets)
    assert scores is not None and scores.coverage[80] == pytest.approx(0.8, abs=0.005)


def test_quantile_head_answers_only_its_levels() -> None:
    params = np.sort(np.random.default_rng(2).normal(size=(10, 1, 3)), axis=-1)
    forecast = Forecast("quantile", params[..., 1], params, (0.1, 0.5, 0.9))
    assert np.array_equal(forecast.quantiles((0.9,))[..., 0], params[..., 2])
    with pytest.raises(ValueError, match=r"0\.25"):
        forecast.quantiles((0.25,))
    scores = interval_scores(forecast, params[..., 1])
    assert scores is not None and scores.coverage[80] == 1.0 and scores.coverage[50] is None


def test_seasonal_naive_over_several_steps() -> None:
    inputs = np.arange(12, dtype=np.float64)[None]  # a season of 4: the last season is 8, 9, 10, 11
    assert seasonal_naive(inputs, 4, horizon=6).tolist() == [[8, 9, 10, 11, 8, 9]]


def test_config_json_round_trip(tmp_path) -> None:
    model = LSTMForecaster(
        ForecasterConfig(ModelConfig(hidden_size=8, distribution="studentt"), seq_length=10, horizon=3)
    ).eval()
    model.save_pretrained(tmp_path / "new")
    record = json.loads((tmp_path / "new" / "config.json").read_text())
    assert (record["distribution"], record["quantiles"], record["horizon"]) == ("studentt", None, 3)
    loaded = LSTMForecaster.from_pretrained(tmp_path / "new")
    x = torch.randn(4, 10)
    assert loaded.horizon == 3 and torch.equal(loaded(x), model(x))


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (ModelConfig, {"distribution": "gamma"}, "--distribution must be one of none, normal, studentt"),
        (ModelConfig, {"quantiles": (0.1, 1.0)}, "--quantiles must be levels strictly between 0 and 1"),
        (ModelConfig, {"quantiles": (0.5, 0.5)}, "--quantiles must not repeat"),
        (ModelConfig, {"quantiles": (0.5,), "distribution": "normal"}, "pick one"),
        (DataConfig, {"horizon": 0}, "--horizon must be > 0"),
    ],
)
def test_bad_options_are_user_errors(factory, kwargs, message) -> None:
    with pytest.raises(UserError, match=message):
        factory(**kwargs)


def test_quantiles_flag_parses_to_a_sorted_tuple() -> None:
    from lstm_trainer.cli.train import parse_config

    config = parse_config(["--quantiles", "0.9", "0.1", "0.5", "--horizon", "6"])
    assert config.model.quantiles == (0.1, 0.5, 0.9) and config.data.horizon == 6
    assert config.to_dict()["model"]["quantiles"] == [0.1, 0.5, 0.9]  # as config.json and checkpoints hold it


def test_quantile_head_crps_approaches_the_exact_one() -> None:
    """Quantiles of a calibrated N(0, 1) at 19 levels: the trapezoid CRPS is within 1% of the exact 1 / sqrt(pi)."""
    from scipy import special

    levels = tuple(float(q) for q in np.arange(1, 20) / 20)
    n = 200_000
    q = np.broadcast_to(special.ndtri(np.asarray(levels)), (n, 1, 19))
    forecast = Forecast("quantile", q[..., 9], q, levels)
    crps = probabilistic.crps(forecast, np.random.default_rng(4).standard_normal((n, 1)))
    assert crps is not None and float(np.mean(crps)) == pytest.approx(1 / math.sqrt(math.pi), rel=0.01)


@pytest.mark.parametrize(
    "options", [{"distribution": "normal"}, {"distribution": "studentt"}, {"quantiles": (0.1, 0.5, 0.9)}]
)
def test_the_spread_starts_at_the_linear_ars_errors(options) -> None:
    """Before any training step the intervals are the linear AR's: its error spread (in each window's
    units), not the window's own spread, which is ~10x too wide for a sine with noise sd 0.1."""
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(3000, dtype=torch.float64)
    series = torch.sin(0.3 * t) + 0.1 * torch.randn(3000, generator=gen, dtype=torch.float64)
    windows = series.unfold(0, 21, 1)  # [N, 21]
    inputs, targets = windows[:, :20], windows[:, 20:].clone()  # [N, 20], [N, 1]
    model = LSTMForecaster(ForecasterConfig(ModelConfig(hidden_size=8, **options), seq_length=20)).eval()
    model.fit_linear_skip(inputs, targets[:, 0])
    with torch.no_grad():
        out = model(inputs.float())  # [N, 1, P]
    error = targets[:, 0] - model.output_head.point(out).double()
    if "quantiles" in options:
        inside = ((out[:, 0, 0].double() <= targets[:, 0]) & (targets[:, 0] <= out[:, 0, 2].double())).double().mean()
        assert float(inside) == pytest.approx(0.8, abs=0.03)
    else:
        sd = out[:, 0, 1].double().exp()
        assert float((error / sd).std()) == pytest.approx(1.0, abs=0.1)  # standardised errors: unit spread
