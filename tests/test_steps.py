"""Global batch and warmup fitted to the training windows: reference values kept on the reference data."""

import pytest

from lstm_trainer.config import TrainConfig
from lstm_trainer.train.ds_config import load_ds_config, resolve
from lstm_trainer.train.steps import FEW_STEPS, fit_to_data, planned_steps


def reference(train: TrainConfig, world_size: int = 1):
    return resolve(train, load_ds_config("accelerate_configs/ds_zero2.json"), world_size, cuda=False)


def test_the_reference_data_keeps_the_reference_values() -> None:
    train = TrainConfig()
    ds = reference(train)
    fitted = fit_to_data(ds, train, windows=8000, world_size=1)
    assert (fitted.total_batch_size, fitted.micro_batch_size, fitted.gradient_accumulation_steps) == (128, 32, 4)
    assert fitted.config["scheduler"]["params"]["warmup_num_steps"] == 100
    assert (
        fitted.config["optimizer"]["params"]["lr"] == 5e-4
        and fitted.config["optimizer"]["params"]["weight_decay"] == 1e-5
    )
    assert fitted.changes == ds.changes and fitted.notes == []


@pytest.mark.parametrize(
    ("windows", "world_size", "micro", "total"),
    # The same global batch on 1 and 2 processes, as at full size.
    [(167, 1, 16, 16), (167, 2, 8, 16), (512, 1, 32, 32), (512, 2, 16, 32), (1000, 1, 32, 64), (1549, 2, 32, 128)],
)
def test_few_windows_shrink_the_global_batch(windows: int, world_size: int, micro: int, total: int) -> None:
    train = TrainConfig()
    fitted = fit_to_data(reference(train, world_size), train, windows, world_size)
    assert (fitted.micro_batch_size, fitted.total_batch_size) == (micro, total)
    assert total % (micro * world_size) == 0 and fitted.gradient_accumulation_steps == total // (micro * world_size)
    assert fitted.config["train_batch_size"] == total and fitted.config["train_micro_batch_size_per_gpu"] == micro
    assert windows // total >= 10
    if total != 128:
        assert any(c.startswith("train_batch_size: 128 -> ") for c in fitted.changes)


def test_warmup_is_at_most_a_tenth_of_the_planned_steps() -> None:
    train = TrainConfig(num_train_epochs=50)
    fitted = fit_to_data(reference(train), train, windows=167, world_size=1)
    assert planned_steps(167, 16, train) == 500
    assert fitted.config["scheduler"]["params"]["warmup_num_steps"] == 50
    assert any("warmup_num_steps: 100 -> 50" in c for c in fitted.changes)


def test_the_users_values_are_left_alone_and_few_steps_are_said() -> None:
    # 100 is also the default: typed on the command line, it is the user's choice all the same.
    train = TrainConfig(
        total_batch_size=64, num_warmup_steps=100, num_train_epochs=3, typed=frozenset({"num_warmup_steps"})
    )
    ds = reference(train)
    fitted = fit_to_data(ds, train, windows=300, world_size=1)
    assert fitted.total_batch_size == 64 and fitted.config["scheduler"]["params"]["warmup_num_steps"] == 100
    assert len(fitted.notes) == 1 and f"only {4 * 3} optimizer steps" in fitted.notes[0]
    assert planned_steps(300, 64, TrainConfig(num_train_epochs=1000)) >= FEW_STEPS


def test_a_micro_batch_the_user_set_stays() -> None:
    train = TrainConfig(per_device_train_batch_size=8)
    fitted = fit_to_data(reference(train), train, windows=167, world_size=1)
    assert (fitted.micro_batch_size, fitted.total_batch_size, fitted.gradient_accumulation_steps) == (8, 16, 2)
