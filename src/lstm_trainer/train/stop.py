"""A graceful stop on SIGTERM or SIGINT: finish the optimizer step, checkpoint, exit 128 + the signal.

SLURM (`--signal`), Kubernetes and spot instances stop a job with SIGTERM and a grace
period; Ctrl-C sends SIGINT. The first one only sets a flag; the fit reads it after each
optimizer step, writes a checkpoint there and returns, and `train.py` prints one line naming
the checkpoint and the command that resumes it, then exits with 128 + the signal's number
(143 for SIGTERM, 130 for SIGINT), as a process killed by it would. A second signal stops at
once: SIGTERM by its default action, SIGINT as KeyboardInterrupt.

Ctrl-C reaches every process of the terminal's group, the launcher included, and torch's
launcher passes it on to the ranks as SIGTERM: one press arrives twice within milliseconds.
A repeat within REPEAT_SECONDS of the first is therefore the same request, not a second one.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported for types only: this module loads before torch is needed
    from accelerate import Accelerator

SIGNALS = (signal.SIGTERM, signal.SIGINT)
REPEAT_SECONDS = 2.0


class Stopped(Exception):
    """The run stopped on a signal after writing `checkpoint`; train.py says so and exits with `exit_code`."""

    def __init__(self, signal_name: str, step: int, checkpoint: str) -> None:
        super().__init__(f"stopped by {signal_name} after optimizer step {step}; checkpoint {checkpoint}")
        self.signal_name, self.step, self.checkpoint = signal_name, step, checkpoint
        self.exit_code = 128 + int(getattr(signal, signal_name))


class GracefulStop:
    """While active (a context manager), the first SIGTERM or SIGINT asks the fit to stop."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._at = 0.0
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        # Signal handlers can only be set from the main thread (a notebook or a test runner may call
        # from another); there the run keeps Python's default behaviour.
        if threading.current_thread() is threading.main_thread():
            self._saved = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the handlers back: after the fit a signal ends the run as it did before (the last checkpoint is whole)."""
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.received is None:
            self.received, self._at = signum, now
            return
        if now - self._at < REPEAT_SECONDS:
            return  # the same request, passed on by the launcher
        self.restore()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    def agreed(self, accelerator: Accelerator) -> str | None:
        """The signal's name if any process received one, the same answer on every process.

        Each rank may get the signal at a different step (or not at all, where only the launcher
        is signalled and passes it on late); the flag is reduced with MAX after every optimizer
        step, so all ranks checkpoint the same step. One all-reduce of one number a step: alone,
        no collective at all.
        """
        received = self.received or 0
        if accelerator.num_processes > 1:
            import torch
            import torch.distributed as dist

            flag = torch.tensor([received], device=accelerator.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            received = int(flag.item())
        return signal.Signals(received).name if received else None
