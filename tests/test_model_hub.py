"""The model on the Hub: a run pushes it, predict loads it by id, bad setups stop before training.

Against tests/hub_server.py on 127.0.0.1, with the unmodified huggingface_hub client. The trainer
runs in-process; huggingface_hub read HF_ENDPOINT when it was first imported, so the fixture
points its module constants at the local server (HfApi objects are built per call and follow them).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY, child_env, hub_client, made_results, output, results, train_in_process
from hub_server import HubServer

from lstm_trainer.cli.train import main as train_main
from lstm_trainer.cli.train import parse_config
from lstm_trainer.errors import UserError
from lstm_trainer.files import MARKER

TOKEN = "hf_lstm_trainer_model_secret"
RUN = [*TINY, "--num_train_epochs", "1", "--seq_length", "20"]
FILES = ["README.md", "config.json", "model.safetensors", "normalization.json"]


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as server:
        yield server


def closed_endpoint() -> str:
    """A port nobody listens on: the Hub "cannot be reached"."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def point_client_at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str, token: str | None) -> None:
    """This process's huggingface_hub talks to `endpoint` with `token` (no developer login leaks in)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the test server speaks plain Git LFS
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_login_token"))
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)


def hub_env(hub: HubServer, token: bool = True) -> dict[str, str]:
    env = hub.env(base=child_env(), with_token=token)
    env.update(HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def run_module(env: dict[str, str], module: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def write_series(path: Path) -> Path:
    values = np.sin(np.arange(120) / 8.0) * 1.5
    path.write_text("t,y\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values)))
    return path


def everything_written(out: Path) -> str:
    return "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


def test_a_run_pushes_its_model_and_predict_loads_it_by_id(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    point_client_at(monkeypatch, tmp_path, hub.url, TOKEN)
    out = tmp_path / "run"
    res = train_in_process(
        [*RUN, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "test-user/sine-lstm", "--hub_private_repo"]
    )
    captured = capfd.readouterr()
    assert f"model pushed to {hub.url}/test-user/sine-lstm" in captured.out
    assert res.to_dict() == results(out)  # all_results.json was written before the push
    assert sorted(p.name for p in (out / "model").iterdir()) == [MARKER, *FILES]  # and the model stays
    assert hub.repos["model:test-user/sine-lstm"]["private"] is True
    # The client's own best-effort look-up of AI-agent harnesses (when AGENT-like variables are set) is not ours.
    assert [r for r in hub.unhandled if "/api/agent-harnesses" not in r] == []

    env = hub_env(hub)
    pushed = hub_client(
        env,
        """
        import json
        from huggingface_hub import HfApi, ModelCard, hf_hub_download
        files = HfApi().list_repo_files("test-user/sine-lstm")
        card = ModelCard.load("test-user/sine-lstm")
        print(json.dumps({"files": files, "meta": card.data.to_dict(), "text": card.text}))
    """,
    )
    assert sorted(f for f in pushed["files"] if f != ".gitattributes") == FILES
    meta = pushed["meta"]
    assert meta["library_name"] == "lstm-trainer" and meta["license"] == "cc0-1.0"
    assert "time-series-forecasting" in meta["tags"] and meta["pipeline_tag"] == "time-series-forecasting"
    assert "python -m lstm_trainer.cli.predict --model test-user/sine-lstm --input series.csv" in pushed["text"]
    assert 'resolve_model("test-user/sine-lstm")' in pushed["text"] and "path/to/this/folder" not in pushed["text"]

    # Predict by Hub id gives the very forecast the local folder gives.
    series = write_series(tmp_path / "series.csv")
    forecasts = {}
    for name, model, extra in [
        ("local", str(out / "model"), {}),
        ("hub", "test-user/sine-lstm", {}),
        ("cached", "test-user/sine-lstm", {"HF_HUB_OFFLINE": "1"}),
    ]:
        target = tmp_path / f"{name}.csv"
        done = run_module(
            {**hub_env(hub), **extra},
            "lstm_trainer.cli.predict",
            "--model",
            model,
            "--input",
            str(series),
            "--data_column",
            "y",
            "--horizon",
            "12",
            "--output",
            str(target),
        )
        assert done.returncode == 0, output(done)
        assert TOKEN not in done.stdout + done.stderr
        forecasts[name] = target.read_text()
    assert forecasts["hub"] == forecasts["local"] == forecasts["cached"]
    assert len(forecasts["local"].splitlines()) == 13

    cases = [
        ({}, "test-user/nothing-here", "error: model test-user/nothing-here not found on the Hub"),
        ({}, "test-user/sine-lstm --model_revision v9", "error: model test-user/sine-lstm has no revision 'v9'"),
        ({"HF_HUB_OFFLINE": "1"}, "test-user/never-fetched", "HF_HUB_OFFLINE is set and no copy is in the cache"),
        (
            {"HF_ENDPOINT": closed_endpoint()},
            "test-user/never-fetched",
            "cannot be reached and no copy is in the cache",
        ),
    ]
    for extra, model, message in cases:
        done = run_module(
            {**hub_env(hub), **extra},
            "lstm_trainer.cli.predict",
            "--model",
            *model.split(),
            "--input",
            str(series),
            "--output",
            str(tmp_path / "none.csv"),
        )
        last = done.stderr.strip().splitlines()[-1]
        assert done.returncode == 2 and "Traceback" not in done.stderr and message in last, (model, done.stderr[-2000:])
        assert last.startswith("error: ") and not (tmp_path / "none.csv").exists()

    assert TOKEN not in captured.out + captured.err + everything_written(out)


def test_a_failed_push_keeps_the_model_and_says_how_to_push_it_later(
    hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import lstm_trainer.outputs.hub

    # The Hub answered the check at the start, then went away before the end of the run.
    point_client_at(monkeypatch, tmp_path, closed_endpoint(), TOKEN)
    monkeypatch.setattr(lstm_trainer.outputs.hub, "check_push_access", lambda repo_id: None)
    out = tmp_path / "run"
    with pytest.raises(UserError) as failed:
        train_in_process([*RUN, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "test-user/later"])
    message = str(failed.value)
    assert "could not push the model to test-user/later (cannot reach the Hub at" in message
    command = f"python -m lstm_trainer.cli.hub push --model {out / 'model'} --hub_model_id test-user/later"
    assert f"it is safe in {out / 'model'}: push it later with `{command}`" in message
    assert "\n" not in message and TOKEN not in message
    assert (
        sorted(p.name for p in (out / "model").iterdir()) == [MARKER, *FILES] and (out / "all_results.json").is_file()
    )
    captured = capfd.readouterr()
    assert TOKEN not in captured.out + captured.err + everything_written(out)

    # The command it gives works as written, to a branch as well.
    args = command.split()[3:]
    done = run_module(hub_env(hub), "lstm_trainer.cli.hub", *args, "--hub_revision", "v1")
    assert done.returncode == 0, output(done)
    assert "--model test-user/later --model_revision v1" in done.stdout and TOKEN not in done.stdout + done.stderr
    listed = hub_client(
        hub_env(hub),
        """
        import json
        from huggingface_hub import HfApi
        print(json.dumps({"v1": HfApi().list_repo_files("test-user/later", revision="v1")}))
    """,
    )
    assert sorted(f for f in listed["v1"] if f != ".gitattributes") == FILES


@pytest.mark.parametrize(
    ("endpoint", "token", "args", "message"),
    [
        (
            "hub",
            None,
            [],
            "--push_to_hub needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login`",
        ),
        ("hub", "hf_wrong_secret", [], "cannot push to test-user/m: the Hub refused the token (HTTP 401)"),
        ("read_only", TOKEN, [], "cannot push to test-user/m: the token is read-only"),
        (
            "hub",
            TOKEN,
            ["--hub_model_id", "someone-else/m"],
            "the token belongs to 'test-user', who is not 'someone-else'",
        ),
        ("closed", TOKEN, [], "cannot push to test-user/m: cannot reach the Hub at http://127.0.0.1:"),
    ],
)
def test_a_push_that_cannot_work_stops_before_training(
    hub: HubServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    endpoint: str,
    token: str | None,
    args: list[str],
    message: str,
) -> None:
    with HubServer(token=TOKEN, role="read") as read_only:
        url = {"hub": hub.url, "read_only": read_only.url, "closed": closed_endpoint()}[endpoint]
        point_client_at(monkeypatch, tmp_path, url, token)
        out = tmp_path / "run"
        code = train_main([*RUN, "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "test-user/m", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert "nothing was written" in err and not out.exists()
    assert "hf_wrong_secret" not in err and TOKEN not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--push_to_hub"], "--push_to_hub needs --hub_model_id user/name"),
        (["--push_to_hub", "--hub_model_id", "no-namespace"], "--hub_model_id must be a Hub repository id user/name"),
        (["--hub_model_id", "a/b/c"], "--hub_model_id must be a Hub repository id user/name"),
        (["--hub_model_id", "user/bad--name"], "--hub_model_id must be a Hub repository id user/name"),
    ],
)
def test_hub_flags_are_checked_with_the_config(args: list[str], message: str) -> None:
    with pytest.raises(UserError, match="^" + message.replace("-", r"\-")):
        parse_config(args)


def test_hub_flags_parse_and_may_change_on_resume() -> None:
    from lstm_trainer.train.trainer import RESUMABLE_CHANGES

    config = parse_config(
        ["--push_to_hub", "--hub_model_id", "you/sine.v2", "--hub_private_repo", "--hub_revision", "v1"]
    )
    assert (config.train.push_to_hub, config.train.hub_model_id) == (True, "you/sine.v2")
    assert (config.train.hub_private_repo, config.train.hub_revision) == (True, "v1")
    assert parse_config([]).train.push_to_hub is False
    assert {"push_to_hub", "hub_model_id", "hub_private_repo", "hub_revision"} <= RESUMABLE_CHANGES


def test_resolve_model_keeps_local_paths(tmp_path: Path) -> None:
    from lstm_trainer.outputs.hub import resolve_model

    assert resolve_model(str(tmp_path)) == tmp_path
    assert resolve_model("nowhere") == Path("nowhere")  # not an id: the loader names the missing file
    with pytest.raises(UserError, match="--model_revision is for a Hub id"):
        resolve_model(str(tmp_path), "v1")


def test_the_card_names_a_hub_dataset_and_the_revision() -> None:
    from lstm_trainer.outputs.export import model_card
    from lstm_trainer.outputs.hub import LOCAL_MODEL

    config = parse_config(["--dataset", "you/prices", "--hub_model_id", "you/m", "--hub_revision", "v1"]).to_dict()
    card = model_card(config, made_results(best_val_mse=0.5), zero_stage=2)
    meta = card.split("---")[1]
    assert "license: unknown" in meta and "datasets:\n- you/prices\n" in meta
    assert (
        f"--model {LOCAL_MODEL} --model_revision v1 --input" in card
        and f"resolve_model(\"{LOCAL_MODEL}\", revision='v1')" in card
    )
    assert "datasets:" not in model_card(parse_config([]).to_dict(), made_results(), zero_stage=2)  # the synthetic sine
    local = model_card(
        parse_config(["--dataset", "/home/someone/private/prices.csv"]).to_dict(), made_results(), zero_stage=2
    )
    assert "on `prices.csv`" in local and "/home/someone" not in local and "datasets:" not in local
