"""`python -m lstm_trainer.cli.hub push`: share a trained model on the Hugging Face Hub (outputs/hub.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lstm_trainer.cli.common import OneLineParser, run_command
from lstm_trainer.config import is_hub_id
from lstm_trainer.errors import UserError
from lstm_trainer.outputs.hub import PROG, check_model_folder, check_push_access, push_model


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Share a model trained by train.py on the Hugging Face Hub.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{push}")
    push = commands.add_parser(
        "push",
        help="upload a model folder (output_dir/model) to a Hub model repository",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    push.add_argument("--model", required=True, help="Model folder written by train.py (output_dir/model).")
    push.add_argument("--hub_model_id", required=True, help="Hub model repository, user/name (created if missing).")
    push.add_argument("--hub_private_repo", action="store_true", help="Create the repository private.")
    push.add_argument("--hub_revision", default=None, help="Branch to push to (created if missing; default: main).")
    return parser


def main(argv: list[str] | None = None) -> int:
    def work() -> str:
        args = build_parser().parse_args(argv)
        if not is_hub_id(args.hub_model_id):
            raise UserError(f"--hub_model_id must be a Hub repository id user/name, got {args.hub_model_id!r}")
        model = Path(args.model)
        check_model_folder(model)
        check_push_access(args.hub_model_id)
        url = push_model(model, args.hub_model_id, args.hub_private_repo, args.hub_revision)
        revision_flag = f" --model_revision {args.hub_revision}" if args.hub_revision else ""
        return f"pushed {model} to {url}; forecast with: python -m lstm_trainer.cli.predict --model {args.hub_model_id}{revision_flag} --input series.csv"

    return run_command(work)


if __name__ == "__main__":
    sys.exit(main())
