"""Whole-batch reads: the same rows as the Dataset, in the sampler's order, as tensors."""

from __future__ import annotations

import torch

from lstm_trainer.config import DataConfig
from lstm_trainer.data import INPUTS, TARGET, build_synthetic
from lstm_trainer.dataloaders import GlobalBatchSampler, WholeBatches, eval_loader, train_loader


def small_split(split: str = "train"):  # type: ignore[no-untyped-def]
    return build_synthetic(DataConfig(seq_length=8, num_train_samples=300, num_val_samples=70), seed=3)[split]


def test_whole_batches_are_the_datasets_rows() -> None:
    dataset = small_split()
    rows = WholeBatches(dataset)
    indices = [299, 0, 17, 17, 150]
    batch = rows.__getitems__(indices)
    expected = dataset.with_format("torch")[indices]
    assert batch[INPUTS].shape == (5, 8) and batch[INPUTS].dtype == torch.float32
    assert torch.equal(batch[INPUTS], expected[INPUTS]) and torch.equal(batch[TARGET], expected[TARGET])
    assert len(rows) == 300
    assert torch.equal(rows[17][INPUTS], batch[INPUTS][2])


def test_train_loader_follows_the_global_batch_sampler() -> None:
    dataset = small_split()
    loader = train_loader(dataset, micro_batch_size=32, global_batch_size=128, seed=5)
    sampler = loader.batch_sampler
    assert isinstance(sampler, GlobalBatchSampler) and sampler.steps_per_epoch == 2
    sampler.set_epoch(1)
    order = list(sampler)
    batches = list(loader)
    assert len(batches) == len(order) == 8  # 2 global batches of 4 micro batches; 44 rows sit out
    targets = dataset.with_format("torch")[:][TARGET]
    for rows, batch in zip(order, batches):
        assert torch.equal(batch[TARGET], targets[rows])
    sampler.set_epoch(2)
    assert list(sampler) != order


def test_eval_loader_reads_every_row_once_in_order() -> None:
    dataset = small_split("validation")
    batches = list(eval_loader(dataset, batch_size=32))
    assert [len(b[TARGET]) for b in batches] == [32, 32, 6]
    assert torch.equal(torch.cat([b[TARGET] for b in batches]), dataset.with_format("torch")[:][TARGET])
