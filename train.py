"""Train the forecaster.

accelerate launch train.py                       # defaults: the reference setup
accelerate launch --num_processes 2 train.py     # same global batch, half the accumulation
python train.py --help                           # every flag, with its default
"""

import logging
import os
import sys
from pathlib import Path

# Runs from a checkout without `pip install -e .` as well.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from lstm_trainer.cli.train import main

if __name__ == "__main__":
    code = main()
    # Leave without finalizing the interpreter. After a collective, torch's gloo worker thread
    # frees the work's tensors, which takes the GIL; if that is still pending when the main
    # thread has started interpreter shutdown, Python ends the worker thread inside C++ and
    # the process aborts (SIGABRT, "terminate called without an active exception"): rank 1
    # of a 2-process run, about one launch in 30 on this machine, after all its work was done
    # (core dump: c10d::ProcessGroupGloo::runLoop -> ~AsyncAllgatherWork -> take_gil during
    # Py_FinalizeEx). Everything the run writes is closed by now; only stdio and logging flush.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
