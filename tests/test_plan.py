import json
import re

import pytest

from lstm_trainer.config import Plan, TrainConfig
from lstm_trainer.errors import UserError
from lstm_trainer.train.plan import (
    DsJson,
    LaunchRequest,
    Requested,
    check_with_deepspeed,
    choose_ds_config,
    load_ds_config,
    make_plan,
)

REFERENCE = load_ds_config("accelerate_configs/ds_zero2.json")
# The reference's 8,000 training windows: nothing is fitted to the data.
REFERENCE_WINDOWS = 8000


def plan_for(
    train: TrainConfig, source: dict | DsJson, world_size: int, cuda: bool, launch: LaunchRequest | None = None
) -> Plan:
    return make_plan(train, source, world_size, cuda, REFERENCE_WINDOWS, launch)


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
    resolved = plan_for(TrainConfig(), REFERENCE, world_size=1, cuda=False)
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
    assert plan_for(TrainConfig(), NUMBERS, world_size=1, cuda=False).config == resolved.config


@pytest.mark.parametrize(("world", "accumulation"), [(1, 4), (2, 2), (4, 1)])
def test_accumulation_follows_the_process_count(world: int, accumulation: int) -> None:
    resolved = plan_for(TrainConfig(), REFERENCE, world_size=world, cuda=False)
    assert resolved.gradient_accumulation_steps == accumulation
    assert resolved.config["gradient_accumulation_steps"] == accumulation
    assert resolved.config["train_batch_size"] == 128


def test_a_lone_fp32_process_runs_stage_0_and_keeps_the_asked_stage_for_checkpoints() -> None:
    alone = plan_for(TrainConfig(), REFERENCE, world_size=1, cuda=False)
    assert alone.config["zero_optimization"]["stage"] == 0 and alone.zero_stage == 2
    assert "zero_optimization.stage: 2 (ds_config) -> 0 (one process: nothing to shard)" in alone.changes
    # What a checkpoint is compared on is the stage asked for, so 1 and 2 processes agree.
    assert (
        alone.identity()["zero_stage"]
        == plan_for(TrainConfig(), REFERENCE, world_size=2, cuda=False).identity()["zero_stage"]
        == 2
    )
    # ZeRO stays where it shards, offloads or runs a mixed-precision optimizer.
    assert plan_for(TrainConfig(), REFERENCE, world_size=2, cuda=False).config["zero_optimization"]["stage"] == 2
    assert plan_for(TrainConfig(), REFERENCE, world_size=1, cuda=True).config["zero_optimization"]["stage"] == 2
    offload = json.loads(json.dumps(REFERENCE))
    offload["zero_optimization"]["offload_optimizer"] = {"device": "cpu"}
    assert plan_for(TrainConfig(), offload, world_size=1, cuda=False).config["zero_optimization"]["stage"] == 2
    zero3 = json.loads(json.dumps(REFERENCE))
    zero3["zero_optimization"]["stage"] = 3
    assert plan_for(TrainConfig(), zero3, world_size=1, cuda=False).config["zero_optimization"]["stage"] == 3


def test_precision_defaults_to_fp16_on_cuda_and_fp32_on_cpu() -> None:
    on_gpu = plan_for(TrainConfig(), REFERENCE, world_size=1, cuda=True)
    on_cpu = plan_for(TrainConfig(), REFERENCE, world_size=2, cuda=False)
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
        plan_for(TrainConfig(mixed_precision="fp16"), REFERENCE, world_size=1, cuda=False)


def test_cli_overrides_are_applied_and_reported() -> None:
    train = TrainConfig(learning_rate=1e-3, weight_decay=0.0, num_warmup_steps=5, total_batch_size=64)
    assert plan_for(train, REFERENCE, world_size=1, cuda=False).config == plan_for(train, NUMBERS, 1, False).config
    assert (
        "optimizer.params.lr: auto (ds_config) -> 0.001 (--learning_rate)"
        in plan_for(train, REFERENCE, 1, False).changes
    )
    resolved = plan_for(train, NUMBERS, world_size=1, cuda=False)
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
    from_json = plan_for(defaults, json_lr, world_size=1, cuda=False)
    assert from_json.config["optimizer"]["params"]["lr"] == 1e-3  # the JSON beats the default
    assert from_json.config["scheduler"]["params"]["warmup_max_lr"] == 5e-4  # the reference JSON's own peak
    assert from_json.config["optimizer"]["params"]["weight_decay"] == 1e-5  # "auto": the default
    # A flag typed with the default's value still beats the JSON.
    typed = parse_config(["--learning_rate", "5e-4"]).train
    assert typed.typed == {"learning_rate"}
    assert plan_for(typed, json_lr, world_size=1, cuda=False).config["optimizer"]["params"]["lr"] == 5e-4
    # In code, a value other than the default counts as chosen.
    assert plan_for(TrainConfig(learning_rate=2e-3), json_lr, 1, False).config["optimizer"]["params"]["lr"] == 2e-3


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
    """A launcher request as launch.py would build it from a wizard config at w.yaml."""
    keys = {
        "zero_stage": "zero_optimization.stage",
        "offload_optimizer_device": "zero_optimization.offload_optimizer.device",
        "gradient_clipping": "gradient_clipping",
    }
    request = LaunchRequest(where="w.yaml")
    request.values = [Requested(keys[k], v, f"{k} in w.yaml") for k, v in values.items()]
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
    resolved = plan_for(TrainConfig(), REFERENCE, world_size=2, cuda=False, launch=request)
    zero = resolved.config["zero_optimization"]
    assert (zero["stage"], zero["offload_optimizer"]["device"], resolved.config["gradient_clipping"]) == (3, "cpu", 0.5)
    text = "\n".join(resolved.changes)
    assert "zero_optimization.stage: 2 (ds_config) -> 3 (zero_stage in w.yaml)" in text
    assert "gradient_clipping: 1.0 (ds_config) -> 0.5 (gradient_clipping in w.yaml)" in text


def test_answers_that_match_or_fill_a_named_json_are_fine() -> None:
    resolved = plan_for(
        TrainConfig(),
        named(ZERO3),
        1,
        False,
        asked(zero_stage=3, offload_optimizer_device="none", gradient_clipping=1.0),
    )
    assert resolved.config["zero_optimization"]["stage"] == 3
    assert "offload_optimizer" not in resolved.config["zero_optimization"]  # "none" is what DeepSpeed does anyway
    assert not [c for c in resolved.changes if "w.yaml" in c]
    filled = plan_for(TrainConfig(), named(REFERENCE), 1, False, asked(offload_optimizer_device="cpu"))
    assert filled.config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"  # the JSON left it open


def test_answers_that_contradict_a_named_json_stop_with_both_values() -> None:
    with pytest.raises(UserError) as err:
        plan_for(TrainConfig(), named(REFERENCE), 1, False, asked(zero_stage=3, gradient_clipping=0.5))
    message = str(err.value)
    assert "zero_optimization.stage is 3 from zero_stage in w.yaml but 2 in x.json (--ds_config)" in message
    assert "gradient_clipping is 0.5 from gradient_clipping in w.yaml but 1.0 in x.json (--ds_config)" in message
    assert "drop the value from w.yaml" in message and '"auto"' in message and "\n" not in message


def test_accumulation_from_the_accelerate_config_keeps_the_global_batch() -> None:
    resolved = plan_for(TrainConfig(), REFERENCE, world_size=2, cuda=False, launch=asked(accumulation=1))
    assert (resolved.gradient_accumulation_steps, resolved.micro_batch_size, resolved.total_batch_size) == (1, 64, 128)
    assert "train_micro_batch_size_per_gpu: auto (ds_config) -> 64 (global batch 128 / (accumulation 1" in "\n".join(
        resolved.changes
    )
    # The same count with a micro batch that fits: nothing to change.
    assert plan_for(TrainConfig(), named(REFERENCE), 2, False, asked(accumulation=2)).micro_batch_size == 32


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
        plan_for(train, source, world, False, asked(accumulation=accumulation))


def test_precision_flag_beats_accelerate_config_which_beats_the_default() -> None:
    from_config = plan_for(TrainConfig(), REFERENCE, 1, cuda=True, launch=asked(precision="no"))
    assert from_config.mixed_precision == "no" and from_config.config["fp16"]["enabled"] is False
    flag = plan_for(TrainConfig(mixed_precision="bf16"), REFERENCE, 1, cuda=False, launch=asked(precision="no"))
    assert flag.mixed_precision == "bf16"
    assert "mixed precision: no (mixed_precision in w.yaml) -> bf16 (--mixed_precision)" in flag.changes
    with pytest.raises(UserError, match=r"fp16 needs a CUDA GPU.*fp16 came from mixed_precision in w\.yaml"):
        plan_for(TrainConfig(), REFERENCE, 1, cuda=False, launch=asked(precision="fp16"))
    fp16_json = {**REFERENCE, "fp16": {"enabled": True}}
    with pytest.raises(UserError, match=r"mixed precision is bf16 from mixed_precision in w\.yaml but fp16 in"):
        plan_for(TrainConfig(), named(fp16_json), 1, cuda=True, launch=asked(precision="bf16"))


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
    resolved = plan_for(TrainConfig(), named(broken), 1, False)
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
        check_with_deepspeed(plan_for(TrainConfig(), named(typo), 1, False))
    check_with_deepspeed(plan_for(TrainConfig(), named(REFERENCE), 1, False))  # every key of the shipped JSON is read


# Global batch and warmup fitted to the training windows: the reference's values kept on the reference data.


def fitted(train: TrainConfig, windows: int, world_size: int = 1, saved: dict | None = None) -> Plan:
    return make_plan(train, REFERENCE, world_size, False, windows, saved=saved)


def test_the_reference_data_keeps_the_reference_values() -> None:
    plan = fitted(TrainConfig(), windows=8000)
    assert (plan.total_batch_size, plan.micro_batch_size, plan.gradient_accumulation_steps) == (128, 32, 4)
    assert plan.config["scheduler"]["params"]["warmup_num_steps"] == 100
    assert (
        plan.config["optimizer"]["params"]["lr"] == 5e-4 and plan.config["optimizer"]["params"]["weight_decay"] == 1e-5
    )
    assert plan.planned_steps == 62 * 50 and plan.notes == ()
    assert not [c for c in plan.changes if c.startswith(("train_", "scheduler."))], plan.changes


@pytest.mark.parametrize(
    ("windows", "world_size", "micro", "total"),
    # The same global batch on 1 and 2 processes, as at full size.
    [(167, 1, 16, 16), (167, 2, 8, 16), (512, 1, 32, 32), (512, 2, 16, 32), (1000, 1, 32, 64), (1549, 2, 32, 128)],
)
def test_few_windows_shrink_the_global_batch(windows: int, world_size: int, micro: int, total: int) -> None:
    plan = fitted(TrainConfig(), windows, world_size)
    assert (plan.micro_batch_size, plan.total_batch_size) == (micro, total)
    assert total % (micro * world_size) == 0 and plan.gradient_accumulation_steps == total // (micro * world_size)
    assert plan.config["train_batch_size"] == total and plan.config["train_micro_batch_size_per_gpu"] == micro
    assert plan.config["gradient_accumulation_steps"] == plan.gradient_accumulation_steps
    assert windows // total >= 10
    if total != 128:
        assert any(c.startswith("train_batch_size: 128 -> ") for c in plan.changes)
    # Accumulation is said once, as it is in force: derived from the fitted batch.
    assert [c for c in plan.changes if c.startswith("gradient_accumulation_steps")] == [
        f"gradient_accumulation_steps: auto (ds_config) -> {plan.gradient_accumulation_steps} "
        f"(derived: {total} / ({micro} x {world_size} processes))"
    ]


def test_warmup_is_at_most_a_tenth_of_the_planned_steps() -> None:
    plan = fitted(TrainConfig(num_train_epochs=50), windows=167)
    assert plan.planned_steps == 500
    assert plan.config["scheduler"]["params"]["warmup_num_steps"] == 50
    assert any("warmup_num_steps: 100 -> 50" in c for c in plan.changes)


def test_the_users_values_are_left_alone_and_few_steps_are_said() -> None:
    # 100 is also the default: typed on the command line, it is the user's choice all the same.
    train = TrainConfig(
        total_batch_size=64, num_warmup_steps=100, num_train_epochs=3, typed=frozenset({"num_warmup_steps"})
    )
    plan = fitted(train, windows=300)
    assert plan.total_batch_size == 64 and plan.config["scheduler"]["params"]["warmup_num_steps"] == 100
    assert len(plan.notes) == 1 and f"only {4 * 3} optimizer steps" in plan.notes[0]
    assert fitted(TrainConfig(total_batch_size=64, num_train_epochs=1000), windows=300).notes == ()


def test_a_micro_batch_the_user_set_stays() -> None:
    plan = fitted(TrainConfig(per_device_train_batch_size=8), windows=167)
    assert (plan.micro_batch_size, plan.total_batch_size, plan.gradient_accumulation_steps) == (8, 16, 2)


def test_a_resume_keeps_its_checkpoints_fitted_values_whatever_the_new_steps_or_processes() -> None:
    """What a first launch fitted to its data and its planned steps stays when a resume plans other steps
    (--max_train_steps, --num_train_epochs) or runs on another process count; the accumulation follows."""
    first = fitted(TrainConfig(num_train_epochs=3), windows=167, world_size=2)
    assert (
        first.total_batch_size,
        first.micro_batch_size,
        first.config["scheduler"]["params"]["warmup_num_steps"],
    ) == (16, 8, 3)
    longer = TrainConfig(num_train_epochs=30, max_train_steps=200)
    fresh = fitted(longer, windows=167)  # what the longer schedule alone would fit: another warmup
    assert fresh.config["scheduler"]["params"]["warmup_num_steps"] == 20 and fresh.micro_batch_size == 16
    resumed = fitted(longer, windows=167, world_size=1, saved=first.identity())
    assert (resumed.total_batch_size, resumed.micro_batch_size, resumed.gradient_accumulation_steps) == (16, 8, 2)
    assert resumed.config["scheduler"]["params"]["warmup_num_steps"] == 3
    assert "scheduler.params.warmup_num_steps: 100 -> 3 (the checkpoint's" in "\n".join(resumed.changes)
    assert {k: v for k, v in resumed.identity().items() if k != "gradient_accumulation_steps"} == {
        k: v for k, v in first.identity().items() if k != "gradient_accumulation_steps"
    }
    # On more processes than the checkpoint's micro batch divides, the micro batch follows the global batch.
    assert fitted(longer, windows=167, world_size=4, saved=fitted(longer, 167).identity()).micro_batch_size == 4
