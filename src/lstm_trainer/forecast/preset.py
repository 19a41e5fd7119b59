"""The training flags the forecast protocol uses, chosen from the horizon, the season and the lookback only.

Measured on M3 monthly, one seed (docs, "Benchmarks"): a window of 2 horizons (3 horizons: +0.3
sMAPE), the horizon's steps at once, the seasonally adjusted series (14.03 -> 13.63 in a plain
loop), the absolute error as the loss, windows at least a third real, every series drawn as often
as any other (-0.07), no dropout, a larger batch and rate.
"""

from __future__ import annotations

from dataclasses import dataclass

# The selection run: the last horizon of every series validates, up to this many steps, stopped after
# PATIENCE epochs without a better validation score; the members then train as many steps on everything.
SELECT_STEPS, PATIENCE = 4000, 3
# A window never shorter than this: with h = 1 and no season, 2 h would be two values.
MIN_WINDOW = 8
# First seed; member k trains with FIRST_SEED + k (the bench's seeds, so its figures carry over).
FIRST_SEED = 42


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
        flags += ["--loss", "mae", "--dropout", "0", "--learning_rate", "1e-3"]
        flags += ["--total_batch_size", "256", "--per_device_train_batch_size", "256", "--num_warmup_steps", "100"]
        return flags

    def selection_flags(self, lookback: int, select_on: str) -> list[str]:
        """Hold each series' last horizon out, train up to SELECT_STEPS, keep the best step by `select_on`."""
        flags = [*self.flags(lookback), "--val_size", str(self.horizon), "--max_train_steps", str(SELECT_STEPS)]
        flags += ["--select_on", select_on, "--num_train_epochs", "1000"]
        return [*flags, "--early_stopping_patience", str(PATIENCE), "--seed", str(FIRST_SEED)]

    def member_flags(self, member: Member, steps: int) -> list[str]:
        """The whole history, as many steps as the selection chose. With --sampling series a step draws series
        uniformly, so a step count means the same draws per series whatever each series' length."""
        flags = [*self.flags(member.lookback), "--val_size", "0", "--max_train_steps", str(steps)]
        return [*flags, "--num_train_epochs", "1000", "--seed", str(member.seed)]


def members(seeds: int, lookbacks: tuple[int, ...]) -> list[Member]:
    """Every lookback with `seeds` seeds each, interleaved so that a partial ensemble mixes lookbacks."""
    return [Member(lookback, FIRST_SEED + k) for k in range(seeds) for lookback in lookbacks]
