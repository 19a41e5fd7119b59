import json
import re

import pytest

from lstm_trainer.config import TrainConfig
from lstm_trainer.errors import UserError
from lstm_trainer.train.ds_config import DsJson, check_with_deepspeed, choose_ds_config, load_ds_config, resolve
from lstm_trainer.train.launcher import LaunchRequest, Requested

REFERENCE = load_ds_config("accelerate_configs/ds_zero2.json")
# A user's own JSON that writes the numbers out, where the shipped one leaves them "auto".
NUMBERS = {
    **REFERENCE,
    "train_batch_size": 128,
    "train_micro_batch_size_per_gpu": 32,
    "optimizer": {"type": "Adam", "params": {"lr": 5e-4, "weight_decay": 1e-5}},
    "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0, "warmup_max_lr": 5e-4, "warmup_num_steps": 100}},
}


def test_shipped_config_leaves_the_scripts_values_auto_and_resolves_to_the_reference() -> None:
    # Accelerate's convention: "auto" where the script owns the value, so each number lives in
    # config.py only; what DeepSpeed alone decides (clipping, ZeRO, loss scaling) is in the JSON.
    assert REFERENCE["optimizer"] == {"type": "Adam", "params": {"lr": "auto", "weight_decay": "auto"}}
    assert REFERENCE["scheduler"]["params"] == {"warmup_min_lr": 0, "warmup_max_lr": "auto", "warmup_num_steps": "auto"}
    assert (REFERENCE["train_batch_size"], REFERENCE["train_micro_batch_size_per_gpu"]) == ("auto", "auto")
    assert REFERENCE["gradient_clipping"] == 1.0
    zero = REFERENCE["zero_optimization"]
    assert (zero["stage"], zero["contiguous_gradients"], zero["overlap_comm"]) == (2, True, True)
    assert (REFERENCE["fp16"]["loss_scale"], REFERENCE["fp16"]["loss_scale_window"]) == (0, 1000)
    resolved = resolve(TrainConfig(), REFERENCE, world_size=1, cuda=False)
    assert resolved.config["optimizer"]["params"] == {"lr": 5e-4, "weight_decay": 1e-5, "torch_adam": True}
    assert resolved.config["scheduler"]["params"] == {
        "warmup_min_lr": 0,
        "warmup_max_lr": 5e-4,
        "warmup_num_steps": 100,
    }
    assert (resolved.total_batch_size, resolved.micro_batch_size) == (128, 32)
    # Filling "auto" with the default is what it asks for: no `changed:` line for it.
    owned = ("optimizer.params.lr", "optimizer.params.weight_decay", "scheduler.", "train_")
    assert not [c for c in resolved.changes if c.startswith(owned)], resolved.changes
    assert resolve(TrainConfig(), NUMBERS, world_size=1, cuda=False).config == resolved.config


@pytest.mark.parametrize(("world", "accumulation"), [(1, 4), (2, 2), (4, 1)])
def test_accumulation_follows_the_process_count(world: int, accumulation: int) -> None:
    resolved = resolve(TrainConfig(), REFERENCE, world_size=world, cuda=False)
    assert resolved.gradient_accumulation_steps == accumulation
    assert resolved.config["gradient_accumulation_steps"] == accumulation
    assert resolved.config["train_batch_size"] == 128


def test_a_lone_fp32_process_runs_stage_0_and_keeps_the_asked_stage_for_checkpoints() -> None:
    alone = resolve(TrainConfig(), REFERENCE, world_size=1, cuda=False)
    assert alone.config["zero_optimization"]["stage"] == 0 and alone.zero_stage == 2
    assert "zero_optimization.stage: 2 (ds_config) -> 0 (one process: nothing to shard)" in alone.changes
    # What a checkpoint is compared on is the stage asked for, so 1 and 2 processes agree.
    assert (
        alone.identity()["zero_stage"]
        == resolve(TrainConfig(), REFERENCE, world_size=2, cuda=False).identity()["zero_stage"]
        == 2
    )
    # ZeRO stays where it shards, offloads or runs a mixed-precision optimizer.
    assert resolve(TrainConfig(), REFERENCE, world_size=2, cuda=False).config["zero_optimization"]["stage"] == 2
    assert resolve(TrainConfig(), REFERENCE, world_size=1, cuda=True).config["zero_optimization"]["stage"] == 2
    offload = json.loads(json.dumps(REFERENCE))
    offload["zero_optimization"]["offload_optimizer"] = {"device": "cpu"}
    assert resolve(TrainConfig(), offload, world_size=1, cuda=False).config["zero_optimization"]["stage"] == 2
    zero3 = json.loads(json.dumps(REFERENCE))
    zero3["zero_optimization"]["stage"] = 3
    assert resolve(TrainConfig(), zero3, world_size=1, cuda=False).config["zero_optimization"]["stage"] == 3


def test_precision_defaults_to_fp16_on_cuda_and_fp32_on_cpu() -> None:
    on_gpu = resolve(TrainConfig(), REFERENCE, world_size=1, cuda=True)
    on_cpu = resolve(TrainConfig(), REFERENCE, world_size=2, cuda=False)
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
    with pytest.raises(UserError, match=r"fp16 needs a CUDA GPU.*--mixed_precision no"):
        resolve(TrainConfig(mixed_precision="fp16"), REFERENCE, world_size=1, cuda=False)


def test_cli_overrides_are_applied_and_reported() -> None:
    train = TrainConfig(learning_rate=1e-3, weight_decay=0.0, num_warmup_steps=5, total_batch_size=64)
    assert resolve(train, REFERENCE, world_size=1, cuda=False).config == resolve(train, NUMBERS, 1, False).config
    assert (
        "optimizer.params.lr: auto (ds_config) -> 0.001 (--learning_rate)"
        in resolve(train, REFERENCE, 1, False).changes
    )
    resolved = resolve(train, NUMBERS, world_size=1, cuda=False)
    assert resolved.config["optimizer"]["params"]["lr"] == 1e-3
    assert resolved.config["scheduler"]["params"]["warmup_max_lr"] == 1e-3
    assert resolved.config["optimizer"]["params"]["weight_decay"] == 0.0
    assert resolved.config["scheduler"]["params"]["warmup_num_steps"] == 5
    assert resolved.gradient_accumulation_steps == 2
    text = "\n".join(resolved.changes)
    assert "optimizer.params.lr: 0.0005 (ds_config) -> 0.001 (--learning_rate)" in text
    assert "train_batch_size: 128 (ds_config) -> 64 (--total_batch_size)" in text
    assert NUMBERS["optimizer"]["params"]["lr"] == 5e-4  # the loaded JSON itself is untouched


def test_precedence_flag_then_json_then_default() -> None:
    """The documented order: a typed flag > the JSON's value > the default; "auto" takes the default."""
    from lstm_trainer.cli.train import parse_config

    json_lr = {**NUMBERS, "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "weight_decay": "auto"}}}
    defaults = parse_config([]).train
    assert (defaults.learning_rate, defaults.weight_decay, defaults.num_warmup_steps) == (5e-4, 1e-5, 100)
    assert (defaults.per_device_train_batch_size, defaults.total_batch_size) == (32, 128)
    from_json = resolve(defaults, json_lr, world_size=1, cuda=False)
    assert from_json.config["optimizer"]["params"]["lr"] == 1e-3  # the JSON beats the default
    assert from_json.config["scheduler"]["params"]["warmup_max_lr"] == 5e-4  # the reference JSON's own peak
    assert from_json.config["optimizer"]["params"]["weight_decay"] == 1e-5  # "auto": the default
    # A flag typed with the default's value still beats the JSON.
    typed = parse_config(["--learning_rate", "5e-4"]).train
    assert typed.typed == {"learning_rate"}
    assert resolve(typed, json_lr, world_size=1, cuda=False).config["optimizer"]["params"]["lr"] == 5e-4
    # In code, a value other than the default counts as chosen.
    assert resolve(TrainConfig(learning_rate=2e-3), json_lr, 1, False).config["optimizer"]["params"]["lr"] == 2e-3


def test_missing_and_broken_files_are_user_errors(tmp_path) -> None:
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


# The accelerate config (wizard, --config_file) and launch flags, merged with the JSON.

ZERO3 = load_ds_config("accelerate_configs/ds_zero3.json")


def asked(accumulation: int | None = None, precision: str | None = None, **values: object) -> LaunchRequest:
    """A launcher request as launcher.py would build it from a wizard config at w.yaml."""
    keys = {
        "zero_stage": "zero_optimization.stage",
        "offload_optimizer_device": "zero_optimization.offload_optimizer.device",
        "gradient_clipping": "gradient_clipping",
    }
    absent = {"offload_optimizer_device": "none"}
    request = LaunchRequest(where="w.yaml")
    request.values = [Requested(keys[k], v, f"{k} in w.yaml", absent.get(k)) for k, v in values.items()]
    if accumulation is not None:
        request.accumulation = Requested(
            "gradient_accumulation_steps", accumulation, "gradient_accumulation_steps in w.yaml"
        )
    if precision is not None:
        request.mixed_precision = Requested("mixed_precision", precision, "mixed_precision in w.yaml")
    return request


def named(config: dict, path: str = "x.json") -> DsJson:
    return DsJson(config, path, "--ds_config")


def test_accelerate_config_answers_replace_the_default_json_and_say_so() -> None:
    request = asked(zero_stage=3, offload_optimizer_device="cpu", gradient_clipping=0.5)
    resolved = resolve(TrainConfig(), REFERENCE, world_size=2, cuda=False, launch=request)
    zero = resolved.config["zero_optimization"]
    assert (zero["stage"], zero["offload_optimizer"]["device"], resolved.config["gradient_clipping"]) == (3, "cpu", 0.5)
    text = "\n".join(resolved.changes)
    assert "zero_optimization.stage: 2 (ds_config) -> 3 (zero_stage in w.yaml)" in text
    assert "gradient_clipping: 1.0 (ds_config) -> 0.5 (gradient_clipping in w.yaml)" in text


def test_answers_that_match_or_fill_a_named_json_are_fine() -> None:
    resolved = resolve(
        TrainConfig(),
        named(ZERO3),
        1,
        False,
        asked(zero_stage=3, offload_optimizer_device="none", gradient_clipping=1.0),
    )
    assert resolved.config["zero_optimization"]["stage"] == 3
    assert "offload_optimizer" not in resolved.config["zero_optimization"]  # "none" is what DeepSpeed does anyway
    assert not [c for c in resolved.changes if "w.yaml" in c]
    filled = resolve(TrainConfig(), named(REFERENCE), 1, False, asked(offload_optimizer_device="cpu"))
    assert filled.config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"  # the JSON left it open


def test_answers_that_contradict_a_named_json_stop_with_both_values() -> None:
    with pytest.raises(UserError) as err:
        resolve(TrainConfig(), named(REFERENCE), 1, False, asked(zero_stage=3, gradient_clipping=0.5))
    message = str(err.value)
    assert "zero_optimization.stage is 3 from zero_stage in w.yaml but 2 in x.json (--ds_config)" in message
    assert "gradient_clipping is 0.5 from gradient_clipping in w.yaml but 1.0 in x.json (--ds_config)" in message
    assert "drop the value from w.yaml" in message and '"auto"' in message and "\n" not in message


def test_accumulation_from_the_accelerate_config_keeps_the_global_batch() -> None:
    resolved = resolve(TrainConfig(), REFERENCE, world_size=2, cuda=False, launch=asked(accumulation=1))
    assert (resolved.gradient_accumulation_steps, resolved.micro_batch_size, resolved.total_batch_size) == (1, 64, 128)
    assert "train_micro_batch_size_per_gpu: auto (ds_config) -> 64 (global batch 128 / (accumulation 1" in "\n".join(
        resolved.changes
    )
    # The same count with a micro batch that fits: nothing to change.
    assert resolve(TrainConfig(), named(REFERENCE), 2, False, asked(accumulation=2)).micro_batch_size == 32


@pytest.mark.parametrize(
    ("train", "source", "world", "accumulation", "message"),
    [
        (
            TrainConfig(per_device_train_batch_size=16),
            REFERENCE,
            1,
            1,
            "--per_device_train_batch_size 16 x gradient_accumulation_steps 1",
        ),
        (
            TrainConfig(),
            named(NUMBERS),
            1,
            1,
            "sets micro batch 32 and global batch 128, which take 4 on 1 processes",
        ),
        (TrainConfig(), REFERENCE, 3, 1, "global batch 128 is not gradient_accumulation_steps 1"),
    ],
)
def test_accumulation_that_cannot_keep_the_global_batch_stops(train, source, world, accumulation, message) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        resolve(train, source, world, False, asked(accumulation=accumulation))


def test_precision_flag_beats_accelerate_config_which_beats_the_default() -> None:
    from_config = resolve(TrainConfig(), REFERENCE, 1, cuda=True, launch=asked(precision="no"))
    assert from_config.mixed_precision == "no" and from_config.config["fp16"]["enabled"] is False
    flag = resolve(TrainConfig(mixed_precision="bf16"), REFERENCE, 1, cuda=False, launch=asked(precision="no"))
    assert flag.mixed_precision == "bf16"
    assert "mixed precision: no (mixed_precision in w.yaml) -> bf16 (--mixed_precision)" in flag.changes
    with pytest.raises(UserError, match=r"fp16 needs a CUDA GPU.*fp16 came from mixed_precision in w\.yaml"):
        resolve(TrainConfig(), REFERENCE, 1, cuda=False, launch=asked(precision="fp16"))
    fp16_json = {**REFERENCE, "fp16": {"enabled": True}}
    with pytest.raises(UserError, match=r"mixed precision is bf16 from mixed_precision in w\.yaml but fp16 in"):
        resolve(TrainConfig(), named(fp16_json), 1, cuda=True, launch=asked(precision="bf16"))


def test_which_json_a_run_uses() -> None:
    default = choose_ds_config(None, LaunchRequest())
    assert (default.path, default.chosen_by) == ("accelerate_configs/ds_zero2.json", None)
    from_config = LaunchRequest(
        ds_config_file=Requested(
            "deepspeed_config_file", "accelerate_configs/ds_zero3.json", "deepspeed_config_file in w.yaml"
        )
    )
    chosen = choose_ds_config(None, from_config)
    assert (
        chosen.config["zero_optimization"]["stage"] == 3
        and chosen.label == "accelerate_configs/ds_zero3.json (deepspeed_config_file in w.yaml)"
    )
    assert (
        choose_ds_config("accelerate_configs/ds_zero3.json", from_config).chosen_by == "--ds_config"
    )  # the same file twice
    with pytest.raises(
        UserError,
        match=r"two DeepSpeed JSONs: .*ds_zero2.json \(--ds_config\) and .*ds_zero3.json \(deepspeed_config_file in w.yaml\)",
    ):
        choose_ds_config("accelerate_configs/ds_zero2.json", from_config)


def test_deepspeed_itself_rejects_a_bad_section_as_one_line() -> None:
    broken = {**REFERENCE, "zero_optimization": {"stage": 2, "no_such_knob": True}}
    resolved = resolve(TrainConfig(), named(broken), 1, False)
    with pytest.raises(
        UserError, match=r"DeepSpeed rejects the config from x.json \(--ds_config\): .*no_such_knob"
    ) as err:
        check_with_deepspeed(resolved)
    assert "\n" not in str(err.value)


def test_a_top_level_key_deepspeed_never_reads_is_an_error() -> None:
    typo = {**REFERENCE, "gradient_cliping": 1.0, "bogus_key": 1}
    with pytest.raises(
        UserError, match=r"^DeepSpeed does not use the top-level key\(s\) 'bogus_key', 'gradient_cliping' in x.json"
    ):
        check_with_deepspeed(resolve(TrainConfig(), named(typo), 1, False))
    check_with_deepspeed(resolve(TrainConfig(), named(REFERENCE), 1, False))  # every key of the shipped JSON is read
