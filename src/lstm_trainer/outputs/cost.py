"""What a run cost, as the results carry it: timings per epoch, first-step time, memory per process.

train/perf.py measures them; all_results.json holds `Cost.to_dict()`. Light (no torch), so the
results and the bare loop of bench/ read them without loading the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What `Cost.to_dict` adds to all_results.json: they differ from run to run, even between an
# uninterrupted run and a resumed one that trained the same weights.
KEYS = (
    "dataset_seconds",
    "epoch_train_seconds",
    "epoch_cpu_seconds",
    "elapsed_seconds_history",
    "first_optimizer_step_unix_time",
    "cpu_threads_per_process",
    "peak_rss_mib_per_process",
    "peak_cuda_mib_per_process",
)


@dataclass
class RunTimings:
    """Timings of one run (this launch, on the main process).

    Per-epoch training time excludes validation and saving; `elapsed_seconds` is the time
    from the start of the first epoch to the end of each epoch, validation and saving
    included, which is what a user waits for to see a given validation MSE.
    """

    dataset_seconds: float = 0.0
    epoch_train_seconds: list[float] = field(default_factory=list)
    # CPU time of this process (all its threads) per training epoch: it grows much less than
    # wall time while other programs share the cores, so it helps to read a busy machine's runs.
    epoch_cpu_seconds: list[float] = field(default_factory=list)
    elapsed_seconds: list[float] = field(default_factory=list)
    first_step_time: float | None = None  # Unix time, so a caller can subtract when it launched the run


@dataclass
class Cost:
    """A run's timings and what its processes used, one figure per process."""

    timings: RunTimings
    cpu_threads_per_process: int
    peak_rss_mib_per_process: list[float]
    peak_cuda_mib_per_process: list[float] | None = None  # on CUDA only

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset_seconds": self.timings.dataset_seconds,
            "epoch_train_seconds": self.timings.epoch_train_seconds,
            "epoch_cpu_seconds": self.timings.epoch_cpu_seconds,
            "elapsed_seconds_history": self.timings.elapsed_seconds,
            "first_optimizer_step_unix_time": self.timings.first_step_time,
            "cpu_threads_per_process": self.cpu_threads_per_process,
            "peak_rss_mib_per_process": self.peak_rss_mib_per_process,
        }
        if self.peak_cuda_mib_per_process is not None:  # absent rather than null: a CPU run's file is as before
            out["peak_cuda_mib_per_process"] = self.peak_cuda_mib_per_process
        assert out.keys() <= set(KEYS)
        return out
