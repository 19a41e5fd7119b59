"""How many compute threads each process uses, decided before torch loads, and why.

Measured on the 2-core development machine (train.py, 4,096 windows, epoch medians, 2026-12-05):
torch's default of one OpenMP thread per core, alone, 1.23 s an epoch (2.24 s of CPU); two such
runs side by side, 166 and 206 s an epoch each (81 and 119 s of CPU): 135-168x. libgomp's
threads spin-wait at the end of every parallel region for a partner that another process has
descheduled, and an LSTM step has thousands of tiny regions, so the cores go to spinning.
One thread per process: 2.47 s alone and 2.47 / 2.16 s side by side (1.0 and 0.88; load 1.2-2.3
from other jobs), about the same CPU time as two threads' whole work alone. Two threads with
OMP_WAIT_POLICY=PASSIVE (sleep instead of spin): 1.69 s alone, 1.98 / 1.76 s side by side.
So the default is one thread, and more threads, when asked for, wait passively.

OMP_WAIT_POLICY is read once, when torch loads libgomp: `configure` must run before `import torch`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from lstm_trainer.errors import UserError

WAIT_POLICY = "OMP_WAIT_POLICY"


@dataclass(frozen=True)
class Threads:
    """The intra-op thread count of this process, where it came from, and OpenMP's wait policy."""

    count: int
    origin: str  # "default", "--num_threads 2", "OMP_NUM_THREADS=2 ..."
    wait_policy: str | None  # what this module set OMP_WAIT_POLICY to; None where it left it

    def describe(self) -> str:
        """The header's line."""
        line = f"threads {self.count} per process ({self.origin})"
        if self.origin == "default":
            line += (
                ": two OpenMP threads per process spin-wait for each other, and beside another run an epoch "
                "took 135x as long (train/threads.py); --num_threads N to change"
            )
        if self.wait_policy:
            line += f", OpenMP wait policy {self.wait_policy} (waiting threads sleep rather than spin)"
        return line


def decide(flag: int | None, env: Mapping[str, str]) -> Threads:
    """The thread count: --num_threads, else OMP_NUM_THREADS (what `accelerate launch` exports from
    --num_cpu_threads_per_process, 1 unless given), else 1. A pure function of its arguments."""
    if flag is not None:
        count, origin = flag, f"--num_threads {flag}"
    elif env.get("OMP_NUM_THREADS", "").strip():
        text = env["OMP_NUM_THREADS"].strip()
        if not text.isdigit() or int(text) < 1:
            raise UserError(f"OMP_NUM_THREADS={text!r} is not a thread count; set it to a number >= 1 or unset it")
        count, origin = int(text), f"OMP_NUM_THREADS={text}"
    else:
        count, origin = 1, "default"
    policy = "PASSIVE" if count > 1 and WAIT_POLICY not in env else None
    return Threads(count, origin, policy)


_in_force: Threads | None = None


def configure(flag: int | None) -> Threads:
    """Decide and put in place for this process (and any child it starts); before torch loads."""
    global _in_force
    threads = decide(flag, os.environ)
    os.environ["OMP_NUM_THREADS"] = str(threads.count)
    if threads.wait_policy:
        os.environ[WAIT_POLICY] = threads.wait_policy
    if "torch" in sys.modules:  # called in a process that already loaded it (tests): the count still applies
        import torch

        torch.set_num_threads(threads.count)
    _in_force = threads
    return threads


def header_line() -> str:
    """What `configure` decided, or, where the trainer was called without it, what torch runs with."""
    if _in_force is not None:
        return _in_force.describe()
    import torch

    return f"threads {torch.get_num_threads()} per process (as the caller set them)"
