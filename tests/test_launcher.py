"""What train.py reads from `accelerate launch`: the environment it exports, parsed and consumed."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import ClusterConfig

from lstm_trainer.errors import UserError
from lstm_trainer.launcher import CONSUMED, Launcher, read_launch_request, take_launch_request

# What Accelerate's DeepSpeed launcher exports for a wizard config with these answers
# (accelerate/utils/launch.py, prepare_deepspeed_cmd_env).
WIZARD_ENV = {
    "ACCELERATE_USE_DEEPSPEED": "true",
    "ACCELERATE_CONFIG_DS_FIELDS": "gradient_accumulation_steps,gradient_clipping,offload_optimizer_device,"
    "offload_param_device,zero3_init_flag,zero_stage,mixed_precision",
    "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
    "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "2",
    "ACCELERATE_GRADIENT_CLIPPING": "0.5",
    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu",
    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "none",
    "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false",
    "ACCELERATE_MIXED_PRECISION": "bf16",
}


def test_wizard_answers_are_read_with_where_they_came_from() -> None:
    request = read_launch_request(WIZARD_ENV, Launcher(["--config_file", "w.yaml"], "/abs/w.yaml"))
    values = {r.key: (r.value, r.origin) for r in request.values}
    assert values["zero_optimization.stage"] == (3, "zero_stage in /abs/w.yaml")
    assert values["gradient_clipping"] == (0.5, "gradient_clipping in /abs/w.yaml")
    assert values["zero_optimization.offload_optimizer.device"][0] == "cpu"
    assert request.accumulation is not None and request.accumulation.value == 2
    assert request.mixed_precision is not None and request.mixed_precision.value == "bf16"
    assert request.ds_config_file is None and request.use_cpu is None


def test_launch_flags_are_told_apart_from_config_values() -> None:
    env = {**WIZARD_ENV, "ACCELERATE_CONFIG_DS_FIELDS": "zero_stage"}
    request = read_launch_request(env, Launcher(["--config_file", "w.yaml", "--gradient_accumulation_steps", "2"], "w.yaml"))
    assert request.accumulation is not None and request.accumulation.origin == "accelerate launch --gradient_accumulation_steps"
    origins = {r.key: r.origin for r in request.values}
    assert origins["zero_optimization.stage"] == "zero_stage in w.yaml"


def test_plain_python_has_nothing_to_honour() -> None:
    request = read_launch_request({})
    assert (request.values, request.accumulation, request.ds_config_file, request.mixed_precision) == ([], None, None, None)


def test_precision_no_counts_only_when_someone_chose_it(tmp_path: Path) -> None:
    # Accelerate exports "no" by default; the simple launcher says nothing about where it came from.
    assert read_launch_request({"ACCELERATE_MIXED_PRECISION": "no"}).mixed_precision is None
    written = tmp_path / "default_config.yaml"
    ClusterConfig(compute_environment="LOCAL_MACHINE", distributed_type="NO", mixed_precision="no", use_cpu=True, debug=False).to_yaml_file(written)
    chosen = read_launch_request({"ACCELERATE_MIXED_PRECISION": "no"}, Launcher([], str(written))).mixed_precision
    assert chosen is not None and chosen.value == "no" and chosen.origin == f"mixed_precision in {written}"


def test_bad_values_are_user_errors() -> None:
    with pytest.raises(UserError, match="'two' is not a valid zero_stage"):
        read_launch_request({"ACCELERATE_DEEPSPEED_ZERO_STAGE": "two"})
    with pytest.raises(UserError, match="gradient_accumulation_steps must be > 0"):
        read_launch_request({"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "0"})
    with pytest.raises(UserError, match="fp8 is not supported by this trainer"):
        read_launch_request({"ACCELERATE_MIXED_PRECISION": "fp8"})


def test_taking_the_request_removes_what_accelerate_would_reapply() -> None:
    env = {**WIZARD_ENV, "ACCELERATE_USE_CPU": "True", "ACCELERATE_DEEPSPEED_CONFIG_FILE": "x.json", "OTHER": "1"}
    request = take_launch_request(env)
    assert request.use_cpu is not None and request.ds_config_file is not None
    assert not any(name in env for name in CONSUMED)
    # Kept: precision (the Accelerator is given one explicitly), DeepSpeed on, ZeRO-3 init, the rest.
    assert {"ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_DEEPSPEED", "ACCELERATE_DEEPSPEED_ZERO3_INIT", "OTHER"} <= env.keys()
