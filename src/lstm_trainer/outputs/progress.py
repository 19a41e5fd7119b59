"""Terminal progress: one tqdm bar over the epochs, one over the optimizer steps of the epoch.

Only the local main process draws them, and only on a terminal: tqdm's `disable=None`
turns a bar off when its stream is not a TTY, so a log file or CI output holds the printed
step and epoch lines and nothing else. Those lines go through `say`, which clears the bars
before writing and redraws them after.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


def say(text: str) -> None:
    """Print `text` on stdout without tearing the bars (tqdm.write lifts them out of the way)."""
    tqdm.write(text, file=sys.stdout)


class ProgressBars:
    """The two bars; every method is a no-op where they are disabled."""

    def __init__(
        self,
        show: bool,
        num_epochs: int,
        steps_per_epoch: int,
        start_epoch: int = 0,
        steps_done: int = 0,
        file: TextIO | None = None,
    ) -> None:
        """`start_epoch` (from 0) and `steps_done` in it: where a resumed run starts."""
        disable = None if show else True  # None: tqdm decides by the stream's isatty()
        file = file or sys.stderr
        common = {"file": file, "disable": disable, "dynamic_ncols": True}
        self.epochs = tqdm(total=num_epochs, initial=start_epoch, desc="epochs", unit="epoch", position=0, **common)
        self.steps = tqdm(
            total=steps_per_epoch,
            initial=steps_done,
            desc=f"epoch {start_epoch + 1}",
            unit="step",
            position=1,
            leave=False,
            **common,
        )

    def step(self) -> None:
        """One optimizer step done."""
        self.steps.update()

    def running_loss(self, loss: float) -> None:
        """The mean loss of the last logging window: read at logging steps only, so no extra sync."""
        self.steps.set_postfix_str(f"loss {loss:.5f}")

    def end_epoch(self, number: int, train_loss: float, val_mse: float | None, best_val_mse: float | None) -> None:
        val = "" if val_mse is None or best_val_mse is None else f", val {val_mse:.5f}, best {best_val_mse:.5f}"
        self.epochs.set_postfix_str(f"train {train_loss:.5f}{val}", refresh=False)
        self.epochs.update()
        if number < (self.epochs.total or 0):
            self.steps.reset()
            self.steps.set_postfix_str("", refresh=False)
            self.steps.set_description(f"epoch {number + 1}")

    def close(self) -> None:
        self.steps.close()
        self.epochs.close()
