"""Benchmark: the trainer against a bare PyTorch loop, same data, model, batch and precision.

    python bench/run.py                  # CPU: (a) bare loop, (b) trainer 1 process, (c) 2 processes
    python bench/run.py --device cuda    # one GPU, fp16 (the reference setting); refuses without CUDA
    python bench/run.py --epochs 4 -- --num_train_samples 2048   # flags after -- go to both loops

(a) is `bench/bare_loop.py`; (b) and (c) are the real `accelerate launch train.py`, which
records its own timings in all_results.json (lstm_trainer/train/perf.py). Every run trains the
same epochs with no early stopping. Epoch figures are medians over the epochs after the
first (the warm-up). Writes <output_dir>/bench.json and <output_dir>/bench.md, and the records
the docs' tables are rendered from: docs/results/speed/<device>.json and docs/results/latency/<device>.json
(bench/record.py; --results_dir and --name move them).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import latency as forecast_latency  # noqa: E402  (bench/latency.py, beside this file)
import record  # noqa: E402  (bench/record.py: the docs' result files)
import tables  # noqa: E402  (bench/tables.py: every bench table, rendered from its record)

from lstm_trainer.errors import UserError  # noqa: E402

# The targets of issue 7, checked in every report: the trainer's epoch (1 process) at most
# MAX_TRAINER_RATIO times the bare loop's; `--help` under MAX_HELP_SECONDS; two identical 1-process
# runs side by side each at most MAX_SIDE_BY_SIDE_RATIO times (b)'s epoch alone (issue 22).
MAX_TRAINER_RATIO = tables.MAX_TRAINER_RATIO
MAX_HELP_SECONDS = tables.MAX_HELP_SECONDS
MAX_SIDE_BY_SIDE_RATIO = tables.MAX_SIDE_BY_SIDE_RATIO
TARGET_MSE = 0.0115  # validation MSE whose time-to-reach is compared
# Launcher and rendezvous variables of an enclosing launch must not leak into ours.
LAUNCH_VARS = ("ACCELERATE_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_", "LSTM_TRAINER_")


class RunFailed(Exception):
    """A benchmarked loop did not finish: not the user's doing, so exit 1 with its output."""


@dataclass
class Run:
    """One of the benchmark's loops and how to start it."""

    key: str  # "bare", "trainer_1", "trainer_2"
    title: str
    processes: int
    results: dict[str, Any] | None = None
    launched_at: float = 0.0  # Unix time just before the launch


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Time the trainer against a bare PyTorch loop. Flags after -- go to both loops.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu: fp32; cuda: one GPU, fp16")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per run, the first one a warm-up")
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=None,
        help="trainer process counts (default: 1 and 2 on CPU; 1, and 2 where 2 GPUs are visible)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads (OMP_NUM_THREADS) per process in every run; 1 is what `accelerate launch` "
        "gives each process on a CPU",
    )
    parser.add_argument(
        "--target_mse", type=float, default=TARGET_MSE, help="validation MSE whose time-to-reach is reported"
    )
    parser.add_argument(
        "--output_dir", default=str(ROOT / "bench" / "results"), help="where bench.json and bench.md go"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for each run")
    record.add_flags(parser, name="")  # --name: default the device (cpu, cuda)
    args, passthrough = parser.parse_known_args(argv)
    passthrough = [a for a in passthrough if a != "--"]
    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError(
                "--device cuda needs a CUDA GPU and none is visible here; run the CPU benchmark "
                "(python bench/run.py) on this machine, or this command on a GPU machine"
            )
        gpus = torch.cuda.device_count()
        args.processes = args.processes or ([1, 2] if gpus >= 2 else [1])
        if max(args.processes) > gpus:
            raise UserError(f"--processes {max(args.processes)} needs as many GPUs; {gpus} visible")
    args.processes = args.processes or [1, 2]
    if any(p < 1 for p in args.processes):
        raise UserError(f"--processes must be >= 1, got {args.processes}")
    forbidden = {"--output_dir", "--num_train_epochs", "--early_stopping_patience", "--mixed_precision"}
    if forbidden & {a.split("=")[0] for a in passthrough}:
        raise UserError(f"the benchmark sets {', '.join(sorted(forbidden))} itself; use --epochs and --device")
    return args, passthrough


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCH_VARS)}
    # The same intra-op thread count for every loop: compare like with like. Set, not left to
    # defaults: `accelerate launch` gives its processes 1 thread, plain `python` one per core.
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT / "src"), WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    return env


def run_one(run: Run, args: argparse.Namespace, passthrough: list[str], work: Path) -> None:
    run_together([run], args, passthrough, work)


def run_together(runs: list[Run], args: argparse.Namespace, passthrough: list[str], work: Path) -> None:
    """Start every run at once and wait for all: one alone, or identical ones side by side."""
    started = []
    for run in runs:
        command, result_file = command_for(run, args, passthrough, work)
        print(f"bench: {run.title} ({args.threads} thread(s) per process) ...", flush=True)
        run.launched_at = time.time()
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(args.threads), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)  # fmt: skip
        started.append((run, process, result_file))
    for run, process, result_file in started:
        try:
            log, _ = process.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            for _, other, _ in started:
                other.kill()
            raise UserError(
                f"{run.title} took over {args.timeout:.0f} s; use fewer --epochs or a larger --timeout"
            ) from None
        if process.returncode != 0 or not result_file.is_file():
            tail = "\n".join(log.strip().splitlines()[-15:])
            raise RunFailed(f"{run.title} failed with exit code {process.returncode}:\n{tail}")
        run.results = json.loads(result_file.read_text())


def command_for(run: Run, args: argparse.Namespace, passthrough: list[str], work: Path) -> tuple[list[str], Path]:
    # fp16 on CUDA is the reference's setting; DeepSpeed has no fp16 on CPU.
    precision = "fp16" if args.device == "cuda" else "no"
    same = ["--num_train_epochs", str(args.epochs), "--mixed_precision", precision, *passthrough]
    if run.key == "bare":
        result_file = work / "bare.json"
        command = [sys.executable, str(ROOT / "bench" / "bare_loop.py"), "--results", str(result_file),
                   "--device", args.device, *same]  # fmt: skip
    else:
        out = work / run.key
        result_file = out / "all_results.json"
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(run.processes),
            # Accelerate's default port (29500) would collide with any other launch running.
            "--main_process_port", str(free_port()), str(ROOT / "train.py"), "--output_dir", str(out), "--early_stopping_patience", str(args.epochs), *same,
        ]  # fmt: skip
    return command, result_file


def help_seconds() -> float:
    """Wall time of `python train.py --help`, best of 3 (the first may pay for a cold disk cache)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], cwd=ROOT, env=child_env(1),
                       capture_output=True, check=True)  # fmt: skip
        times.append(time.perf_counter() - started)
    return min(times)


def summarize(run: Run, target_mse: float) -> dict[str, Any]:
    res = run.results
    assert res is not None
    epochs = res["epoch_train_seconds"]
    timed = epochs[1:] or epochs  # after the warm-up epoch, when there is one
    per_epoch = statistics.median(timed)
    windows = res["optimizer_steps"] / len(epochs) * res["global_batch_size"]
    reached = [i for i, mse in enumerate(res["val_mse_history"]) if mse <= target_mse]
    first_step = res["first_optimizer_step_unix_time"]
    return {
        "title": run.title,
        "processes": run.processes,
        "threads_per_process": res["cpu_threads_per_process"],
        "precision": res["mixed_precision"],
        "epochs": len(epochs),
        "timed_epochs": len(timed),
        "epoch_seconds_median": per_epoch,
        "epoch_seconds_min": min(timed),
        "epoch_seconds_max": max(timed),
        "epoch_cpu_seconds_median": statistics.median(res["epoch_cpu_seconds"][1:] or res["epoch_cpu_seconds"]),
        "windows_per_epoch": windows,
        "windows_per_second": windows / per_epoch,
        "launch_to_first_step_seconds": first_step - run.launched_at if first_step is not None else None,
        "peak_rss_mib_per_process": res["peak_rss_mib_per_process"],
        "peak_cuda_mib_per_process": res.get("peak_cuda_mib_per_process"),
        "dataset_seconds": res["dataset_seconds"],
        "seconds_to_target_mse": res["elapsed_seconds_history"][reached[0]] if reached else None,
        "epochs_to_target_mse": reached[0] + 1 if reached else None,
        "best_val_mse": min(res["val_mse_history"]),
        "epoch_seconds": epochs,
        "val_mse_history": res["val_mse_history"],
    }


def assess(summary: dict[str, dict[str, Any]], help_time: float) -> dict[str, Any]:
    """The issue's targets, each with its measured value and whether it holds."""
    bare, one, two = summary["bare"], summary.get("trainer_1"), summary.get("trainer_2")
    out: dict[str, Any] = {
        "help_seconds": {"value": help_time, "limit": MAX_HELP_SECONDS, "met": help_time < MAX_HELP_SECONDS}
    }
    if one:
        ratio = one["epoch_seconds_median"] / bare["epoch_seconds_median"]
        out["trainer_1_over_bare"] = {"value": ratio, "limit": MAX_TRAINER_RATIO, "met": ratio <= MAX_TRAINER_RATIO}
        a, b = bare["seconds_to_target_mse"], one["seconds_to_target_mse"]
        # Met when the trainer gets there no later than the bare loop, or when only it gets there.
        met = b is not None and (a is None or b <= a)
        out["time_to_target_1_over_bare"] = {"value": b / a if a and b else None, "limit": 1.0, "met": met}
    if one and two:
        ratio = two["epoch_seconds_median"] / one["epoch_seconds_median"]
        out["trainer_2_over_trainer_1"] = {"value": ratio, "limit": 1.0, "met": ratio <= 1.0}
    side = [summary[k] for k in ("side_1", "side_2") if k in summary]
    if one and side:
        ratio = max(run["epoch_seconds_median"] for run in side) / one["epoch_seconds_median"]
        out["side_by_side_over_alone"] = {"value": ratio, "limit": MAX_SIDE_BY_SIDE_RATIO,
                                          "met": ratio <= MAX_SIDE_BY_SIDE_RATIO}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        args, passthrough = parse_args(argv)
        runs = [Run("bare", "(a) bare PyTorch loop", 1)]
        runs += [Run(f"trainer_{n}", f"({'bcdefgh'[i]}) trainer, {n} process{'es' if n > 1 else ''}", n)
                 for i, n in enumerate(args.processes)]  # fmt: skip
        output = Path(args.output_dir)
        load_before = os.getloadavg()[0]
        side = [] if args.device == "cuda" else [
            Run(f"side_{i}", f"({'bcdefgh'[len(args.processes) + i - 1]}) trainer, 1 process, side by side "
                f"(run {i} of 2)", 1) for i in (1, 2)]  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="lstm-bench-") as tmp:
            for run in runs:
                run_one(run, args, passthrough, Path(tmp))
            # Two identical runs at once, as two experiments or two sweep agents on one machine.
            if side:
                run_together(side, args, passthrough, Path(tmp))
                runs += side
            # The model the one-process run exported, forecasting on the CPU whatever the device.
            latency = forecast_latency.measure(Path(tmp) / runs[1].key / "model", env=child_env(args.threads))
        help_time = help_seconds()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except RunFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    summary = {run.key: summarize(run, args.target_mse) for run in runs}
    assert runs[0].results is not None
    figures = {
        "settings": {
            "device": args.device,
            "epochs": args.epochs,
            "target_mse": args.target_mse,
            "global_batch_size": runs[0].results["global_batch_size"],
            "train_args": passthrough,
        },
        "runs": summary,
        "targets": assess(summary, help_time),
        "latency": latency,
    }
    gpu = {}
    if args.device == "cuda":
        import torch

        gpu = {"gpu": torch.cuda.get_device_name(0), "gpus_visible": torch.cuda.device_count()}
    # The docs' records: the speed tables and the latency of the model (b) exported, each in its folder.
    name = args.name or args.device
    path = record.write("speed", name, figures, load_before, args.results_dir, **gpu)
    report = json.loads(path.read_text())
    model = "the model exported by bench/run.py's (b)"
    record.write("latency", name, {"model": model, "latency": latency}, load_before, args.results_dir, **gpu)
    output.mkdir(parents=True, exist_ok=True)
    (output / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    table = tables.source(report) + "\n\n" + tables.speed(report) + "\n" + tables.latency(latency)
    (output / "bench.md").write_text(table)
    print(table)
    print(f"bench: wrote {output / 'bench.json'} and {output / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
