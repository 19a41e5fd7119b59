"""What train.py reads from `accelerate launch` (the environment it exports, parsed and left in place), and the Accelerator built from the plan."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SRC, TINY

from lstm_trainer.errors import UserError
from lstm_trainer.train.launch import read_launch_request

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
    request = read_launch_request(WIZARD_ENV)
    values = {r.key: (r.value, r.origin) for r in request.values}
    assert values["zero_optimization.stage"] == (3, "zero_stage in the accelerate config")
    assert values["gradient_clipping"] == (0.5, "gradient_clipping in the accelerate config")
    assert values["zero_optimization.offload_optimizer.device"][0] == "cpu"
    assert request.accumulation is not None and request.accumulation.value == 2
    assert request.mixed_precision is not None and request.mixed_precision.value == "bf16"
    assert request.mixed_precision.origin == "mixed_precision in the accelerate config"
    assert request.ds_config_file is None and request.use_cpu is None


def test_fields_the_config_file_did_not_set_are_launch_flags() -> None:
    # Accelerate's DeepSpeed launcher lists the config file's fields; the rest came from its flags.
    env = {**WIZARD_ENV, "ACCELERATE_CONFIG_DS_FIELDS": "zero_stage", "ACCELERATE_DEEPSPEED_CONFIG_FILE": "x.json"}
    request = read_launch_request(env)
    assert (
        request.accumulation is not None
        and request.accumulation.origin == "accelerate launch --gradient_accumulation_steps"
    )
    assert (
        request.ds_config_file is not None
        and request.ds_config_file.origin == "accelerate launch --deepspeed_config_file"
    )
    origins = {r.key: r.origin for r in request.values}
    assert origins["zero_optimization.stage"] == "zero_stage in the accelerate config"
    assert origins["gradient_clipping"] == "accelerate launch --gradient_clipping"
    assert (
        request.mixed_precision is not None and request.mixed_precision.origin == "accelerate launch --mixed_precision"
    )


def test_outside_a_deepspeed_launch_a_deepspeed_value_was_set_by_hand() -> None:
    request = read_launch_request({"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1", "ACCELERATE_MIXED_PRECISION": "bf16"})
    assert (
        request.accumulation is not None
        and request.accumulation.origin == "the environment variable ACCELERATE_GRADIENT_ACCUMULATION_STEPS"
    )
    # Every launcher exports the precision, from a flag or the config file.
    assert request.mixed_precision is not None
    assert (
        request.mixed_precision.origin == "accelerate launch's mixed_precision (a launch flag or the accelerate config)"
    )


def test_plain_python_has_nothing_to_honour() -> None:
    request = read_launch_request({})
    assert (request.values, request.accumulation, request.ds_config_file, request.mixed_precision, request.use_cpu) == (
        [],
        None,
        None,
        None,
        None,
    )


def test_precision_no_counts_only_where_the_config_file_is_listed_as_setting_it() -> None:
    # Accelerate exports "no" when nothing was chosen, so a bare "no" says nothing.
    assert read_launch_request({"ACCELERATE_MIXED_PRECISION": "no"}).mixed_precision is None
    assert (
        read_launch_request(
            {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_CONFIG_DS_FIELDS": "zero_stage"}
        ).mixed_precision
        is None
    )
    chosen = read_launch_request(
        {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_CONFIG_DS_FIELDS": "mixed_precision"}
    ).mixed_precision
    assert chosen is not None and chosen.value == "no" and chosen.origin == "mixed_precision in the accelerate config"


def test_use_cpu_is_read_from_either_of_its_sources() -> None:
    assert read_launch_request({"ACCELERATE_USE_CPU": "False"}).use_cpu is None
    use_cpu = read_launch_request({"ACCELERATE_USE_CPU": "True"}).use_cpu
    assert (
        use_cpu is not None
        and use_cpu.origin == "accelerate launch's use_cpu (--cpu, or use_cpu: true in the accelerate config)"
    )


def test_messages_name_the_default_config_file_only_as_the_likely_one() -> None:
    assert read_launch_request({}).where == "the accelerate config (the file given to --config_file)"
    where = read_launch_request({}, "/home/me/default_config.yaml").where
    assert where == "the accelerate config (/home/me/default_config.yaml unless --config_file named another)"


def test_bad_values_are_user_errors() -> None:
    with pytest.raises(UserError, match="'two' is not a valid zero_stage"):
        read_launch_request({"ACCELERATE_DEEPSPEED_ZERO_STAGE": "two"})
    with pytest.raises(UserError, match="gradient_accumulation_steps must be > 0"):
        read_launch_request({"ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "0"})
    with pytest.raises(UserError, match="fp8 is not supported by this trainer"):
        read_launch_request({"ACCELERATE_MIXED_PRECISION": "fp8"})


def test_reading_leaves_the_mapping_as_it_was() -> None:
    env = {**WIZARD_ENV, "ACCELERATE_USE_CPU": "True", "ACCELERATE_DEEPSPEED_CONFIG_FILE": "x.json"}
    before = dict(env)
    read_launch_request(env)
    assert env == before


def test_the_launchers_own_arguments_are_read_from_the_parent_process(tmp_path: Path) -> None:
    """What the CPU relaunch passes on: the parent's arguments after "launch", verbatim, and its folder."""
    child = "from lstm_trainer.train.launch import _parent_launch; print(_parent_launch())"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    launched = [sys.executable, "-c", parent, "launch", "--config_file", "my config.yaml", "train.py", "--seed", "1"]
    done = subprocess.run(launched, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == repr(
        (["--config_file", "my config.yaml", "train.py", "--seed", "1"], str(tmp_path))
    ), done.stderr
    # A parent that is no launcher gives nothing, and the relaunch then stops with its one-line advice.
    child = (
        "from lstm_trainer.train.launch import _parent_launch, relaunch_for_cpu_processes\n"
        "print(_parent_launch())\n"
        "relaunch_for_cpu_processes()"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    simple = {k: v for k, v in env.items() if k not in ("RANK", "LSTM_TRAINER_RELAUNCHED")}
    simple.update(ACCELERATE_USE_CPU="True", MASTER_ADDR="127.0.0.1", MASTER_PORT="29500")
    alone = subprocess.run(
        [sys.executable, "-c", parent], cwd=tmp_path, env=simple, capture_output=True, text=True, timeout=60
    )
    assert alone.stdout.strip() == "None", alone.stderr
    assert "UserError: accelerate launch started one process for several; add --use_deepspeed" in alone.stderr


def test_the_accelerator_honours_the_plan_and_leaves_accelerates_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A wizard config's variables, use_cpu included: the Accelerator is built with DeepSpeed on the
    CPU, the accumulation and stage resolved from them, and every variable is still there after."""
    from accelerate.utils import DistributedType

    from lstm_trainer.cli.train import parse_config
    from lstm_trainer.train.launch import ensure_rendezvous_env, launch_request, make_accelerator, release_process_state
    from lstm_trainer.train.plan import choose_ds_config, make_plan

    launched = {
        "ACCELERATE_USE_DEEPSPEED": "true",
        # As a wizard config lists them: Accelerate's DeepSpeedPlugin would refuse these next to a JSON.
        "ACCELERATE_CONFIG_DS_FIELDS": "gradient_accumulation_steps,zero_stage,mixed_precision",
        "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "2",
        "ACCELERATE_DEEPSPEED_ZERO_STAGE": "1",
        "ACCELERATE_MIXED_PRECISION": "no",
        "ACCELERATE_USE_CPU": "True",  # Accelerate would turn DeepSpeed off for it
    }
    for name, value in launched.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    train = parse_config([*TINY, "--output_dir", str(tmp_path / "out")]).train
    launch = launch_request()
    resolved = make_plan(train, choose_ds_config(None, launch), ensure_rendezvous_env(), False, 2048, launch)
    accelerator = make_accelerator(resolved, train, cuda=False)
    try:
        assert accelerator.distributed_type == DistributedType.DEEPSPEED
        assert resolved.gradient_accumulation_steps == accelerator.gradient_accumulation_steps == 2
        plugin = accelerator.state.deepspeed_plugin
        assert plugin.gradient_accumulation_steps == plugin.deepspeed_config["gradient_accumulation_steps"] == 2
        assert "zero_optimization.stage: 2 (ds_config) -> 1 (zero_stage in the accelerate config)" in resolved.changes
        # One fp32 process has nothing to shard, so the engine runs stage 0; checkpoints keep the stage asked for.
        assert resolved.zero_stage == 1
        assert plugin.zero_stage == plugin.deepspeed_config["zero_optimization"]["stage"] == 0
        assert {name: os.environ.get(name) for name in launched} == launched
    finally:
        accelerator.end_training()
        release_process_state()
