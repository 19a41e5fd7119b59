"""`python -m lstm_trainer.cli.data build|push`: the series a run trains on, to a folder or the Hub.

    python -m lstm_trainer.cli.data build --output_dir data/sine               # the reference data
    python -m lstm_trainer.cli.data build --dataset prices.csv --data_column close --output_dir data/prices
    python -m lstm_trainer.cli.data push --repo_id you/sine [--private] [--revision v1]
    python -m lstm_trainer.cli.data build --dataset sales.csv --id_column store --time_column day --output_dir data/sales
    accelerate launch train.py --dataset you/sine                          # trains on the same windows

What is written is series rows in the Hub's time-series layout (item_id, start, target), one
split per part in time, each holding every series up to its end. The data flags are train.py's own (`--dataset`, `--seq_length`, ...) and `--seed` is its
seed, so the same flags give the same windows here and in a run. The Hub token comes from
HF_TOKEN or a prior `hf auth login`, through huggingface_hub; it is never printed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from lstm_trainer.cli.common import OneLineParser, add_config_flags, run_command
from lstm_trainer.config import DataConfig, TrainConfig
from lstm_trainer.errors import UserError
from lstm_trainer.outputs.hub import hub_reason

PROG = "python -m lstm_trainer.cli.data"
DATASET_KIND = "dataset"  # the marker's kind for a folder build writes (files.py)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="{build,push}")
    build = commands.add_parser(
        "build",
        help="write the series rows (Hub time-series layout) to a folder (save_to_disk) and print a summary",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument(
        "--output_dir",
        required=True,
        help="Folder to write; one an earlier build wrote is replaced whole, any other non-empty folder is refused.",
    )
    push = commands.add_parser(
        "push",
        help="build the series rows and push them to the Hub with a dataset card",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    push.add_argument("--repo_id", required=True, help="Hub dataset repository, user/name (created if missing).")
    push.add_argument(
        "--private", action="store_true", help="Create the repository private (an existing one keeps its visibility)."
    )
    push.add_argument("--revision", default=None, help="Branch to push to (created if missing; default: main).")
    push.add_argument(
        "--license",
        default=None,
        help="License on the card (default: cc0-1.0 for the generated sine, 'unknown' for your data until you name it).",
    )
    seed_default = next(f.default for f in fields(TrainConfig) if f.name == "seed")
    for command in (build, push):
        # Normalisation is the trainer's business: series are built and pushed in data units.
        add_config_flags(command.add_argument_group("data", DataConfig.__doc__), DataConfig, skip=("normalization",))
        command.add_argument(
            "--seed", type=int, default=seed_default, help="Seed of the synthetic data (train.py's --seed)."
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    def work() -> None:
        args = build_parser().parse_args(argv)
        config = DataConfig(**{f.name: getattr(args, f.name) for f in fields(DataConfig) if hasattr(args, f.name)})
        if args.command == "build":
            build(config, args.seed, Path(args.output_dir))
        else:
            push(config, args.seed, args.repo_id, args.private, args.revision, args.license)

    return run_command(work)


def _prepare(config: DataConfig, seed: int) -> Any:
    """The run's own data path (a bad source fails here, before anything is written or sent)."""
    from dataclasses import replace

    from lstm_trainer.data.prepare import prepare_data

    return prepare_data(replace(config, normalization="none"), seed)


def build(config: DataConfig, seed: int, output_dir: Path) -> None:
    from lstm_trainer.files import check_output_folder, replace_dir

    check_output_folder(output_dir, "--output_dir", DATASET_KIND)  # before the data is read
    data = _prepare(config, seed)
    with replace_dir(output_dir, DATASET_KIND) as tmp:
        data.split_rows().save_to_disk(str(tmp))
    print(_summary(data))
    print(f"written to {output_dir} (datasets.load_from_disk); train on it with --dataset {output_dir}")


def push(config: DataConfig, seed: int, repo_id: str, private: bool, revision: str | None, license: str | None) -> None:
    from huggingface_hub import DatasetCard, constants, get_token, hf_hub_download

    from lstm_trainer.data.card import card_body, card_metadata, default_license

    token = get_token()
    if token is None:
        raise UserError(
            "push needs a Hugging Face token with write access: set HF_TOKEN or run `hf auth login`; nothing was pushed"
        )
    if constants.HF_HUB_OFFLINE:
        raise UserError("push needs the Hub, but HF_HUB_OFFLINE is set; unset it to push; nothing was pushed")
    data = _prepare(config, seed)
    params = data.params
    url = f"{constants.ENDPOINT}/datasets/{repo_id}" + (f"/tree/{revision}" if revision else "")
    try:
        data.split_rows().push_to_hub(
            repo_id,
            private=private,
            revision=revision,
            token=token,
            commit_message=f"{data.rows.num_series} series, {data.rows.num_points} points from lstm-trainer",
        )
    except Exception as err:
        raise UserError(f"could not push to {repo_id}: {hub_reason(err)}; nothing was changed there") from None
    try:
        card = DatasetCard(
            Path(hf_hub_download(repo_id, "README.md", repo_type="dataset", revision=revision, token=token)).read_text()
        )
        for key, value in card_metadata(data, params, license or default_license(params)).items():
            card.data[key] = value
        card.text = card_body(data, params, repo_id, revision)
        card.push_to_hub(repo_id, token=token, repo_type="dataset", revision=revision, commit_message="Dataset card")
    except Exception as err:
        raise UserError(
            f"the series were pushed to {url}, but not the dataset card ({hub_reason(err)}); run push again to retry"
        ) from None
    print(_summary(data))
    revision_flag = f" --dataset_revision {revision}" if revision else ""
    print(f"pushed to {url}; train on it with: accelerate launch train.py --dataset {repo_id}{revision_flag}")


def _summary(data: Any) -> str:
    from lstm_trainer.data.card import summary_table
    from lstm_trainer.data.prepare import source_text

    train = data.windows["train"]
    ahead = "the next value" if train.horizon == 1 else f"the next {train.horizon} values"
    head = f"{source_text(data.params)}: {data.rows.num_series} series, {data.rows.num_points} points; windows of {train.seq_length} steps -> {ahead}"
    notes = "".join(f"\nnote: {note}" for note in data.notes)
    return f"{head}\n{summary_table(data)}{notes}"


if __name__ == "__main__":
    sys.exit(main())
