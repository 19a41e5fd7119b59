import pytest

from lstm_trainer.config import DataConfig, ModelConfig, TrainConfig, gradient_accumulation_steps
from lstm_trainer.errors import UserError


@pytest.mark.parametrize(("processes", "expected"), [(1, 4), (2, 2), (4, 1)])
def test_accumulation_keeps_the_global_batch(processes: int, expected: int) -> None:
    assert gradient_accumulation_steps(128, 32, processes) == expected


@pytest.mark.parametrize(("total", "micro", "processes"), [(128, 32, 3), (100, 32, 1), (128, 32, 8)])
def test_accumulation_error_names_all_three_numbers(total: int, micro: int, processes: int) -> None:
    with pytest.raises(UserError) as err:
        gradient_accumulation_steps(total, micro, processes)
    message = str(err.value)
    assert f"total batch size {total}" in message
    assert f"micro batch {micro}" in message
    assert f"processes {processes}" in message


@pytest.mark.parametrize(
    ("factory", "kwargs", "flag"),
    [
        (DataConfig, {"seq_length": 0}, "--seq_length"),
        (DataConfig, {"num_train_samples": -5}, "--num_train_samples"),
        (DataConfig, {"noise_std": -0.1}, "--noise_std"),
        (DataConfig, {"val_fraction": 0.0}, "--val_fraction"),
        (DataConfig, {"test_fraction": 1.0}, "--test_fraction"),
        (DataConfig, {"val_fraction": 0.5, "test_fraction": 0.5}, "--val_fraction 0.5 \\+ --test_fraction 0.5"),
        (DataConfig, {"fill_missing": "guess"}, "--fill_missing"),
        (DataConfig, {"normalization": "minmax"}, "--normalization"),
        (DataConfig, {"dataset": " "}, "--dataset"),
        (ModelConfig, {"cell": "rnn"}, "--cell"),
        (ModelConfig, {"hidden_size": 0}, "--hidden_size"),
        (ModelConfig, {"dropout": 1.5}, "--dropout"),
        (TrainConfig, {"num_train_epochs": 0}, "--num_train_epochs"),
        (TrainConfig, {"learning_rate": -1.0}, "--learning_rate"),
        (TrainConfig, {"mixed_precision": "fp8"}, "--mixed_precision"),
        (TrainConfig, {"report_to": "mlflow"}, "--report_to"),
        (TrainConfig, {"run_name": "a/b"}, "--run_name"),
        (TrainConfig, {"run_name": " "}, "--run_name"),
    ],
)
def test_bad_values_are_user_errors_naming_the_flag(factory, kwargs, flag) -> None:
    with pytest.raises(UserError, match=flag):
        factory(**kwargs)


def test_defaults_are_the_reference_values() -> None:
    data, model, train = DataConfig(), ModelConfig(), TrainConfig()
    assert (data.seq_length, data.num_train_samples, data.num_val_samples, data.noise_std) == (50, 8000, 2000, 0.1)
    assert (model.cell, model.hidden_size, model.num_layers, model.dropout) == ("lstm", 64, 2, 0.2)
    assert (train.num_train_epochs, train.early_stopping_patience) == (50, 10)
