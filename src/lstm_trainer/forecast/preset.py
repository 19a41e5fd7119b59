"""The training flags the forecast protocol uses, chosen from the horizon, the season and the lookback only.

Measured on M3 monthly, one seed (docs, "Benchmarks"): a window of 2 horizons (3 horizons: +0.3
sMAPE), the horizon's steps at once, the seasonally adjusted series (14.03 -> 13.63 in a plain
loop), the absolute error as the loss, windows at least a third real, every series drawn as often
as any other (-0.07), no dropout, a larger batch and rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The selection run: the last horizon of every series validates, up to this many steps, stopped after
# `patience` epochs without a better validation score; the members then train as many steps on everything.
SELECT_STEPS = 4000
# Patience counted in optimizer steps, as epochs of this data: PATIENCE_STEPS / steps an epoch, within
# PATIENCE_EPOCHS. Measured with the bench (docs, "Benchmarks"): 10 epochs instead of 3 helped where an epoch
# is 18-63 steps (M1 quarterly 15.84 sMAPE, M3 quarterly 9.56 against 9.70, M3 yearly 16.45 against 16.74,
# Tourism yearly 21.10 against 21.73) and hurt where it is 119-302 (Tourism quarterly and monthly).
# Never fewer epochs than twice the warm-up: M1 yearly (about 4 steps an epoch) stopped at step 30 of its
# 100-step warm-up with 10 epochs, its model still behind the naive forecast (sMAPE 33.3 against 21.3).
PATIENCE_STEPS, PATIENCE_EPOCHS, WARMUP = 600, (3, 10), 100
# A window never shorter than this: with h = 1 and no season, 2 h would be two values.
MIN_WINDOW = 8
# First seed; member k trains with FIRST_SEED + k (the bench's seeds, so its figures carry over).
FIRST_SEED = 42
# The measured global batch, where the data has windows for it.
BATCH = 256


@dataclass(frozen=True)
class Member:
    """One member of the ensemble: its lookback (in horizons) and its seed."""

    lookback: int
    seed: int

    @property
    def name(self) -> str:
        return f"w{self.lookback}h_seed{self.seed}"


@dataclass(frozen=True)
class Preset:
    horizon: int
    season: int  # 1: none
    lengths: tuple[int, ...]  # each series' number of values
    lookbacks: tuple[int, ...] = (2,)

    @property
    def windows(self) -> int:
        """About how many training windows the selection run has (the fewest of any lookback): each series
        less its held-out horizon, a target horizon and the least inputs a window needs."""
        least = max(max(1, self.window(k) // 3) for k in self.lookbacks)
        return sum(max(1, n - 2 * self.horizon - least + 1) for n in self.lengths)

    @property
    def batch(self) -> int:
        """The global batch of every run: BATCH, or the largest power of two the data holds one of. Typed,
        so that the selection and every member train on one batch size, and the chosen number of steps
        means the same for each."""
        batch = BATCH
        while batch > 1 and batch > self.windows:
            batch //= 2
        return batch

    @property
    def patience(self) -> int:
        """Early stopping's patience in epochs: PATIENCE_STEPS optimizer steps of this data, within PATIENCE_EPOCHS,
        and never less than twice the warm-up."""
        low, high = PATIENCE_EPOCHS
        per_epoch = self.windows / self.batch  # optimizer steps an epoch, about
        return max(min(high, max(low, round(PATIENCE_STEPS / per_epoch))), math.ceil(2 * WARMUP / per_epoch))

    def window(self, lookback: int) -> int:
        """A member's window: `lookback` horizons, at least a season and MIN_WINDOW."""
        return max(lookback * self.horizon, self.season, MIN_WINDOW)

    def flags(self, lookback: int) -> list[str]:
        """train.py flags shared by the selection run and every member of this lookback."""
        window = self.window(lookback)
        flags = ["--seq_length", str(window), "--horizon", str(self.horizon), "--test_size", "0"]
        # Windows with a third of their inputs real, the rest left-padded: short series' early values train too.
        flags += ["--min_inputs", str(max(1, window // 3)), "--sampling", "series"]
        if self.season > 1:
            flags += ["--season", str(self.season), "--deseasonalize"]
        flags += ["--loss", "mae", "--dropout", "0", "--learning_rate", "1e-3", "--num_warmup_steps", str(WARMUP)]
        return [*flags, "--total_batch_size", str(self.batch), "--per_device_train_batch_size", str(self.batch)]

    def selection_flags(self, lookback: int, select_on: str) -> list[str]:
        """Hold each series' last horizon out, train up to SELECT_STEPS, keep the best step by `select_on`."""
        flags = [*self.flags(lookback), "--val_size", str(self.horizon), "--max_train_steps", str(SELECT_STEPS)]
        flags += ["--select_on", select_on, "--num_train_epochs", "1000"]
        return [*flags, "--early_stopping_patience", str(self.patience), "--seed", str(FIRST_SEED)]

    def member_flags(self, member: Member, steps: int) -> list[str]:
        """The whole history, as many steps as the selection chose. With --sampling series a step draws series
        uniformly, so a step count means the same draws per series whatever each series' length."""
        flags = [*self.flags(member.lookback), "--val_size", "0", "--max_train_steps", str(steps)]
        return [*flags, "--num_train_epochs", "1000", "--seed", str(member.seed)]


def members(seeds: int, lookbacks: tuple[int, ...]) -> list[Member]:
    """Every lookback with `seeds` seeds each, interleaved so that a partial ensemble mixes lookbacks."""
    return [Member(lookback, FIRST_SEED + k) for k in range(seeds) for lookback in lookbacks]
