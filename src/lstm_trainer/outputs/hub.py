"""The exported model on the Hugging Face Hub: check before a run, push after it, load by id.

    accelerate launch train.py --push_to_hub --hub_model_id you/sine-lstm       # push at the end
    python -m lstm_trainer.cli.hub push --model outputs/model --hub_model_id you/sine-lstm
    python -m lstm_trainer.cli.predict --model you/sine-lstm --input series.csv    # load by id

Everything goes through huggingface_hub's own calls (whoami, create_repo, create_commit,
snapshot_download). The token comes from HF_TOKEN or a prior `hf auth login` and is handed to
the client only: it is never printed, logged or written.

Not `PyTorchModelHubMixin`: its save_pretrained writes config.json from the constructor's
arguments (our window length and normalization.json would not be in it) and its
from_pretrained replaces the one-line errors of `LSTMForecaster.from_pretrained`. The folder
layout stays the one train.py writes; this module only moves it.
"""

from __future__ import annotations

from pathlib import Path

from lstm_trainer.config import is_hub_id
from lstm_trainer.errors import UserError
from lstm_trainer.files import MARKER

PROG = "python -m lstm_trainer.cli.hub"
CARD = "README.md"
# The card's commands name the model by this placeholder until it is pushed under an id.
LOCAL_MODEL = "path/to/this/folder"


def check_push_access(repo_id: str) -> None:
    """Stop a run that could not push at its end, before it trains: no token, a refused or
    read-only token, a namespace the token cannot write to, or a Hub out of reach."""
    from huggingface_hub import HfApi, constants, get_token

    token = get_token()
    if token is None:
        raise UserError(
            "--push_to_hub needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login`; "
            "nothing was written"
        )
    if constants.HF_HUB_OFFLINE:
        raise UserError("--push_to_hub needs the Hub, but HF_HUB_OFFLINE is set; unset it to push; nothing was written")
    try:
        me = HfApi().whoami(token=token)
    except Exception as err:
        raise UserError(f"cannot push to {repo_id}: {hub_reason(err)}; nothing was written") from None
    role = me.get("auth", {}).get("accessToken", {}).get("role")
    if role == "read":  # fine-grained tokens say "fineGrained": their scopes are the Hub's to judge
        raise UserError(
            f"cannot push to {repo_id}: the token is read-only; use a token with write access "
            "(HF_TOKEN or `hf auth login`); nothing was written"
        )
    namespace = repo_id.split("/")[0]
    writable = {me.get("name")} | {org.get("name") for org in me.get("orgs", [])}
    if namespace not in writable:
        raise UserError(
            f"cannot push to {repo_id}: the token belongs to {me.get('name')!r}, who is not {namespace!r} nor in "
            f"that organization; use --hub_model_id {me.get('name')}/{repo_id.split('/')[1]}; nothing was written"
        )


def check_model_folder(model_dir: Path) -> None:
    """A folder train.py exported (model.safetensors) or the forecast command wrote (an ensemble's manifest)."""
    from lstm_trainer.model.inference import ENSEMBLE_MANIFEST

    if not ((model_dir / "model.safetensors").is_file() or (model_dir / ENSEMBLE_MANIFEST).is_file()):
        raise UserError(
            f"{model_dir} holds no model.safetensors nor {ENSEMBLE_MANIFEST}; point --model at a folder written by "
            "train.py (output_dir/model) or by lstm-trainer forecast (output_dir/model)"
        )


def push_model(model_dir: Path, repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Upload the model folder as one commit; the URL of what was pushed.

    The card's placeholder path becomes the repo id, so its commands work as written. A failure
    is a `UserError` that says the folder is untouched and how to push it later.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    check_model_folder(model_dir)
    operations = []
    # The folder marker is this machine's bookkeeping (files.py), not part of the model.
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != MARKER):
        name = file.relative_to(model_dir).as_posix()
        content: Path | bytes = file
        if name == CARD:
            content = file.read_text().replace(LOCAL_MODEL, repo_id).encode()
        operations.append(CommitOperationAdd(path_in_repo=name, path_or_fileobj=content))
    api = HfApi()  # built here, so it follows the endpoint in effect now
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        api.create_commit(
            repo_id, operations, revision=revision, commit_message="Upload the model trained with lstm-trainer"
        )
    except Exception as err:
        revision_flag = f" --hub_revision {revision}" if revision else ""
        raise UserError(
            f"could not push the model to {repo_id} ({hub_reason(err)}); it is safe in {model_dir}: push it later "
            f"with `{PROG} push --model {model_dir} --hub_model_id {repo_id}{revision_flag}`"
        ) from None
    return f"{constants.ENDPOINT}/{repo_id}" + (f"/tree/{revision}" if revision else "")


def resolve_model(path_or_id: str, revision: str | None = None) -> Path:
    """A model folder on this machine: `path_or_id` itself if it is a folder, else the Hub
    repository of that id downloaded into the Hub cache (or found there when HF_HUB_OFFLINE=1).

    Anything that is neither is returned as a path, for the loader to name the missing file.
    """
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if revision is not None:
            raise UserError(f"--model_revision is for a Hub id, and {path_or_id} is a local folder; drop the flag")
        return path
    if not is_hub_id(path_or_id):
        return path
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return Path(snapshot_download(path_or_id, revision=revision))
    except RevisionNotFoundError:
        raise UserError(f"model {path_or_id} has no revision {revision!r} on the Hub; check --model_revision") from None
    except RepositoryNotFoundError:
        raise UserError(
            f"model {path_or_id} not found on the Hub ({constants.ENDPOINT}) nor as a local folder; check the id, "
            "and for a private model log in (`hf auth login`) or set HF_TOKEN"
        ) from None
    except LocalEntryNotFoundError:
        if path.parent != Path(".") and path.parent.is_dir():  # runs/model: most likely a local folder, missing
            raise UserError(
                f"model {path_or_id}: no such folder ({path.parent} holds no {path.name}), and no Hub model of that "
                "id is cached; check the path (output_dir/model of a finished run)"
            ) from None
        # Raised offline, and online when the Hub cannot be reached and nothing is cached.
        why = (
            "HF_HUB_OFFLINE is set"
            if constants.HF_HUB_OFFLINE
            else f"the Hub at {constants.ENDPOINT} cannot be reached"
        )
        raise UserError(
            f"model {path_or_id}: {why} and no copy is in the cache; download it once online, or pass a local folder"
        ) from None
    except Exception as err:
        raise UserError(f"model {path_or_id}: {hub_reason(err)}") from None


def hub_reason(err: Exception) -> str:
    """A one-line reason for a failed Hub call that helps the user act (and never shows the token).

    Anything that is neither an answer from the Hub nor a network failure is a bug: re-raised.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    from lstm_trainer.data.sources import is_network_error

    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        if status == 401:
            return "the Hub refused the token (HTTP 401); check HF_TOKEN or run `hf auth login` again"
        if status == 403:
            return "the token may not write there (HTTP 403); use a token with write access to that namespace"
        return f"the Hub answered HTTP {status}: {first_line}"
    if is_network_error(err):
        return f"cannot reach the Hub at {constants.ENDPOINT} ({type(err).__name__}: {first_line})"
    raise err
