"""What a run costs: seconds per epoch, when the first optimizer step happened, peak memory.

These go to all_results.json so that the benchmark (`bench/run.py`) measures the real
`accelerate launch train.py` from the inside instead of re-implementing the trainer.
The records, `RunTimings` (filled by the trainer) and `Cost` (what `measure` returns), are
outputs/cost.py's: the results carry them, and outputs/ sits below train/.
"""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING

import torch

from lstm_trainer.outputs.cost import Cost, RunTimings

# What the trainer reads here: the records with the measurement that fills them.
__all__ = ["Cost", "RunTimings", "measure", "peak_rss_mib"]

if TYPE_CHECKING:  # the bare loop of bench/ imports this module and must not load Accelerate
    from accelerate import Accelerator


def peak_rss_mib() -> float:
    """This process's peak resident memory (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def measure(accelerator: Accelerator, timings: RunTimings) -> Cost:
    """The run's cost; every process must call it (memory is gathered)."""
    memory = [peak_rss_mib()]
    cuda = accelerator.device.type == "cuda"
    if cuda:
        memory.append(torch.cuda.max_memory_allocated(accelerator.device) / 2**20)
    per_process = accelerator.gather(torch.tensor([memory], dtype=torch.float64, device=accelerator.device)).cpu()
    return Cost(
        timings, torch.get_num_threads(), per_process[:, 0].tolist(), per_process[:, 1].tolist() if cuda else None
    )
