"""End-to-end: every accelerate config that can run on a CPU, launched as docs/training.md says.

Also a config of the form `accelerate config` writes, a conflicting one, and
`accelerate config default`. HF_HOME points at a temporary folder in every launch, so the
user's own default accelerate config neither changes these runs nor is changed by them.
"""

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from conftest import ROOT, TINY, child_env, every, output, results, run_train

from lstm_trainer.config import DataConfig
from lstm_trainer.data import prepare_data
from lstm_trainer.model.forecaster import LSTMForecaster

pytestmark = pytest.mark.e2e

# One short epoch: these runs test the launch, not the learning. 1,280 windows are the fewest
# that keep the reference's global batch of 128 (the plan leaves at least 10 steps an epoch).
SMALL = [*TINY, "--num_train_samples", "1280", "--num_val_samples", "256", "--num_train_epochs", "1"]
# The console script beside this interpreter, as run_train uses it.
ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def launch(config: str | Path, out: Path, *flags: str, args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return run_train(
        [*SMALL, *args, "--output_dir", str(out)],
        launcher=["accelerate", "launch", "--config_file", str(config), *flags],
        env={"HF_HOME": str(out.parent / "hf_home")},
    )


def trained(done: subprocess.CompletedProcess[str], out: Path) -> dict[str, Any]:
    """The run finished, learned something, and best/ holds the weights that scored best_val_mse."""
    assert done.returncode == 0, output(done)
    res = results(out)
    assert res["best_val_mse"] < res["initial_val_mse"] and res["global_batch_size"] == 128
    inputs, targets = map(
        torch.from_numpy,
        every(prepare_data(DataConfig(num_train_samples=1280, num_val_samples=256), 42).windows["validation"]),
    )
    with torch.no_grad():
        prediction = LSTMForecaster.from_pretrained(out / "best")(inputs.float())
    assert torch.mean((prediction - targets.float()) ** 2).item() == pytest.approx(res["best_val_mse"], rel=1e-4)
    return res


def summary(res: dict[str, Any]) -> tuple[Any, ...]:
    ds = res["deepspeed"]
    return (
        res["world_size"],
        res["gradient_accumulation_steps"],
        res["mixed_precision"],
        ds["zero_stage"],
        ds["offload_optimizer_device"],
    )


@pytest.mark.parametrize(
    ("name", "flags", "expected"),
    [
        # One fp32 process runs ZeRO stage 0: nothing to shard (ds_config.resolve).
        ("cpu.yaml", (), (1, 4, "no", 0, "none")),
        ("cpu_2proc.yaml", (), (2, 2, "no", 2, "none")),
        # The GPU files run on a CPU too, in fp32: the JSON's fp16 is "auto".
        ("gpu.yaml", (), (1, 4, "no", 0, "none")),
        ("multi_gpu.yaml", ("--num_processes", "2"), (2, 2, "no", 2, "none")),
        # ZeRO-3 over 2 processes: best/ must be gathered from both shards to score as it did.
        ("zero3.yaml", ("--num_processes", "2"), (2, 2, "no", 3, "none")),
        ("zero2_offload.yaml", (), (1, 4, "no", 2, "cpu")),
    ],
)
def test_config_file_runs_as_documented(
    name: str, flags: tuple[str, ...], expected: tuple[Any, ...], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = launch(f"accelerate_configs/{name}", out, *flags)
    res = trained(done, out)
    assert summary(res) == expected
    if name != "cpu.yaml":  # the others name their JSON; cpu.yaml leaves train.py's default
        named = load_config_from_file(f"accelerate_configs/{name}").deepspeed_config["deepspeed_config_file"]
        assert res["ds_config"] == f"{named} (deepspeed_config_file in the accelerate config)"
    assert done.stdout.count("Training Summary:") == 1


def test_several_machines_on_one_host(tmp_path: Path) -> None:
    """multi_machine.yaml with its FILL IN fields given as flags: two launchers, one process each.

    Both write to one output_dir, as machines sharing storage do: each process writes its own
    checkpoint shard there.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    out = tmp_path / "out"
    runs = []
    for rank in ("0", "1"):
        command = [
            ACCELERATE,
            "launch",
            "--config_file",
            "accelerate_configs/multi_machine.yaml",
            "--num_machines",
            "2",
            "--num_processes",
            "2",
            "--machine_rank",
            rank,
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
            str(ROOT / "train.py"),
            *SMALL,
            "--output_dir",
            str(out),
        ]
        env = child_env(HF_HOME=str(tmp_path / "hf_home"))
        runs.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    res = trained(subprocess.CompletedProcess([], 0, *outputs[0]), out)
    assert summary(res) == (2, 2, "no", 2, "none")
    shards = sorted(p.name for p in out.glob("checkpoints/step-*/pytorch_model/zero_pp_rank_*_optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    assert "on the main machine (machine_rank 0)" in outputs[1][0]  # the other machine says where results are


def wizard_config(path: Path, num_processes: int, **deepspeed: Any) -> Path:
    """A config file exactly as `accelerate config` writes it: its own dataclass and writer."""
    ClusterConfig(
        compute_environment="LOCAL_MACHINE",
        distributed_type="DEEPSPEED",
        mixed_precision="no",
        use_cpu=True,
        debug=False,
        num_processes=num_processes,
        machine_rank=0,
        num_machines=1,
        rdzv_backend="static",
        same_network=True,
        main_training_function="main",
        enable_cpu_affinity=False,
        downcast_bf16=False,
        deepspeed_config={"offload_param_device": "none", "zero3_init_flag": False, **deepspeed},
    ).to_yaml_file(path)
    return path


def test_wizard_config_is_honoured(tmp_path: Path) -> None:
    config = wizard_config(
        tmp_path / "wizard.yaml",
        2,
        zero_stage=2,
        offload_optimizer_device="cpu",
        gradient_accumulation_steps=1,
        gradient_clipping=0.5,
    )
    out = tmp_path / "out"
    done = launch(config, out)
    res = trained(done, out)
    # Accumulation 1 as answered; the micro batch grows so the global batch stays 128.
    assert summary(res) == (2, 1, "no", 2, "cpu") and res["per_device_train_batch_size"] == 64
    assert res["deepspeed"]["gradient_clipping"] == 0.5
    assert "gradient_clipping: 1.0 (ds_config) -> 0.5 (gradient_clipping in the accelerate config)" in done.stdout
    assert (
        "zero_optimization.offload_optimizer.device: unset (ds_config) -> cpu (offload_optimizer_device in the accelerate config)"
        in done.stdout
    )


def test_wizard_config_that_contradicts_the_named_json_stops(tmp_path: Path) -> None:
    config = wizard_config(
        tmp_path / "wizard.yaml", 1, zero_stage=3, gradient_accumulation_steps=4, gradient_clipping=0.5
    )
    out = tmp_path / "out"
    done = launch(config, out, args=("--ds_config", "accelerate_configs/ds_zero2.json"))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output(done)
    assert (
        "zero_optimization.stage is 3 from zero_stage in the accelerate config but 2 in accelerate_configs/ds_zero2.json (--ds_config)"
        in errors[0]
    )
    assert "gradient_clipping is 0.5" in errors[0] and "but 1.0 in" in errors[0]
    # train.py exits with 2; the launcher's report of it says so (the launcher itself exits with 1).
    assert "exitcode  : 2" in done.stderr, output(done)
    # Torch's launcher reports the failed process below the line; train.py itself has no traceback.
    assert "[rank0]: Traceback" not in done.stderr
    assert not out.exists()


def test_accelerate_config_default_then_launch(tmp_path: Path) -> None:
    hf_home = tmp_path / "hf_home"
    written = subprocess.run(
        [ACCELERATE, "config", "default"],
        env=child_env(HF_HOME=str(hf_home)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert written.returncode == 0, written.stderr
    default = hf_home / "accelerate" / "default_config.yaml"
    assert default.is_file()
    out = tmp_path / "out"
    done = run_train(
        [*SMALL, "--output_dir", str(out)], launcher=["accelerate", "launch"], env={"HF_HOME": str(hf_home)}
    )
    res = trained(done, out)
    assert summary(res) == (1, 4, "no", 0, "none")
    assert "DeepSpeed ZeRO-0 (ZeRO-2 on 2+ processes)" in done.stdout
    # DeepSpeed ran (its engine's stage above: 0, as one fp32 process has nothing to shard, with
    # ZeRO-2 kept for more processes) although the file says use_cpu: true, which switches it off
    # in Accelerate. The file's mixed_precision: no is not counted: Accelerate exports "no" when
    # nothing is chosen, and only a DeepSpeed launch lists what its config file set, so the
    # precision follows train.py's own rule (fp32 on a CPU).
    assert "fp16.enabled: auto (ds_config) -> False (--mixed_precision auto)" in done.stdout, output(done)
    assert "in the accelerate config" not in done.stdout


def test_deepspeeds_own_launcher(tmp_path: Path) -> None:
    """`deepspeed --num_gpus 2 train.py`: DeepSpeed's launcher starts both processes (on a CPU
    as well) and passes each a --local_rank=N flag."""
    out = tmp_path / "ds"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "deepspeed"),
        "--num_gpus",
        "2",
        "--master_port",
        str(port),
        str(ROOT / "train.py"),
        *SMALL,
        "--output_dir",
        str(out),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=child_env(HF_HOME=str(tmp_path / "hf_home")), capture_output=True, text=True, timeout=300
    )
    assert "'--local_rank=1'" in done.stdout + done.stderr, output(done)
    res = trained(done, out)
    assert summary(res) == (2, 2, "no", 2, "none")
