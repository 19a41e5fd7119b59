"""Push to the Hub and train from it, against tests/hub_server.py on 127.0.0.1.

The real `python -m lstm_trainer.cli.data push` (DatasetDict.push_to_hub, DatasetCard.push_to_hub)
and the real `load_dataset` run unchanged in subprocesses pointed at the local server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TINY, child_env, hub_client, output, persistence_mse, results, run_train
from hub_server import HubServer

from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data

pytestmark = pytest.mark.e2e

TOKEN = "hf_lstm_trainer_test_secret"
SYNTHETIC = ["--num_train_samples", "2048", "--num_val_samples", "512"]  # TINY's data flags


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as server:
        yield server


def hub_env(hub: HubServer, token: bool = True) -> dict[str, str]:
    env = hub.env(base=child_env(), with_token=token)
    env.update(HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def data_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lstm_trainer.cli.data", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_push_load_back_and_train_from_the_hub(hub: HubServer, tmp_path: Path) -> None:
    env = hub_env(hub)
    pushed = data_command(env, "push", "--repo_id", "test-user/sine", "--private", *SYNTHETIC)
    assert pushed.returncode == 0, output(pushed)
    assert TOKEN not in pushed.stdout + pushed.stderr
    assert "| train | 1 | 2098 | 2048 |" in pushed.stdout and "--dataset test-user/sine" in pushed.stdout
    assert hub.unhandled == []

    loaded = hub_client(
        env,
        """
        import json
        import numpy as np
        from datasets import load_dataset
        from huggingface_hub import DatasetCard, hf_hub_download
        from lstm_trainer.config import DataConfig
        from lstm_trainer.data import prepare_data

        hub = load_dataset("test-user/sine")
        local = prepare_data(DataConfig(num_train_samples=2048, num_val_samples=512), 42).split_rows()
        same = {s: hub[s].features == local[s].features and hub[s]["item_id"] == local[s]["item_id"]
                   and np.array_equal(np.asarray(hub[s]["target"][0]), np.asarray(local[s]["target"][0]))
                for s in local}
        card = DatasetCard(open(hf_hub_download("test-user/sine", "README.md", repo_type="dataset")).read())
        print(json.dumps({"splits": sorted(hub), "same": same, "meta": card.data.to_dict(), "text": card.text}))
    """,
    )
    assert loaded["splits"] == ["train", "validation"] and loaded["same"] == {"train": True, "validation": True}
    meta = loaded["meta"]
    assert meta["license"] == "cc0-1.0" and meta["task_categories"] == ["time-series-forecasting"]
    assert meta["size_categories"] == ["1K<n<10K"]  # 2,660 points
    assert meta["lstm_trainer"] == {
        "source": "synthetic",
        "seed": 42,
        "seq_length": 50,
        "num_train_samples": 2048,
        "num_val_samples": 512,
        "noise_std": 0.1,
        "series": 1,
        "points": 2660,
    }
    assert [s["num_examples"] for s in meta["dataset_info"]["splits"]] == [
        1,
        1,
    ]  # push_to_hub's own, kept: one row per series
    text = loaded["text"]
    assert 'load_dataset("test-user/sine")' in text and "train.py --dataset test-user/sine" in text
    assert "| validation | 1 | 562 | 512 |" in text and "--num_train_samples 2048" in text

    # A real run on the private copy, with the token from HF_TOKEN.
    out = tmp_path / "from_hub"
    done = run_train(
        [*TINY, "--dataset", "test-user/sine", "--output_dir", str(out)], env=hub.env(base={}, with_token=True)
    )
    assert done.returncode == 0, output(done)
    res = results(out)
    local = prepare_data(DataConfig(num_train_samples=2048, num_val_samples=512), 42)
    assert res["persistence_val_mse"] == persistence_mse(
        local.windows["validation"]
    )  # the very same validation windows
    assert res["noise_floor"] == pytest.approx(0.01)  # the card's parameters came back with the data
    assert res["test_mse"] is None and res["best_val_mse"] < res["persistence_val_mse"]
    assert (
        "data synthetic sine (seed 42, noise_std 0.1): 1 series, 2,660 points; train 2048, validation 512 windows"
        in done.stdout
    )
    written = "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())
    assert TOKEN not in done.stdout + done.stderr + written


def test_push_a_csv_series_to_a_revision(hub: HubServer, tmp_path: Path) -> None:
    t = np.arange(400)
    csv = tmp_path / "load.csv"
    frame = pd.DataFrame({"hour": t, "megawatts": 500 + 80 * np.sin(t / 12.0)})
    frame.sample(frac=1.0, random_state=1).to_csv(csv, index=False)  # time order only through --time_column
    flags = ["--dataset", str(csv), "--data_column", "megawatts", "--time_column", "hour", "--seq_length", "24"]
    env = hub_env(hub)
    pushed = data_command(env, "push", "--repo_id", "test-user/load", "--revision", "v1", "--license", "mit", *flags)
    assert pushed.returncode == 0, output(pushed)
    built = data_command(env, "build", *flags, "--output_dir", str(tmp_path / "local"))
    assert built.returncode == 0, output(built)

    loaded = hub_client(
        env,
        f"""
        import json
        import numpy as np
        from datasets import load_dataset, load_from_disk
        from huggingface_hub import DatasetCard, HfApi, hf_hub_download

        hub = load_dataset("test-user/load", revision="v1")
        local = load_from_disk({str(tmp_path / "local")!r})
        same = all(hub[s]["item_id"] == local[s]["item_id"] and hub[s]["target"] == local[s]["target"] for s in local)
        card = DatasetCard(open(hf_hub_download("test-user/load", "README.md", repo_type="dataset", revision="v1")).read())
        main_files = HfApi().list_repo_files("test-user/load", repo_type="dataset")
        print(json.dumps({{"splits": sorted(hub), "same": same, "meta": card.data.to_dict(), "text": card.text,
                          "main": main_files}}))
    """,
    )
    assert loaded["splits"] == ["test", "train", "validation"] and loaded["same"]
    assert loaded["meta"]["license"] == "mit" and loaded["meta"]["size_categories"] == ["n<1K"]
    params = loaded["meta"]["lstm_trainer"]
    assert (params["source"], params["file"], params["data_column"], params["time_column"]) == (
        "file",
        "load.csv",
        "megawatts",
        "hour",
    )
    assert params["split_rows"]["test"]["first_time"] == "340"
    assert (
        'load_dataset("test-user/load", revision="v1")' in loaded["text"] and "--dataset_revision v1" in loaded["text"]
    )
    assert not any(f.endswith(".parquet") for f in loaded["main"])  # only the v1 branch got data


def test_hub_errors_are_one_line_with_exit_code_2(hub: HubServer, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on: the Hub "cannot be reached"
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    out = str(tmp_path / "built")
    # (environment, arguments, what the one error line says...)
    cases: list[tuple[Any, ...]] = [
        (
            hub_env(hub, token=False),
            ["push", "--repo_id", "test-user/denied", *SYNTHETIC],
            "push needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login`",
        ),
        (
            {**hub_env(hub, token=False), "HF_TOKEN": "hf_wrong_secret"},
            ["push", "--repo_id", "test-user/denied", *SYNTHETIC],
            "could not push to test-user/denied: the Hub refused the token (HTTP 401)",
        ),
        (
            hub_env(hub),
            ["build", "--dataset", "test-user/nothing-here", "--output_dir", out],
            "test-user/nothing-here: no such local file or folder, and no such dataset on the Hub",
        ),
        (
            {**hub_env(hub), "HF_ENDPOINT": closed},
            ["build", "--dataset", "test-user/sine", "--output_dir", out],
            f"test-user/sine: cannot reach the Hub at {closed}",
            "or set HF_HUB_OFFLINE=1 to use a copy already in your cache",
        ),
        (
            {**hub_env(hub), "HF_HUB_OFFLINE": "1"},
            ["build", "--dataset", "test-user/never-fetched", "--output_dir", out],
            "HF_HUB_OFFLINE is set, so only cached copies can be used",
        ),
    ]
    for env, args, *messages in cases:
        done = data_command(env, *args)
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        assert done.returncode == 2 and last.startswith("error: "), (args, done.stderr[-2000:])
        assert all(message in last for message in messages), (args, last)
        assert "Traceback" not in done.stderr and "hf_wrong_secret" not in done.stderr + done.stdout
        assert not Path(out).exists()
    assert "dataset:test-user/denied" not in hub.repos  # nothing was created
