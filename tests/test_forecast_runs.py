"""Distribution, quantile and multi-step models trained in-process on tiny data; predict and backtest on them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, every, results, train_in_process

from lstm_trainer.cli import backtest as backtest_command
from lstm_trainer.cli import predict
from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data
from lstm_trainer.data.windows import WindowInputs
from lstm_trainer.errors import UserError
from lstm_trainer.evaluate import LinearAR, backtest
from lstm_trainer.evaluate.probabilistic import normal_crps
from lstm_trainer.model.inference import Predictor

SEQ = ["--seq_length", "20"]


@pytest.fixture(scope="module")
def normal_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("normal") / "run"
    train_in_process([*TINY, *SEQ, "--output_dir", str(out), "--distribution", "normal", "--num_train_epochs", "4"])
    return out


@pytest.fixture(scope="module")
def horizon_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("horizon") / "run"
    train_in_process([*TINY, *SEQ, "--output_dir", str(out), "--horizon", "4"])
    return out


def test_normal_head_is_calibrated_on_the_known_noise(normal_run: Path) -> None:
    """The sine's noise is N(0, 0.1): the intervals cover about their level, and the CRPS is near
    that of the true noise around the linear AR's forecast (the best linear point forecast)."""
    res = results(normal_run)
    for level, tolerance in ((50, 0.06), (80, 0.05), (95, 0.03)):
        assert res[f"val_coverage_{level}"] == pytest.approx(level / 100, abs=tolerance), level
    data = prepare_data(DataConfig(num_train_samples=2048, num_val_samples=512, seq_length=20), 42)
    (train_inputs, train_targets), (val_inputs, val_targets) = (every(data.windows[s]) for s in ("train", "validation"))
    linear = LinearAR.fit(train_inputs, train_targets).predict(val_inputs)
    noise_crps = float(np.mean(normal_crps(val_targets.astype(np.float64), linear, np.full(len(linear), 0.1))))
    assert res["val_crps"] == pytest.approx(noise_crps, rel=0.15)
    assert res["val_mse"] < res["persistence_val_mse"]
    assert "val_mse_by_step" not in res  # one step: no per-step lists
    card = (normal_run / "model" / "README.md").read_text()
    assert "| val | " in card and "coverage 80%" in card and "normal distribution" in card
    assert json.loads((normal_run / "model" / "config.json").read_text())["distribution"] == "normal"


def test_a_distribution_run_resumes(normal_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*TINY, *SEQ, "--output_dir", str(out), "--distribution", "studentt", "--horizon", "2"]
    train_in_process([*args, "--num_train_epochs", "1"])
    resumed = train_in_process([*args, "--num_train_epochs", "2", "--resume_from_checkpoint", "latest"])
    assert resumed.scores.validation is not None
    model = resumed.scores.validation.model
    assert model is not None
    intervals_by_step = model.intervals_by_step
    assert resumed.epochs_completed == 2 and intervals_by_step is not None and len(intervals_by_step) == 2
    assert all(np.isfinite(resumed.train_loss_history))


def test_horizon_run_scores_every_step(horizon_run: Path) -> None:
    res = results(horizon_run)
    assert (
        len(res["val_mse_by_step"])
        == len(res["persistence_val_mse_by_step"])
        == len(res["linear_val_mse_by_step"])
        == 4
    )
    assert res["val_mse"] == pytest.approx(np.mean(res["val_mse_by_step"]), rel=1e-9)
    assert all(m < p for m, p in zip(res["val_mse_by_step"], res["persistence_val_mse_by_step"], strict=True))
    assert "val_crps" not in res  # a point forecast has no distribution scores
    assert json.loads((horizon_run / "model" / "config.json").read_text())["horizon"] == 4


def write_series(path: Path, values: np.ndarray) -> Path:
    path.write_text("y\n" + "\n".join(repr(float(v)) for v in values) + "\n")
    return path


def validation_values() -> np.ndarray:
    data = prepare_data(DataConfig(num_train_samples=2048, num_val_samples=512, seq_length=20), 42)
    return data.windows["validation"].covered_values()


def test_predict_is_direct_up_to_the_horizon_and_recursive_beyond(horizon_run: Path, tmp_path: Path) -> None:
    values = validation_values()[:100]
    out = tmp_path / "f.csv"
    assert (
        predict.main(
            [
                "--model",
                str(horizon_run / "model"),
                "--input",
                str(write_series(tmp_path / "s.csv", values)),
                "--horizon",
                "6",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5", "6"] and list(rows[0]) == ["step", "forecast"]
    predictor = Predictor.load(horizon_run / "model")
    direct = predictor.forecast(values[None, -20:]).point[0]  # one call: the 4 steps of the head
    assert [float(r["forecast"]) for r in rows[:4]] == pytest.approx(direct.tolist(), abs=1e-9)
    fed_back = predictor.forecast(np.concatenate([values[-16:], direct])[None]).point[0]
    assert [float(r["forecast"]) for r in rows[4:]] == pytest.approx(fed_back[:2].tolist(), abs=1e-6)


def test_predict_writes_quantile_columns_and_shades_intervals(normal_run: Path, tmp_path: Path) -> None:
    source = write_series(tmp_path / "s.csv", validation_values()[:100])
    out, plot = tmp_path / "f.csv", tmp_path / "f.png"
    assert (
        predict.main(
            [
                "--model",
                str(normal_run / "model"),
                "--input",
                str(source),
                "--horizon",
                "3",
                "--quantiles",
                "0.9",
                "0.1",
                "0.5",
                "0.025",
                "0.975",
                "--output",
                str(out),
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["step", "forecast", "q0.025", "q0.1", "q0.5", "q0.9", "q0.975"]
    for row in rows:
        values = [float(row[k]) for k in ("q0.025", "q0.1", "q0.5", "q0.9", "q0.975")]
        assert values == sorted(values) and float(row["q0.5"]) == pytest.approx(float(row["forecast"]))
        assert 0.1 < values[3] - values[1] < 0.5  # the 80% interval of N(., ~0.1): about 0.26 wide
    assert plot.stat().st_size > 10_000


def test_predict_refuses_quantiles_of_a_point_model(horizon_run: Path, tmp_path: Path) -> None:
    source = write_series(tmp_path / "s.csv", validation_values()[:100])
    args = ["--model", str(horizon_run / "model"), "--input", str(source), "--quantiles", "0.1"]
    with pytest.raises(UserError, match="--quantiles needs a probabilistic model"):
        predict.run(predict.build_parser().parse_args(args))


def origins(values: np.ndarray, horizon: int, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [N, 20] and targets [N, horizon] of every `stride`-th origin of one series."""
    views = np.lib.stride_tricks.sliding_window_view(values.astype(np.float64), 20 + horizon)[::stride]
    return views[:, :20], views[:, 20:]


def score_origins(predictor: Predictor, values: np.ndarray, horizon: int, stride: int = 1) -> backtest.Backtest:
    inputs, targets = origins(values, horizon, stride)
    return backtest.score_origins(predictor, WindowInputs(inputs), targets, 1.0, None, None, "test", stride)


def test_backtest_batched_equals_a_loop_over_origins(normal_run: Path) -> None:
    """All origins in one pass give what one model call per origin gives, recursion included."""
    predictor = Predictor.load(normal_run / "model")
    values = validation_values()
    result = score_origins(predictor, values[:80], horizon=3, stride=7)
    inputs, targets = origins(values[:80], 3, 7)
    assert result.origins == len(inputs) == (80 - 23) // 7 + 1
    batched = predictor.forecast(inputs, steps=3)
    for i in range(len(inputs)):
        window = inputs[i : i + 1]
        one = predictor.forecast(window, steps=3)
        assert one.params[0] == pytest.approx(batched.params[i], abs=1e-5)
        assert targets[i].tolist() == values[i * 7 + 20 : i * 7 + 23].tolist()
    assert result.scores["model"].overall.mse == pytest.approx(float(np.mean((batched.point - targets) ** 2)))


def test_backtest_command_writes_json_table_and_picture(horizon_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bt"
    code = backtest_command.main(
        [
            "--model",
            str(horizon_run / "model"),
            "--num_train_samples",
            "2048",
            "--num_val_samples",
            "512",
            "--horizon",
            "6",
            "--stride",
            "2",
            "--season",
            "10",
            "--output_dir",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads((out / "backtest.json").read_text())
    assert (
        record["split"] == "validation"
        and record["horizon"] == 6
        and record["model_horizon"] == 4
        and record["recursive"]
    )
    assert record["origins"] == (512 - 1) // 2 + 1  # every other one of the 512 validation windows
    assert {"mse", "mae", "mase", "by_step", "baselines"} <= set(record) and "crps" not in record
    assert set(record["baselines"]) == {"persistence", "seasonal_naive", "linear"}
    assert len(record["by_step"]["mse"]) == 6
    assert "| model |" in (out / "backtest.md").read_text() and (out / "backtest.png").stat().st_size > 10_000


def test_backtest_of_a_distribution_reports_crps_and_coverage(normal_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bt"
    # No --horizon: the model's own (1).
    assert (
        backtest_command.main(
            [
                "--model",
                str(normal_run / "model"),
                "--num_train_samples",
                "2048",
                "--num_val_samples",
                "512",
                "--output_dir",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads((out / "backtest.json").read_text())
    assert {"crps", "coverage_50", "coverage_80", "coverage_95"} <= set(record)
    assert record["horizon"] == record["model_horizon"] == 1 and len(record["by_step"]["coverage_80"]) == 1
    assert record["coverage_80"] == pytest.approx(0.8, abs=0.08)


@pytest.mark.e2e
def test_two_processes_zero3_bf16_distribution_and_horizon(tmp_path: Path) -> None:
    """The Student-t head over 3 steps under what DeepSpeed changes most: 2 processes, ZeRO-3, bf16."""
    from conftest import output, run_train

    out = tmp_path / "run"
    done = run_train(
        [
            *TINY,
            *SEQ,
            "--num_train_samples",
            "1280",
            "--num_val_samples",
            "256",
            "--num_train_epochs",
            "2",
            "--distribution",
            "studentt",
            "--horizon",
            "3",
            "--mixed_precision",
            "bf16",
            "--output_dir",
            str(out),
        ],
        launcher=[
            "accelerate",
            "launch",
            "--config_file",
            "accelerate_configs/cpu_2proc.yaml",
            "--deepspeed_config_file",
            "accelerate_configs/ds_zero3.json",
        ],
        env={"HF_HOME": str(tmp_path / "hf_home")},
    )
    assert done.returncode == 0, output(done)
    res = results(out)
    assert res["world_size"] == 2 and res["deepspeed"]["zero_stage"] == 3 and res["mixed_precision"] == "bf16"
    assert all(np.isfinite(res["train_loss_history"])) and np.isfinite(res["val_crps"])
    assert res["val_coverage_80"] == pytest.approx(0.8, abs=0.15) and len(res["val_mse_by_step"]) == 3
    assert res["val_mse"] < res["persistence_val_mse"]
    assert Predictor.load(out / "model").horizon == 3


def test_own_series_with_a_test_split_gets_test_interval_scores(tmp_path: Path) -> None:
    """A file's series (z-scored, with a test split): CRPS and coverage for test too, in the data's units."""
    rng = np.random.default_rng(3)
    t = np.arange(3000)
    values = 100 + 20 * np.sin(t / 15) + rng.normal(0, 2.0, len(t))  # noise sd 2 in the data's units
    source = write_series(tmp_path / "series.csv", values)
    res = train_in_process(
        [
            *TINY,
            *SEQ,
            "--dataset",
            str(source),
            "--output_dir",
            str(tmp_path / "run"),
            "--distribution",
            "normal",
            "--horizon",
            "2",
        ]
    )
    assert [split for split, _ in res.scores.splits()] == ["validation", "test"]
    for split, scores in res.scores.splits():
        model = scores.model
        assert model is not None and model.intervals is not None and model.intervals_by_step is not None
        assert model.intervals.coverage[80] == pytest.approx(0.8, abs=0.1), split
        # A calibrated normal's CRPS is about its sd / sqrt(pi), the sd about the RMSE: in the
        # data's units (~1.3 here), not the z-score's (~0.1).
        assert model.intervals.crps == pytest.approx(np.sqrt(model.overall.mse / np.pi), rel=0.2), split
        assert len(model.intervals_by_step) == 2


def test_backtest_calls_the_model_once_per_model_horizon(horizon_run: Path) -> None:
    """All origins in one batch: 1 call for steps within the head's 4, 3 for 10 steps, whatever the origin count."""
    predictor = Predictor.load(horizon_run / "model")
    calls: list[int] = []
    # A forward hook sees every call the backtest makes through the module, and its batch size.
    predictor.model.register_forward_hook(lambda _module, args, _output: calls.append(len(args[0])))
    values = validation_values()
    score_origins(predictor, values, horizon=4)
    assert calls == [len(values) - 20 - 4 + 1]
    calls.clear()
    score_origins(predictor, values, horizon=10)
    assert calls == [len(values) - 20 - 10 + 1] * 3
