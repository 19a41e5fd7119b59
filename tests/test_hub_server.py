"""The real `datasets` / `huggingface_hub` clients, run in a subprocess, against `HubServer`.

A subprocess is needed because both libraries read HF_ENDPOINT when they are imported.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from hub_server import HubServer

TOKEN = "hf_test_token"

# Shared by every client script: a tiny DatasetDict shaped like the LSTM training data.
PRELUDE = f"""
from datasets import Dataset, DatasetDict, Features, Sequence, Value, load_dataset
from huggingface_hub import HfApi, hf_hub_download

TOKEN = {TOKEN!r}
FEATURES = Features({{"inputs": Sequence(Value("float32"), length=5), "target": Value("float32")}})

def make(n, offset):
    rows = [[0.5 * (i + j) + offset for j in range(5)] for i in range(n)]
    return Dataset.from_dict({{"inputs": rows, "target": [r[-1] + 0.25 for r in rows]}}, features=FEATURES)

def assert_same(loaded, expected):
    assert set(loaded) == set(expected), (set(loaded), set(expected))
    for split in expected:
        assert loaded[split].features == FEATURES, loaded[split].features
        assert loaded[split].to_dict() == expected[split].to_dict(), split
"""


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as server:
        yield server


def run_client(hub: HubServer, script: str) -> None:
    """Run `script` (after PRELUDE) in a fresh interpreter whose HF_* environment points at `hub`."""
    env = hub.env()
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    code = PRELUDE + textwrap.dedent(script)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"client failed:\n{proc.stdout}\n{proc.stderr}"
    assert hub.unhandled == [], hub.unhandled


def test_push_card_load_roundtrip(hub: HubServer) -> None:
    run_client(
        hub,
        """
        dd = DatasetDict(train=make(8, 0.0), validation=make(3, 100.0))
        dd.push_to_hub("test-user/roundtrip", private=True, token=TOKEN)

        # Add prose to the card that push_to_hub wrote (keeping its YAML header), as a project would.
        api = HfApi(token=TOKEN)
        card = open(hf_hub_download("test-user/roundtrip", "README.md", repo_type="dataset", token=TOKEN)).read()
        assert "dataset_info:" in card and "configs:" in card, card
        card += "\\n# Tiny LSTM data\\n\\nFive float32 inputs, one float32 target.\\n"
        api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md",
                        repo_id="test-user/roundtrip", repo_type="dataset")

        assert_same(load_dataset("test-user/roundtrip", token=TOKEN), dd)
        path = hf_hub_download("test-user/roundtrip", "README.md", repo_type="dataset", token=TOKEN)
        assert open(path).read() == card

        # Private: invisible without the token. (Not checked through load_dataset: with a warm cache
        # the clients fall back to the cached copy when the Hub answers "not found".)
        from huggingface_hub.errors import RepositoryNotFoundError
        assert api.repo_exists("test-user/roundtrip", repo_type="dataset")
        try:
            HfApi(token=False).list_repo_files("test-user/roundtrip", repo_type="dataset")
            raise AssertionError("a private repo listed without token")
        except RepositoryNotFoundError:
            pass
        """,
    )
    assert "POST /api/repos/create" in hub.requests
    assert any(r.startswith("POST /api/datasets/test-user/roundtrip/commit/main") for r in hub.requests)
    assert any(r.startswith("PUT /_lfs/") for r in hub.requests)  # parquet shards went through Git LFS
    assert any(r.startswith("GET /datasets/test-user/roundtrip/resolve/") for r in hub.requests)


def test_push_and_load_revision(hub: HubServer) -> None:
    run_client(
        hub,
        """
        main = DatasetDict(train=make(4, 0.0), validation=make(2, 1.0))
        v2 = DatasetDict(train=make(6, 50.0), validation=make(3, 7.0))
        main.push_to_hub("test-user/revisions", token=TOKEN)
        v2.push_to_hub("test-user/revisions", token=TOKEN, revision="v2", num_shards={"train": 2})
        assert_same(load_dataset("test-user/revisions", revision="v2"), v2)
        assert_same(load_dataset("test-user/revisions"), main)
        files = HfApi().list_repo_files("test-user/revisions", repo_type="dataset", revision="v2")
        assert "data/train-00001-of-00002.parquet" in files and "data/train-00000-of-00001.parquet" not in files
        """,
    )


def test_missing_repo_is_not_found(hub: HubServer) -> None:
    run_client(
        hub,
        """
        from datasets.exceptions import DatasetNotFoundError
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            load_dataset("test-user/does-not-exist")
            raise AssertionError("no error")
        except DatasetNotFoundError:
            pass
        try:
            hf_hub_download("test-user/does-not-exist", "README.md", repo_type="dataset")
            raise AssertionError("no error")
        except RepositoryNotFoundError as err:
            assert err.response.status_code == 404
        assert not HfApi().repo_exists("test-user/does-not-exist", repo_type="dataset")
        """,
    )


def test_writes_need_the_right_token(hub: HubServer) -> None:
    run_client(
        hub,
        """
        from huggingface_hub.errors import HfHubHTTPError

        dd = DatasetDict(train=make(2, 0.0))
        for token in ("hf_wrong", False):  # a wrong token, then no token at all
            try:
                dd.push_to_hub("test-user/denied", token=token)
                raise AssertionError(f"push with token={token!r} succeeded")
            except HfHubHTTPError as err:
                assert err.response.status_code == 401, err
        try:
            HfApi(token=False).create_repo("test-user/denied", repo_type="dataset")
            raise AssertionError("create_repo without token succeeded")
        except HfHubHTTPError as err:
            assert err.response.status_code == 401, err
        assert not HfApi(token=TOKEN).repo_exists("test-user/denied", repo_type="dataset")
        """,
    )
