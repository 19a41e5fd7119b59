"""Scores, baselines and the relative verdict: pure NumPy, checked against hand-computed figures."""

import numpy as np
import pytest

from lstm_trainer.evaluate import LinearAR, naive_scale, persistence, relative_verdict, score, seasonal_naive


def test_scores_by_hand() -> None:
    scores = score(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 1.0]), scale=2.0)
    assert scores.mse == pytest.approx((0 + 1 + 9) / 3)
    assert scores.mae == pytest.approx(4 / 3)
    assert scores.mase == pytest.approx(2 / 3)
    assert score(np.zeros(2), np.ones(2), scale=0.0).mase is None  # a constant training split has no scale


def test_naive_scale_is_the_in_sample_one_step_naive_mae() -> None:
    assert naive_scale(np.array([1.0, 3.0, 2.0, 2.0])) == pytest.approx((2 + 1 + 0) / 3)


def test_persistence_and_seasonal_naive_read_the_right_lag() -> None:
    series = np.arange(20.0) ** 2
    inputs = np.lib.stride_tricks.sliding_window_view(series[:-1], 6)  # targets series[6:]
    assert np.array_equal(persistence(inputs), series[5:-1])
    assert np.array_equal(seasonal_naive(inputs, 4), series[2:-4])  # the target's step minus 4
    assert np.array_equal(seasonal_naive(inputs, 1), persistence(inputs))


def test_linear_ar_recovers_a_known_process_with_intercept() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros(3000)
    for t in range(2, len(x)):
        x[t] = 5.0 + 0.6 * x[t - 1] - 0.2 * x[t - 2] + rng.normal(0, 0.1)
    inputs = np.lib.stride_tricks.sliding_window_view(x[:-1], 4)[500:]
    targets = x[4:][500:]
    fit = LinearAR.fit(inputs, targets)
    assert fit.weights == pytest.approx([0.0, 0.0, -0.2, 0.6], abs=0.06)
    assert fit.intercept == pytest.approx(5.0, abs=0.3)
    # Better than persistence on the process it was fitted to (noise variance 0.01 against ~0.0135).
    assert score(fit.predict(inputs), targets, 1.0).mse < 0.8 * score(persistence(inputs), targets, 1.0).mse


def test_linear_ar_fits_with_fewer_windows_than_lags() -> None:
    inputs, targets = np.arange(12.0).reshape(3, 4), np.array([4.0, 8.0, 12.0])
    assert LinearAR.fit(inputs, targets).predict(inputs) == pytest.approx(targets)


def test_verdict_warns_when_the_model_loses_to_a_baseline() -> None:
    good = relative_verdict("test", model_mase=0.8, persistence_mase=1.0, linear_mase=0.9)
    assert good.loses_to == [] and good.warning is None and good.grade == "beats the baselines"
    assert good.skill_vs_persistence == pytest.approx(0.2)
    bad = relative_verdict("validation", model_mase=0.95, persistence_mase=1.0, linear_mase=0.9)
    assert bad.loses_to == ["the linear AR"] and bad.grade == "loses to a baseline"
    assert bad.warning is not None and bad.warning.startswith("warning: the model loses to the linear AR on validation")
    assert "\n" not in bad.warning
