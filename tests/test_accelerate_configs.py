"""Every file in accelerate_configs/ is valid by its own tool's rules: Accelerate's loader, DeepSpeed's config class."""

import json
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from conftest import ROOT

from lstm_trainer.config import TrainConfig
from lstm_trainer.train.plan import find_ds_config, load_ds_config, make_plan

CONFIGS = ROOT / "accelerate_configs"
YAMLS = sorted(CONFIGS.glob("*.yaml"))
JSONS = sorted(CONFIGS.glob("*.json"))
# Fields Accelerate refuses next to a deepspeed_config_file (DeepSpeedPlugin._deepspeed_config_checks):
# the JSON is where they belong.
NOT_WITH_A_JSON = {
    "gradient_accumulation_steps",
    "gradient_clipping",
    "zero_stage",
    "offload_optimizer_device",
    "offload_param_device",
    "offload_param_nvme_path",
    "offload_optimizer_nvme_path",
    "zero3_save_16bit_model",
}
# What each JSON is for: ZeRO stage and where optimizer states live.
EXPECTED = {"ds_zero2.json": (2, "none"), "ds_zero3.json": (3, "none"), "ds_zero2_offload.json": (2, "cpu")}


def test_the_table_of_setups_is_complete() -> None:
    names = {p.name for p in YAMLS}
    assert names == {
        "cpu.yaml",
        "cpu_2proc.yaml",
        "gpu.yaml",
        "multi_gpu.yaml",
        "zero3.yaml",
        "zero2_offload.yaml",
        "multi_machine.yaml",
    }
    assert {p.name for p in JSONS} == set(EXPECTED)
    page = (ROOT / "docs" / "training.md").read_text()
    for name in names:  # each one is documented with its command
        assert f"--config_file accelerate_configs/{name}" in page, name


@pytest.mark.parametrize("path", YAMLS, ids=lambda p: p.name)
def test_yaml_loads_with_accelerates_own_loader(path: Path) -> None:
    config = load_config_from_file(str(path))
    assert config.compute_environment.value == "LOCAL_MACHINE"
    assert path.read_text().startswith("# ") and "accelerate launch --config_file" in path.read_text()
    if config.distributed_type == DistributedType.NO:
        assert (config.num_processes, config.use_cpu) == (1, True)
        return
    assert config.distributed_type == DistributedType.DEEPSPEED
    ds = config.deepspeed_config
    assert find_ds_config(ds["deepspeed_config_file"]).resolve().parent == CONFIGS.resolve()
    assert not NOT_WITH_A_JSON & ds.keys() and config.mixed_precision is None
    if path.name in ("multi_gpu.yaml", "zero3.yaml"):
        assert config.num_processes == -1  # accelerate launch insists on --num_processes


def test_multi_machine_yaml_marks_what_the_user_fills_in() -> None:
    text = (CONFIGS / "multi_machine.yaml").read_text()
    marked = {line.split(":")[0] for line in text.splitlines() if "FILL IN" in line and not line.startswith("#")}
    assert marked == {"num_machines", "num_processes", "machine_rank", "main_process_ip"}
    config = load_config_from_file(str(CONFIGS / "multi_machine.yaml"))
    assert config.num_machines > 1 and config.deepspeed_config["deepspeed_multinode_launcher"] == "standard"


@pytest.mark.parametrize("cuda", [False, True], ids=["cpu", "cuda"])
@pytest.mark.parametrize("path", JSONS, ids=lambda p: p.name)
def test_json_is_valid_for_deepspeeds_own_config_class(path: Path, cuda: bool) -> None:
    from deepspeed.runtime.config import DeepSpeedConfig

    # "auto" values are ours to fill: plan them as a one-process launch on the reference's 8,000
    # windows would, which is also the world size DeepSpeed assumes without a process group.
    resolved = make_plan(TrainConfig(), load_ds_config(str(path)), world_size=1, cuda=cuda, windows=8000)
    checked = DeepSpeedConfig(resolved.config)
    stage, offload = EXPECTED[path.name]
    # The stage asked for; a lone fp32 process runs stage 0 instead (test_plan).
    assert (
        resolved.zero_stage == stage
        and checked.zero_optimization_stage == resolved.config["zero_optimization"]["stage"]
    )
    device = checked.zero_config.offload_optimizer.device if checked.zero_config.offload_optimizer else "none"
    assert getattr(device, "value", device) == offload
    assert (checked.train_batch_size, checked.gradient_accumulation_steps) == (128, 4)
    assert checked.float16_config.enabled is cuda and checked.gradient_clipping == 1.0


def test_jsons_differ_only_in_their_zero_section() -> None:
    """Optimizer, scheduler, clipping, batch and fp16 are the reference's in every file."""
    configs = {p.name: json.loads(p.read_text()) for p in JSONS}
    rest = {name: {k: v for k, v in c.items() if k != "zero_optimization"} for name, c in configs.items()}
    assert rest["ds_zero3.json"] == rest["ds_zero2.json"] == rest["ds_zero2_offload.json"]
    zero2, offload = (
        configs["ds_zero2.json"]["zero_optimization"],
        configs["ds_zero2_offload.json"]["zero_optimization"],
    )
    assert {k: v for k, v in offload.items() if k != "offload_optimizer"} == zero2
