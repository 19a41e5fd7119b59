"""results.py: what `run` returns is typed, and all_results.json is exactly its `to_dict()`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from conftest import TINY, made_results, results, train_in_process

from lstm_trainer.evaluate import relative_verdict


def test_all_results_json_is_what_run_returns(tmp_path: Path) -> None:
    """A real series with a test split, a season, a horizon of 2 and a distribution head: every family
    of keys the file has (per forecast and split, per step, the distribution's, timings, the engine's)."""
    t = np.arange(1500)
    values = 100 + 20 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 2.0, len(t))
    (tmp_path / "series.csv").write_text("y\n" + "\n".join(repr(float(v)) for v in values) + "\n")
    out = tmp_path / "run"
    res = train_in_process(
        [
            *TINY,
            "--seq_length",
            "20",
            "--dataset",
            str(tmp_path / "series.csv"),
            "--season",
            "12",
            "--horizon",
            "2",
            "--distribution",
            "normal",
            "--num_train_epochs",
            "2",
            "--output_dir",
            str(out),
        ]
    )
    written = results(out)
    assert written == res.to_dict()
    assert list(written) == list(res.to_dict())  # and in the same order
    # One name of each family that users' scripts read.
    for key in (
        "best_val_mse",
        "val_mse",
        "test_mase",
        "persistence_test_mse",
        "linear_val_mae",
        "seasonal_naive_test_mse",
        "seasonal_naive_val_mae_by_step",
        "test_crps",
        "val_coverage_80_by_step",
        "verdict",
        "quality",
        "logged_train_losses",
        "epoch_train_seconds",
        "peak_rss_mib_per_process",
        "deepspeed",
    ):
        assert key in written, key
    test = res.scores.test
    assert test is not None and test.model is not None and test.seasonal_naive is not None
    assert (
        written["test_mse"] == test.model.overall.mse
        and written["seasonal_naive_test_mse"] == test.seasonal_naive.overall.mse
    )
    assert written["epochs_completed"] == res.epochs_completed == 2
    assert res.scores.verdict is not None and written["quality"] == res.quality == res.scores.verdict.grade
    assert written["deepspeed"]["zero_stage"] == res.deepspeed.zero_stage == 0  # one fp32 process: nothing to shard


def test_figures_derived_from_the_histories() -> None:
    before_an_epoch = made_results(train_loss_history=[], val_mse_history=[], best_val_mse=None)
    figures = before_an_epoch.to_dict()
    assert (
        figures["epochs_completed"] == 0 and figures["quality"] is None and figures["val_mse_reduction_percent"] is None
    )
    assert figures["initial_train_loss"] is None and figures["final_val_mse"] is None
    # A negative log-likelihood can start below zero: no reduction in percent then.
    assert made_results(train_loss_history=[-0.5, -0.8]).train_loss_reduction_percent is None
    reference = made_results()  # the synthetic sine: graded by the reference's thresholds on validation MSE
    assert reference.quality == "Excellent" and reference.val_mse_reduction_percent == (0.5 - 0.015) / 0.5 * 100
    # A real series is graded against its baselines: here MASE 1.2 against persistence's 1.0.
    assert reference.worse_than_untrained is None
    worse = made_results(initial_val_mse=0.5, val_mse_history=[0.7, 0.6], best_val_mse=0.6)
    assert worse.worse_than_untrained is not None and "20.00% worse on validation MSE" in worse.worse_than_untrained
    judged = made_results(scores=replace(reference.scores, verdict=relative_verdict("validation", 1.2, 1.0, 0.9)))
    assert judged.quality == "loses to a baseline"
    assert (
        judged.to_dict()["verdict"] == "loses to a baseline on validation: skill -20.0% against persistence, "
        "-33.3% against the linear AR (MASE; > 0 is better than the baseline)"
    )
