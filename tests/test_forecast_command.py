"""`lstm-trainer forecast` on tiny panels: the season from the dates, the ensemble folder every reader
understands, the median of its members, the fallback to a better baseline, and its bad inputs.

The protocol's runs are real `python -m lstm_trainer.cli.train` children, a few steps each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, child_env
from hub_server import HubServer

from lstm_trainer.api import Forecaster
from lstm_trainer.cli.forecast import main as forecast_main
from lstm_trainer.cli.main import main as verb_main
from lstm_trainer.cli.predict import main as predict_main
from lstm_trainer.errors import UserError
from lstm_trainer.forecast.ensemble import EnsemblePredictor, Manifest, load_predictor
from lstm_trainer.forecast.preset import WARMUP, Member, Preset
from lstm_trainer.forecast.season import infer_season
from lstm_trainer.model.inference import Predictor

H = 4
FAST = "--hidden_size 8 --max_train_steps 20"


def quarterly_panel(path: Path, lengths: tuple[int, ...] = (40, 32, 28, 24, 12)) -> Path:
    """A long table (id, quarter, sales): seasonal series at several levels, dates three months apart."""
    rng = np.random.default_rng(0)
    parts = []
    for k, n in enumerate(lengths):
        t = np.arange(n)
        y = (50 + 10 * k + 0.5 * t) * np.array([0.9, 1.1, 1.2, 0.8])[t % 4] + rng.normal(0, 0.5, n)
        dates = pd.date_range("2010-01-01", periods=n, freq="QS")
        parts.append(pd.DataFrame({"id": f"s{k}", "quarter": dates.strftime("%Y-%m-%d"), "sales": y}))
    pd.concat(parts).to_csv(path, index=False)
    return path


def forecast_args(data: Path, out: Path, *more: str) -> list[str]:
    return [
        *("--dataset", str(data), "--id_column", "id", "--time_column", "quarter", "--data_column", "sales"),
        *("--horizon", str(H), "--output", str(out / "forecast.csv"), "--output_dir", str(out / "run")),
        *more,
    ]


@pytest.fixture(scope="module")
def forecast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One forecast command: two seeds x two lookbacks, a few steps each."""
    out = tmp_path_factory.mktemp("forecast")
    data = quarterly_panel(out / "panel.csv")
    args = forecast_args(data, out, "--seeds", "2", "--lookbacks", "2", "3", "--fallback", "none")
    assert forecast_main([*args, "--train_flags", FAST]) == 0
    return out


@pytest.mark.parametrize(
    ("freq", "season"),
    [("MS", 12), ("ME", 12), ("QS", 4), ("QE-DEC", 4), ("W-SUN", 52), ("D", 7), ("B", 5), ("h", 24), ("YS", 1)],
)
def test_the_season_is_inferred_from_dates(freq: str, season: int) -> None:
    times = pd.Series(pd.date_range("2020-01-01", periods=30, freq=freq).strftime("%Y-%m-%d %H:%M"))
    assert infer_season(times) == season


def test_plain_integer_times_carry_no_season_and_the_longest_series_decides() -> None:
    assert infer_season(pd.Series(np.arange(40))) is None
    times = pd.Series(["2020-01", "2020-02", "2019-01", "2019-04", "2019-07", "2019-10"])
    assert infer_season(times, pd.Series(list("aabbbb"))) == 4  # b's quarters, not a's two months


def test_the_preset_fits_the_batch_and_the_patience_to_the_data() -> None:
    long = Preset(18, 12, (120,) * 1400)  # M3 monthly's shape: ~290 steps an epoch
    assert long.window(2) == 36 and long.batch == 256 and long.patience == 3
    short = Preset(8, 4, (40,) * 756)  # M3 quarterly's shape: ~60 steps an epoch
    assert short.batch == 256 and short.patience == 10
    tiny = Preset(6, 1, (15,) * 181)  # a window's worth of values per series
    assert tiny.window(2) == 12 and tiny.batch == 128
    assert tiny.patience * tiny.windows / tiny.batch >= 2 * WARMUP  # never stops inside the warm-up
    flags = tiny.selection_flags(2, "smape")
    assert flags[flags.index("--early_stopping_patience") + 1] == str(tiny.patience)
    member = tiny.member_flags(Member(3, 44), 500)
    assert member[member.index("--seq_length") + 1] == "18" and member[member.index("--max_train_steps") + 1] == "500"


def test_the_forecast_covers_every_series_at_the_next_dates(forecast: Path) -> None:
    table = pd.read_csv(forecast / "forecast.csv")
    assert list(table.columns) == ["id", "quarter", "forecast", "q0.1", "q0.5", "q0.9"]
    assert table.groupby("id").size().to_dict() == {f"s{k}": H for k in range(5)}
    assert list(table[table.id == "s4"].quarter) == ["2013-01-01", "2013-04-01", "2013-07-01", "2013-10-01"]
    assert (table["q0.1"] <= table["forecast"]).all() and (table["forecast"] <= table["q0.9"]).all()
    manifest = Manifest.load(forecast / "run" / "model")
    assert manifest.season == 4 and manifest.horizon == H and len(manifest.members) == 4
    assert [m["window"] for m in manifest.selection["members"]] == [8, 12, 8, 12]  # max(k h, season, 8)


def test_the_ensemble_forecasts_the_median_of_its_members(forecast: Path) -> None:
    folder = forecast / "run" / "model"
    data = pd.read_csv(forecast / "panel.csv")
    ids = [f"s{k}" for k in range(5)]
    histories = [data[data.id == i].sales.to_numpy(np.float64) for i in ids]
    members = [Predictor.load(folder / name) for name in Manifest.load(folder).members]
    each = np.stack([m.forecast_from_end(histories, ids, H).forecast.point for m in members])  # [M, S, H]
    ensemble = load_predictor(folder)
    assert isinstance(ensemble, EnsemblePredictor)
    combined = ensemble.forecast_from_end(histories, ids, H).forecast.point
    np.testing.assert_allclose(combined, np.median(each, axis=0), rtol=0, atol=1e-9)
    written = pd.read_csv(forecast / "forecast.csv")["forecast"].to_numpy().reshape(5, H)
    np.testing.assert_allclose(written, combined, rtol=1e-6)  # the command reads the table as float32 (SeriesSet)
    assert np.ptp(each, axis=0).max() > 0  # the members differ: the median is not one of them copied


def test_predict_and_the_api_read_the_ensemble_folder(forecast: Path) -> None:
    folder = forecast / "run" / "model"
    args = ["--model", str(folder), "--input", str(forecast / "panel.csv"), "--id_column", "id"]
    args += ["--time_column", "quarter", "--data_column", "sales", "--horizon", str(H)]
    assert predict_main([*args, "--output", str(forecast / "predicted.csv")]) == 0
    predicted = pd.read_csv(forecast / "predicted.csv")
    written = pd.read_csv(forecast / "forecast.csv")
    np.testing.assert_allclose(predicted["forecast"], written["forecast"], rtol=1e-9)
    loaded = Forecaster.load(folder, target_col="sales", id_col="id", time_col="quarter")
    frame = pd.read_csv(forecast / "panel.csv", parse_dates=["quarter"])
    np.testing.assert_allclose(loaded.predict(df=frame)["forecast"], written["forecast"], rtol=1e-9)


def test_a_hub_round_trip_carries_the_ensemble(forecast: Path) -> None:
    folder = forecast / "run" / "model"
    with HubServer(token="hf_forecast_secret") as hub:
        env = hub.env(base=child_env(), with_token=True)

        def run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", module, *args]
            return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

        pushed = run("lstm_trainer.cli.hub", "push", "--model", str(folder), "--hub_model_id", "test-user/ensemble")
        assert pushed.returncode == 0, pushed.stderr
        out = forecast / "from_hub.csv"
        predicted = run(
            "lstm_trainer.cli.predict",
            *("--model", "test-user/ensemble", "--input", str(forecast / "panel.csv"), "--id_column", "id"),
            *("--time_column", "quarter", "--data_column", "sales", "--horizon", str(H), "--output", str(out)),
        )
        assert predicted.returncode == 0, predicted.stderr
    written = pd.read_csv(forecast / "forecast.csv")
    np.testing.assert_allclose(pd.read_csv(out)["forecast"], written["forecast"], rtol=1e-9)


def flat_tails(path: Path) -> Path:
    """Series that end flat: the naive forecast is exact on the held-out horizon, no network is."""
    rng = np.random.default_rng(3)
    parts = []
    for k in range(4):
        y = np.concatenate([100.0 * (k + 1) + rng.normal(0, 5, 18), np.full(12, 100.0 * (k + 1))])
        parts.append(pd.DataFrame({"id": f"c{k}", "t": np.arange(30), "y": y}))
    pd.concat(parts).to_csv(path, index=False)
    return path


def forecast_flat_tails(data: Path, tmp_path: Path, horizon: int) -> Manifest:
    """One seed, a few steps, selected on sMAPE (naive's is 0 on a flat tail); the ensemble's manifest."""
    args = ["--dataset", str(data), "--id_column", "id", "--time_column", "t", "--data_column", "y", "--season", "1"]
    args += ["--horizon", str(horizon), "--seeds", "1", "--select_on", "smape", "--output", str(tmp_path / "f.csv")]
    args += ["--output_dir", str(tmp_path / "r"), "--train_flags", "--hidden_size 4 --max_train_steps 40"]
    assert forecast_main(args) == 0
    return Manifest.load(tmp_path / "r" / "model")


def test_a_baseline_that_beat_the_model_forecasts_and_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = flat_tails(tmp_path / "flat.csv")
    manifest = forecast_flat_tails(data, tmp_path, horizon=3)
    scores = manifest.selection["validation"]
    assert manifest.fallback == "naive" and scores["naive"] == 0 < scores["model"]
    assert "note: naive scored 0 against the model's" in capsys.readouterr().err
    table = pd.read_csv(data)
    last = [table[table.id == f"c{k}"].y.iloc[-1] for k in range(4)]
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "f.csv")["forecast"], np.repeat(last, 3))


def test_no_fallback_where_the_held_out_horizon_is_most_of_the_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A horizon of 8 of 30 values: the selection trains on too little to judge the members by."""
    data = flat_tails(tmp_path / "flat.csv")
    manifest = forecast_flat_tails(data, tmp_path, horizon=8)
    assert manifest.fallback is None and manifest.selection["fallback_not_trusted"] == "naive"
    assert "the networks' forecast is kept" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (["--horizon", "40"], "is not shorter than every series"),
        (["--horizon", "0"], "--horizon must be a whole number of steps >= 1"),
        (["--time_column", "n"], "the season cannot be inferred from 'n'"),
        (["--season", "99"], "--season 99 is longer than every series"),
        (["--seeds", "0"], "--seeds and every --lookbacks value must be >= 1"),
        (["--output", "forecast.txt"], "end the name in .csv"),
        (["--train_flags", "'--hidden_size"], "--train_flags cannot be read"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: list[str], message: str
) -> None:
    data = quarterly_panel(tmp_path / "panel.csv")
    table = pd.read_csv(data)
    table["n"] = np.arange(len(table))
    table.to_csv(data, index=False)
    args = forecast_args(data, tmp_path)
    for k in range(0, len(change), 2):  # the changed flag replaces its value
        if change[k] in args:
            args[args.index(change[k]) + 1] = change[k + 1]
        else:
            args += change[k : k + 2]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert forecast_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no forecast


def test_under_a_launcher_it_refuses_to_run_once_per_rank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert forecast_main(forecast_args(quarterly_panel(tmp_path / "panel.csv"), tmp_path)) == 2
    assert "start it without a launcher" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_used_output_dir_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = quarterly_panel(tmp_path / "panel.csv")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert forecast_main(forecast_args(data, tmp_path)) == 2
    assert "--output_dir" in capsys.readouterr().err and (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_the_api_chooses_the_protocol_unless_told_a_model() -> None:
    assert Forecaster(horizon=7).ensemble
    assert Forecaster(horizon=7, season=12, seeds=2, lookbacks=[2, 3]).ensemble
    assert not Forecaster(horizon=7, seq_length=14).ensemble
    with pytest.raises(UserError, match="seeds is an ensemble option"):
        Forecaster(horizon=7, seq_length=14, seeds=2)
    with pytest.raises(UserError, match="hidden_size is chosen by the forecast protocol"):
        Forecaster(horizon=7, hidden_size=8, ensemble=True)


def test_a_refused_ensemble_fit_leaves_no_folder(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2020-01-01", periods=10, freq="MS"), "y": np.arange(10.0)}
    )
    with pytest.raises(UserError, match="is not shorter than every series"):
        Forecaster(horizon=12, output_dir=str(tmp_path / "runs" / "f")).fit(df)
    assert list(tmp_path.iterdir()) == []  # neither the DataFrame's file nor the folders made for it


def test_the_api_says_a_refusal_in_its_own_terms(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2020-01-01", periods=40, freq="MS"), "y": np.arange(40.0)}
    )
    df.loc[7, "y"] = np.nan
    with pytest.raises(UserError) as refused:
        Forecaster(horizon=4, output_dir=str(tmp_path / "f")).fit(df)
    said = str(refused.value)
    assert said.startswith("df: series 'a'") and "fill_missing" in said and "--" not in said and "fit_data" not in said
    assert not (tmp_path / "f").exists()


def test_one_command_with_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    assert verb_main([]) == 2
    assert "forecast" in capsys.readouterr().out
    assert verb_main(["fly"]) == 2
    assert "unknown verb 'fly'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as done:
        verb_main(["predict", "--help"])
    assert done.value.code == 0 and "--model" in capsys.readouterr().out


@pytest.fixture(autouse=True)
def _here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # a relative --output lands in the test's own folder
