import json

import pytest

from lstm_trainer.config import TrainConfig
from lstm_trainer.ds_config import load_ds_config, resolve
from lstm_trainer.errors import UserError

REFERENCE = load_ds_config("accelerate_configs/ds_zero2.json")


def test_shipped_config_carries_the_reference_values() -> None:
    assert REFERENCE["optimizer"] == {"type": "Adam", "params": {"lr": 5e-4, "weight_decay": 1e-5}}
    assert REFERENCE["scheduler"]["params"] == {"warmup_min_lr": 0, "warmup_max_lr": 5e-4, "warmup_num_steps": 100}
    assert REFERENCE["gradient_clipping"] == 1.0
    zero = REFERENCE["zero_optimization"]
    assert (zero["stage"], zero["contiguous_gradients"], zero["overlap_comm"]) == (2, True, True)
    assert (REFERENCE["fp16"]["loss_scale"], REFERENCE["fp16"]["loss_scale_window"]) == (0, 1000)
    assert (REFERENCE["train_batch_size"], REFERENCE["train_micro_batch_size_per_gpu"]) == (128, 32)


@pytest.mark.parametrize(("world", "accumulation"), [(1, 4), (2, 2), (4, 1)])
def test_accumulation_follows_the_process_count(world: int, accumulation: int) -> None:
    resolved = resolve(TrainConfig(), REFERENCE, world_size=world, cuda=False)
    assert resolved.gradient_accumulation_steps == accumulation
    assert resolved.config["gradient_accumulation_steps"] == accumulation
    assert resolved.config["train_batch_size"] == 128


def test_precision_defaults_to_fp16_on_cuda_and_fp32_on_cpu() -> None:
    on_gpu = resolve(TrainConfig(), REFERENCE, world_size=1, cuda=True)
    on_cpu = resolve(TrainConfig(), REFERENCE, world_size=1, cuda=False)
    assert on_gpu.mixed_precision == "fp16" and on_gpu.config["fp16"]["enabled"] is True
    assert on_gpu.config["fp16"]["loss_scale"] == 0  # dynamic loss scaling kept
    assert on_cpu.mixed_precision == "no" and on_cpu.config["fp16"]["enabled"] is False
    assert "torch_adam" not in on_gpu.config["optimizer"]["params"]
    # The GPU keeps the reference's contiguous gradients; the CPU skips the copy they cost.
    assert on_gpu.config["zero_optimization"]["contiguous_gradients"] is True
    assert on_cpu.config["zero_optimization"]["contiguous_gradients"] is False
    assert "zero_optimization.contiguous_gradients: True (ds_config) -> False (no CUDA)" in on_cpu.changes
    assert on_cpu.config["zero_optimization"]["stage"] == 2 and REFERENCE["zero_optimization"]["contiguous_gradients"]


def test_fp16_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU.*--mixed_precision no"):
        resolve(TrainConfig(mixed_precision="fp16"), REFERENCE, world_size=1, cuda=False)


def test_cli_overrides_are_applied_and_reported() -> None:
    train = TrainConfig(learning_rate=1e-3, weight_decay=0.0, num_warmup_steps=5, total_batch_size=64)
    resolved = resolve(train, REFERENCE, world_size=1, cuda=False)
    assert resolved.config["optimizer"]["params"]["lr"] == 1e-3
    assert resolved.config["scheduler"]["params"]["warmup_max_lr"] == 1e-3
    assert resolved.config["optimizer"]["params"]["weight_decay"] == 0.0
    assert resolved.config["scheduler"]["params"]["warmup_num_steps"] == 5
    assert resolved.gradient_accumulation_steps == 2
    text = "\n".join(resolved.changes)
    assert "optimizer.params.lr: 0.0005 (ds_config) -> 0.001 (--learning_rate)" in text
    assert "train_batch_size: 128 (ds_config) -> 64 (--total_batch_size)" in text
    assert REFERENCE["optimizer"]["params"]["lr"] == 5e-4  # the loaded JSON itself is untouched


def test_missing_and_broken_files_are_user_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match="no such file"):
        load_ds_config(str(tmp_path / "nope.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"zero_optimization": ')
    with pytest.raises(UserError, match="not valid JSON"):
        load_ds_config(str(broken))
    no_zero = tmp_path / "nozero.json"
    no_zero.write_text(json.dumps({"train_batch_size": 8}))
    with pytest.raises(UserError, match="zero_optimization"):
        load_ds_config(str(no_zero))
