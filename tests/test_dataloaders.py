"""Whole-batch reads: the split's windows, gathered from the series in the sampler's order, as tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from conftest import every

from lstm_trainer.config import DataConfig
from lstm_trainer.data import INPUTS, TARGET, Windows, prepare_data
from lstm_trainer.data.loaders import GlobalBatchSampler, WholeBatches, eval_loader, train_loader


def small_split(split: str = "train", **kwargs: Any) -> Windows:
    return prepare_data(DataConfig(seq_length=8, num_train_samples=300, num_val_samples=70, **kwargs), seed=3).windows[
        split
    ]


def test_whole_batches_are_the_split_windows() -> None:
    windows = small_split()
    rows = WholeBatches(windows)
    indices = [299, 0, 17, 17, 150]
    batch = rows.__getitems__(indices)
    inputs, targets = every(windows)
    assert batch[INPUTS].shape == (5, 8) and batch[INPUTS].dtype == torch.float32
    assert torch.equal(batch[INPUTS], torch.from_numpy(inputs[indices])) and torch.equal(
        batch[TARGET], torch.from_numpy(targets[indices])
    )
    assert len(rows) == 300
    assert torch.equal(rows[17][INPUTS], batch[INPUTS][2])


def test_horizon_batches_carry_h_targets() -> None:
    batch = WholeBatches(small_split(horizon=4)).__getitems__([0, 1, 2])
    assert batch[INPUTS].shape == (3, 8) and batch[TARGET].shape == (3, 4)
    # The first target of window i + 1 is the second of window i: consecutive offsets in one series.
    assert torch.equal(batch[TARGET][1, :3], batch[TARGET][0, 1:])


def test_train_loader_follows_the_global_batch_sampler() -> None:
    windows = small_split()
    loader = train_loader(windows, micro_batch_size=32, global_batch_size=128, seed=5)
    sampler = loader.batch_sampler
    assert isinstance(sampler, GlobalBatchSampler) and sampler.steps_per_epoch == 2
    sampler.set_epoch(1)
    order = list(sampler)
    batches = list(loader)
    assert len(batches) == len(order) == 8  # 2 global batches of 4 micro batches; 44 rows sit out
    targets = torch.from_numpy(every(windows)[1])
    for rows, batch in zip(order, batches, strict=True):
        assert torch.equal(batch[TARGET], targets[rows])
    # The order is torch.randperm's under (seed + epoch), as before windows were gathered.
    expected = torch.randperm(300, generator=torch.Generator().manual_seed(5 + 1))[:256].view(-1, 32).tolist()
    assert order == expected
    sampler.set_epoch(2)
    assert list(sampler) != order


def test_eval_loader_reads_every_window_once_in_order() -> None:
    windows = small_split("validation")
    batches = list(eval_loader(windows, batch_size=32))
    assert [len(b[TARGET]) for b in batches] == [32, 32, 6]
    assert torch.equal(torch.cat([b[TARGET] for b in batches]), torch.from_numpy(every(windows)[1]))
    assert np.array_equal(torch.cat([b[INPUTS] for b in batches]).numpy(), every(windows)[0])


def test_series_sampling_weighs_every_series_the_same() -> None:
    # Three series with 1,000, 10 and 0 training windows: by window, the long one is drawn 99% of
    # the time; by series, the two with windows about half each, and the empty one never.
    counts = np.array([1000, 10, 0])
    by_window = GlobalBatchSampler(1010, 101, 1010, seed=1)
    by_series = GlobalBatchSampler(1010, 101, 1010, seed=1, series_counts=counts)
    for sampler, share_of_short in ((by_window, (0.0, 0.02)), (by_series, (0.45, 0.55))):
        drawn = np.concatenate([np.asarray(batch) for epoch in range(4) for batch in _epoch(sampler, epoch)])
        assert len(drawn) == 4 * 1010 and drawn.min() >= 0 and drawn.max() < 1010
        short = np.mean(drawn >= 1000)
        assert share_of_short[0] <= short <= share_of_short[1], short
    # The same (seed, epoch), the same draw: every process takes its share of one order, and a resume redraws it.
    assert _epoch(by_series, 2) == _epoch(GlobalBatchSampler(1010, 101, 1010, seed=1, series_counts=counts), 2)
    assert _epoch(by_series, 2) != _epoch(by_series, 3)


def _epoch(sampler: GlobalBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)
