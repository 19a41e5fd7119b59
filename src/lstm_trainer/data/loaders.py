"""Batches gathered from the series, one index per micro batch.

The batch sampler yields lists of window indices and `WholeBatches.__getitems__` answers each
list with one gather from the series values (data/windows.py): no per-row Python work, no
stacking, no materialised windows. Accelerate shards the batch sampler across processes as it
does any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

from lstm_trainer.data import INPUTS, TARGET, Windows
from lstm_trainer.data.windows import pack
from lstm_trainer.errors import UserError


class GlobalBatchSampler(BatchSampler):
    """Shuffled micro batches, cut so that every optimizer step sees a whole global batch.

    The shuffle depends only on (seed, epoch), so every process draws the same order and
    takes its own share of it, and a resumed run can redraw the order of any epoch.
    The few windows that do not fill a last global batch sit out that epoch only.

    With `series_counts` (each series' window count) an epoch draws as many windows, each by
    picking a series uniformly and then one of its windows: every series weighs the same
    whatever its length (N-BEATS' sampling on the M competitions), with replacement.
    """

    def __init__(
        self,
        num_rows: int,
        micro_batch_size: int,
        global_batch_size: int,
        seed: int,
        series_counts: np.ndarray | None = None,
    ) -> None:
        super().__init__(SequentialSampler(range(num_rows)), micro_batch_size, drop_last=True)
        assert global_batch_size % micro_batch_size == 0
        self.num_rows = num_rows
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.epoch = 0
        self.by_series: tuple[torch.Tensor, torch.Tensor] | None = None
        if series_counts is not None:
            counts = torch.as_tensor(series_counts, dtype=torch.int64)
            firsts = torch.cumsum(counts, 0) - counts
            trained = counts > 0  # series without a training window are never drawn
            self.by_series = (firsts[trained], counts[trained])

    @property
    def steps_per_epoch(self) -> int:
        return self.num_rows // self.global_batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        # int32 where it fits: the same permutation as int64 (same generator draws), half the
        # memory; and one batch's list at a time, not the epoch's: 35 M windows as Python ints
        # took 1.4 GB, and 546 K row tensors from iterating the tensor itself 600 MB.
        dtype = torch.int32 if self.num_rows < 2**31 else torch.int64
        drawn = self.steps_per_epoch * self.global_batch_size
        if self.by_series is not None:
            firsts, counts = self.by_series
            series = torch.randint(len(counts), (drawn,), generator=generator)
            offsets = (torch.rand(drawn, generator=generator, dtype=torch.float64) * counts[series]).long()
            order = (firsts[series] + offsets).to(dtype)
        else:
            order = torch.randperm(self.num_rows, generator=generator, dtype=dtype)[:drawn]
        batches = order.view(-1, self.batch_size)
        for i in range(len(batches)):  # not `for batch in batches`: that unbinds every row into a tensor at once
            yield batches[i].tolist()

    def __len__(self) -> int:
        return self.steps_per_epoch * self.global_batch_size // self.batch_size


class WholeBatches(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """A torch view of a split's windows, read a batch at a time, normalised as the model sees them.

    A micro batch is one fancy index into the series values (inputs [B, T]) and one into the
    targets ([B], or [B, H] for a horizon H): as fast as indexing pre-built window tensors
    (`bench`), at 4 bytes a point instead of (seq_length + 1) x 4 bytes a window.
    """

    def __init__(self, windows: Windows) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        batch = self.__getitems__([index])
        return {key: value[0] for key, value in batch.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        index = np.asarray(indices, dtype=np.int64)
        inputs, targets = self.windows.gather(index)
        inputs = pack(inputs, self.windows.gather_covariates(index))  # [B, T], or [B, T + H, 1 + C] with covariates
        return {INPUTS: torch.from_numpy(inputs), TARGET: torch.from_numpy(targets)}  # targets [B] or [B, H]


def _as_is(batch: Any) -> Any:
    """The batch `WholeBatches.__getitems__` made, untouched. (Typed Any: torch declares a collate
    function's input as a list of samples, which it is only without `__getitems__`.)"""
    return batch


def _own_generator(seed: int) -> torch.Generator:
    """Each DataLoader iterator draws a seed from its generator: with its own, it leaves the
    global RNG (which drives dropout) alone, so a resumed run draws the same masks."""
    return torch.Generator().manual_seed(seed)


def train_loader(
    dataset: Windows, micro_batch_size: int, global_batch_size: int, seed: int, by_series: bool = False
) -> DataLoader[dict[str, torch.Tensor]]:
    if len(dataset) < global_batch_size:
        raise UserError(
            f"the training split has {len(dataset)} windows, fewer than one global batch of "
            f"{global_batch_size}; use more data or a smaller --total_batch_size"
        )
    counts = dataset.counts if by_series else None
    sampler = GlobalBatchSampler(len(dataset), micro_batch_size, global_batch_size, seed, counts)
    return DataLoader(WholeBatches(dataset), batch_sampler=sampler, collate_fn=_as_is, generator=_own_generator(seed))


def eval_loader(dataset: Windows, batch_size: int) -> DataLoader[dict[str, torch.Tensor]]:
    sampler = BatchSampler(SequentialSampler(range(len(dataset))), batch_size, drop_last=False)
    return DataLoader(WholeBatches(dataset), batch_sampler=sampler, collate_fn=_as_is, generator=_own_generator(0))
