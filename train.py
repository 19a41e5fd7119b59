"""Train the forecaster.

accelerate launch train.py                       # defaults: the reference setup
accelerate launch --num_processes 2 train.py     # same global batch, half the accumulation
python train.py --help                           # every flag, with its default
"""

import sys
from pathlib import Path

# Runs from a checkout without `pip install -e .` as well.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from lstm_trainer.cli.train import run_as_script

if __name__ == "__main__":
    run_as_script()
