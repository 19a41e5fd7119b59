"""The competitions' protocol on tiny series: the size cut, short series, seasonal adjustment, the
per-series measures in a run, and `predict --actuals` scoring a forecast from the end of every series."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import train_in_process

from lstm_trainer.cli.predict import main as predict_main
from lstm_trainer.data.seasonality import is_seasonal, seasonal_indices
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate.accuracy import (
    mase,
    mase_scale,
    naive2,
    naive2_per_series,
    per_series,
    per_series_of_windows,
    smape,
)

SEASON, H = 4, 4
PATTERN = np.array([0.8, 1.2, 1.1, 0.9])


def seasonal_table(lengths: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Long table (id, t, y): each series a level times a season of 4, with a little noise."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, (item, n) in enumerate(lengths.items()):
        t = np.arange(n)
        y = (20 + 5 * k + 0.1 * t) * PATTERN[t % SEASON] * (1 + rng.normal(0, 0.01, n))
        parts.append(pd.DataFrame({"id": item, "t": t, "y": y}))
    return pd.concat(parts)


def test_smape_mase_and_naive2_by_hand() -> None:
    assert smape(np.array([100.0, 0.0]), np.array([110.0, 0.0])) == pytest.approx(200 * 10 / 210 / 2)
    history = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0])
    assert mase_scale(history, 2) == pytest.approx(np.mean([3.0, 1.0, 1.0, 3.0]))  # |x_t - x_{t-2}|
    assert mase_scale(history, None) == pytest.approx(np.mean(np.abs(np.diff(history))))
    assert mase_scale(history[:2], 4) == pytest.approx(1.0)  # too short for the season: lag 1
    assert mase(history, np.array([7.0]), np.array([9.0]), 2) == pytest.approx(2.0 / 2.0)
    # Naive2 on an exact multiplicative season: the last adjusted value, reseasonalised.
    t = np.arange(48)
    series = 10.0 * PATTERN[t % SEASON]
    noise = np.random.default_rng(0).normal(10, 1, 48)
    assert is_seasonal(series, SEASON) and not is_seasonal(noise, SEASON)
    np.testing.assert_allclose(seasonal_indices(series, SEASON), PATTERN, rtol=1e-12)
    np.testing.assert_allclose(naive2(series, 6, SEASON), 10.0 * PATTERN[np.arange(48, 54) % SEASON], rtol=1e-12)
    np.testing.assert_allclose(naive2(noise, 3, SEASON), [noise[-1]] * 3)  # no season found
    # One window per series: the windowed means are the plain per-series ones.
    actuals = [np.array([1.0, 2.0]), np.array([3.0, 5.0])]
    forecasts = [np.array([1.5, 2.0]), np.array([2.0, 5.0])]
    plain = per_series([history, history], actuals, forecasts, 2)
    windowed = per_series_of_windows(np.array([0, 1]), np.stack(actuals), np.stack(forecasts), np.full(2, 2.0))
    np.testing.assert_allclose(windowed.smape, plain.smape)
    np.testing.assert_allclose(windowed.mase, plain.mase)
    reference, _ = naive2_per_series([history, history], actuals, 2)
    assert plain.summary(reference).owa is not None and plain.summary().owa is None


@pytest.fixture(scope="module")
def protocol_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run cut the competitions' way, with seasonal adjustment, on series of 7 to 60 values."""
    folder = tmp_path_factory.mktemp("protocol")
    lengths = {f"s{k}": n for k, n in enumerate([60, 55, 50, 45, 40, 30, 20, 14, 7])}
    seasonal_table(lengths).to_csv(folder / "series.csv", index=False)
    train_in_process(
        ["--dataset", str(folder / "series.csv"), "--id_column", "id", "--time_column", "t", "--data_column", "y",
         "--seq_length", "16", "--horizon", str(H), "--test_size", str(H), "--season", str(SEASON), "--deseasonalize",
         "--loss", "mae", "--num_train_epochs", "2", "--hidden_size", "8", "--output_dir", str(folder / "run")]
    )  # fmt: skip
    return folder


def test_a_run_cut_by_size_reports_the_competitions_measures(protocol_run: Path) -> None:
    results = json.loads((protocol_run / "run" / "all_results.json").read_text())
    # s8 (7 values) cannot give 4 + 4 and still train: dropped by name; s6 and s7 (20, 14) train padded.
    config = json.loads((protocol_run / "run" / "run_config.json").read_text())
    assert config["data"]["series"] == 8 and "'s8' (7 values)" in config["data"]["dropped_series"][0]
    for split in ("val", "test"):
        assert results[f"{split}_series"] == 8
        for prefix in ("", "persistence_", "naive2_"):
            key = f"{prefix}{split}_smape" if prefix else f"{split}_smape"
            assert 0 < results[key] < 200, key
        assert results[f"naive2_{split}_owa"] == pytest.approx(1.0)
        assert results[f"{split}_owa"] > 0
    assert results["best_step"] == results["optimizer_steps"] * (1 + int(np.argmin(results["val_mse_history"]))) // 2
    # Judged as the user reads it: the mean over series of each series' MASE, on the test split.
    assert results["verdict"].endswith("(mean per-series MASE; > 0 is better than the baseline)")
    assert " on test: " in results["verdict"]
    saved = json.loads((protocol_run / "run" / "model" / "normalization.json").read_text())
    assert sorted(saved["seasonal"]) == sorted(f"s{k}" for k in range(8))
    # Series of 3 seasons or more in their training part get PATTERN back; shorter ones none.
    np.testing.assert_allclose(saved["seasonal"]["s0"], PATTERN, rtol=0.05)
    assert saved["seasonal"]["s7"] == [1.0] * SEASON


def predict(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = predict_main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_predict_scores_the_future_as_the_run_scored_its_test(protocol_run: Path, tmp_path: Path) -> None:
    table = pd.read_csv(protocol_run / "series.csv")
    table = table[table["id"] != "s8"]
    from_end = table.groupby("id").cumcount(ascending=False)
    history, future = table[from_end >= H], table[from_end < H]
    history.to_csv(tmp_path / "history.csv", index=False)
    future.to_csv(tmp_path / "future.csv", index=False)
    columns = ["--id_column", "id", "--time_column", "t", "--data_column", "y"]
    code, out, err = predict(
        "--model", str(protocol_run / "run" / "model"), "--input", str(tmp_path / "history.csv"), *columns,
        "--horizon", str(H), "--output", str(tmp_path / "f.csv"), "--actuals", str(tmp_path / "future.csv"),
    )  # fmt: skip
    assert code == 0, err
    assert "shorter than the window of 16 values, left-padded" in err  # s6, s7
    scores = json.loads(out.strip().splitlines()[-2])["scores"]
    # The same origins, the same model, the same seasonal factors: the run's test sMAPE exactly.
    run = json.loads((protocol_run / "run" / "all_results.json").read_text())
    assert scores["model"]["smape"] == pytest.approx(run["test_smape"], rel=1e-6)
    # Naive2's seasonal indices: the run fits them on each training part, predict (as M4 did) on the
    # whole history it is given (here the validation values too), so the two differ a little.
    assert scores["naive2"]["smape"] == pytest.approx(run["naive2_test_smape"], rel=0.02)
    per = pd.read_csv(tmp_path / "f.scores.csv")
    assert len(per) == 8 and per["smape"].mean() == pytest.approx(scores["model"]["smape"])
    # A future that misses a series, or is shorter than the horizon: one line, exit 2, nothing scored.
    future[future["id"] != "s0"].to_csv(tmp_path / "partial.csv", index=False)
    future.groupby("id").head(2).to_csv(tmp_path / "short.csv", index=False)
    for name, message in (("partial.csv", "has no values for 1 series forecast (e.g. 's0')"),
                          ("short.csv", "has 2 future values, fewer than --horizon 4")):  # fmt: skip
        target = tmp_path / f"{name}.scores.csv"
        code, _, err = predict(
            "--model", str(protocol_run / "run" / "model"), "--input", str(tmp_path / "history.csv"), *columns,
            "--horizon", str(H), "--output", str(tmp_path / f"{name}.out.csv"), "--actuals", str(tmp_path / name),
            "--scores", str(target),
        )  # fmt: skip
        assert code == 2 and message in err.strip().splitlines()[-1] and "Traceback" not in err
        assert not target.exists()


def test_the_backtest_of_a_deseasonalized_model_reproduces_the_runs_test(protocol_run: Path) -> None:
    """One origin per series at the test cut, the recorded seasonal factors applied: the run's test MSE."""
    from lstm_trainer.cli.backtest import main as backtest_main

    out = protocol_run / "backtest"
    code = backtest_main(
        ["--model", str(protocol_run / "run" / "model"), "--output_dir", str(out),
         "--dataset", str(protocol_run / "series.csv"), "--id_column", "id", "--time_column", "t",
         "--data_column", "y", "--test_size", str(H), "--horizon", str(H), "--season", str(SEASON),
         "--deseasonalize"]
    )  # fmt: skip
    assert code == 0
    run = json.loads((protocol_run / "run" / "all_results.json").read_text())
    backtest = json.loads((out / "backtest.json").read_text())
    assert backtest["origins"] == 8 and backtest["mse"] == pytest.approx(run["test_mse"], rel=1e-9)


def test_the_final_fit_holds_nothing_out_and_keeps_the_last_step(tmp_path: Path) -> None:
    """--val_size 0: no validation split, no early stopping, and the model exported is the last step's."""
    from safetensors.numpy import load_file

    seasonal_table({f"s{k}": n for k, n in enumerate([40, 36, 30, 20])}).to_csv(tmp_path / "s.csv", index=False)
    args = ["--dataset", str(tmp_path / "s.csv"), "--id_column", "id", "--time_column", "t", "--data_column", "y",
            "--seq_length", "8", "--horizon", str(H), "--val_size", "0", "--season", str(SEASON), "--hidden_size", "8",
            "--total_batch_size", "16", "--per_device_train_batch_size", "16", "--sampling", "series"]  # fmt: skip
    weights = []
    for steps, test_size in ((3, H), (4, H), (4, 0)):
        out = tmp_path / f"run{steps}_{test_size}"
        results = train_in_process([*args, "--test_size", str(test_size), "--max_train_steps", str(steps),
                                    "--num_train_epochs", "5", "--output_dir", str(out)])  # fmt: skip
        assert results.optimizer_steps == steps and results.scores.validation is None
        saved = json.loads((out / "all_results.json").read_text())
        assert saved["best_val_mse"] is None and saved["val_mse"] is None and saved["val_mse_history"] == []
        # Every series' training part (36 - 4 values) is a whole epoch of more than 4 steps: stopped mid-epoch,
        # so the model is the one written at the stop, not an epoch end's.
        assert saved["epochs_completed"] == 0 and saved["stopped_at_max_steps"] and saved["best_step"] == steps
        assert (saved.get("test_smape") is not None) == (test_size > 0)
        weights.append(load_file(str(out / "model" / "model.safetensors")))
    assert any(not np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])  # step 3 != step 4


def test_selection_on_smape_keeps_the_epoch_that_scores_best(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--select_on smape: each epoch's validation sMAPE (per series, data units) chooses the model kept,
    and it is the sMAPE the final scoring of that model reports."""
    capsys.readouterr()
    seasonal_table({f"s{k}": n for k, n in enumerate([60, 50, 40, 30, 24])}).to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "run"
    train_in_process(
        ["--dataset", str(tmp_path / "s.csv"), "--id_column", "id", "--time_column", "t", "--data_column", "y",
         "--seq_length", "8", "--horizon", str(H), "--test_size", str(H), "--season", str(SEASON), "--deseasonalize",
         "--select_on", "smape", "--num_train_epochs", "4", "--hidden_size", "8", "--learning_rate", "1e-2",
         "--total_batch_size", "16", "--per_device_train_batch_size", "16", "--output_dir", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.count("| val smape ") == 4  # every epoch line leads with what selects
    # One unit per figure: validation MSEs are per-series z-scores, persistence is not put beside them.
    assert "Persistence baseline (next = last value): in the table below, in the data's units" in printed
    results = json.loads((out / "all_results.json").read_text())
    chosen = results["val_selection_history"]
    assert len(chosen) == 4 == len(results["val_mse_history"])
    best = int(np.argmin(chosen))
    assert results["val_smape"] == pytest.approx(chosen[best], rel=1e-4)
    assert results["best_val_mse"] == results["val_mse_history"][best]
    assert results["best_step"] == results["optimizer_steps"] // 4 * (best + 1)
    with pytest.raises(UserError, match="--select_on smape scores series one by one"):
        train_in_process(["--select_on", "smape", "--output_dir", str(tmp_path / "sine")])


def test_a_series_shorter_than_min_inputs_plus_horizon_still_trains_and_is_forecast(tmp_path: Path) -> None:
    """M1 yearly has series of 9 values, h 6, and the bench's --min_inputs 4: such a series once got no
    training window, a NaN scale, and predict stopped on it. It trains on one window of the 3 values it has."""
    table = seasonal_table({"long": 40, "mid": 24, "nine": 9})
    table["y"] *= table["id"].map({"long": 1, "mid": 100, "nine": 10_000})  # scales the pooled statistics miss
    table.to_csv(tmp_path / "s.csv", index=False)
    columns = "--id_column id --time_column t --data_column y --horizon 6"
    train_in_process(
        f"--dataset {tmp_path / 's.csv'} {columns} --seq_length 12 --min_inputs 4 --val_size 0 --test_size 0 "
        f"--season {SEASON} --deseasonalize --hidden_size 8 --total_batch_size 8 --per_device_train_batch_size 8 "
        f"--max_train_steps 2 --output_dir {tmp_path / 'out'}".split()
    )
    scales = json.loads((tmp_path / "out" / "model" / "normalization.json").read_text())["series"]
    assert set(scales) == {"long", "mid", "nine"}
    assert all(np.isfinite([v["mean"], v["std"]]).all() and v["std"] > 0 for v in scales.values()), scales
    code, _, err = predict(
        *f"--model {tmp_path / 'out' / 'model'} --input {tmp_path / 's.csv'} {columns} --output {tmp_path / 'f.csv'}".split()
    )
    assert code == 0, err
    forecast = pd.read_csv(tmp_path / "f.csv")
    nine = forecast[forecast["id"] == "nine"]["forecast"].to_numpy()
    assert len(nine) == 6 and np.isfinite(nine).all()
    # The same series under ids the model never saw: scaled by their own history, which in a final fit
    # (nothing held out) is what training scaled them by, so each forecast is the known id's. The pooled
    # statistics (the level of all three) would forecast each at the others' level.
    table.assign(id="new_" + table["id"]).to_csv(tmp_path / "new.csv", index=False)
    code, _, err = predict(
        *f"--model {tmp_path / 'out' / 'model'} --input {tmp_path / 'new.csv'} {columns} --output {tmp_path / 'n.csv'}".split()
    )
    assert code == 0 and "3 of 3 series not seen in training, normalised with their own history's" in err, err
    renamed = pd.read_csv(tmp_path / "n.csv")
    assert renamed["forecast"].to_numpy() == pytest.approx(forecast["forecast"].to_numpy(), rel=1e-4)


def test_owa_is_none_where_naive2_made_no_error() -> None:
    """Series flat over the horizon: Naive2 is exact, so nothing is relative to it (was a ZeroDivisionError)."""
    flat = [np.full(10, 5.0), np.full(10, 7.0)]
    reference, forecasts = naive2_per_series(flat, [np.full(3, 5.0), np.full(3, 7.0)], None)
    model = per_series(flat, [np.full(3, 5.0), np.full(3, 7.0)], [f + 0.1 for f in forecasts], None)
    assert float(np.mean(reference.smape)) == 0 and model.summary(reference).owa is None
