import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, child_env, run_train, train_in_process

from lstm_trainer.cli.train import main


def test_help_is_fast_and_shows_defaults() -> None:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "train.py", "--help"], cwd=ROOT, env=child_env(), capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0
    assert "--hidden_size" in done.stdout and "(default: 64)" in done.stdout
    assert "--mixed_precision {auto,no,fp16,bf16}" in done.stdout
    # The reference's optimizer and batch values are real defaults, shown here.
    for flag, default in (
        ("learning_rate", "0.0005"),
        ("weight_decay", "1e-05"),
        ("num_warmup_steps", "100"),
        ("per_device_train_batch_size", "32"),
        ("total_batch_size", "128"),
    ):
        entry = " ".join(done.stdout.split(f"--{flag} ")[-1].split("\n  --")[0].split())  # its help, rewrapped
        assert f"(default: {default})" in entry, (flag, entry)
    assert "--report_to {none,wandb,tensorboard,all}" in done.stdout and "(default: none)" in done.stdout
    # No torch import on the way: a generous bound that a torch import (seconds) would break.
    assert elapsed < 5, elapsed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hidden_size", "-3"], "--hidden_size must be > 0, got -3"),
        (["--cell", "rnn"], "invalid choice: 'rnn'"),
        (["--num_train_samples", "many"], "invalid int value: 'many'"),
        (["--ds_config", "missing.json"], "--ds_config missing.json: no such file"),
        (["--nonsense"], "unrecognized arguments: --nonsense"),
        (["--report_to", "mlflow"], "invalid choice: 'mlflow'"),
        (["--mixed_precision", "fp16"], "fp16 needs a CUDA GPU"),
        (["--per_device_train_batch_size", "48"], "total batch size 128 is not micro batch 48 x processes 1"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args: list[str], message: str, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main([*args, "--output_dir", str(out)]) == 2  # train.py's own entry point, in this process
    stderr = capsys.readouterr().err
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], stderr
    assert "Traceback" not in stderr
    assert not out.exists()  # nothing half-written


def test_train_py_prints_a_user_error_alone(tmp_path) -> None:
    done = run_train(["--per_device_train_batch_size", "48", "--output_dir", str(tmp_path / "out")])
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: total batch size 128 is not micro batch 48 x processes 1 x a whole accumulation count; pick "
        "--total_batch_size as a multiple of 48 or change --per_device_train_batch_size or --num_processes"
    ]
    assert not (tmp_path / "out").exists()


def test_deepspeeds_launcher_flag_is_accepted() -> None:
    from lstm_trainer.cli.train import parse_config

    # `deepspeed train.py` passes --local_rank=N to each process; LOCAL_RANK says the same.
    assert parse_config(["--local_rank=1", "--hidden_size", "8"]).model.hidden_size == 8
    assert parse_config(["--local_rank", "0"]) == parse_config([])


def test_divergence_stops_cleanly_in_one_line(
    tiny: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nan"
    train_in_process([*tiny, "--output_dir", str(out), "--num_train_epochs", "1"])
    capsys.readouterr()
    # An absurd learning rate sends the weights, then the loss, to inf within a few steps. The earlier run
    # there is replaced, as --overwrite_output_dir asks: no result, and no model of that earlier run left
    # beside this run's run_config.json.
    args = [*tiny, "--output_dir", str(out), "--learning_rate", "1e30", "--logging_steps", "1"]
    assert main([*args, "--overwrite_output_dir"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: loss became") and "lower the learning rate" in lines[0], (
        lines
    )
    assert not (out / "all_results.json").exists() and not (out / "model").exists()
