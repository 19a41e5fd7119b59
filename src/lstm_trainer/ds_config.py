"""Read the DeepSpeed JSON and resolve it into the exact values a run uses.

The JSON is the source of truth for optimizer, scheduler, clipping, ZeRO and batch sizes;
a CLI flag may override a value, and every override is reported. Nothing is left "auto"
for DeepSpeed to guess: our model is a plain nn.Module without a `config`, and the
accumulation count depends on the process count, which only the trainer knows.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_trainer.config import TrainConfig, gradient_accumulation_steps
from lstm_trainer.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
# The reference's global and micro batch, used when the JSON leaves them to us.
DEFAULT_TOTAL_BATCH, DEFAULT_MICRO_BATCH = 128, 32


@dataclass
class ResolvedDeepSpeed:
    """A DeepSpeed config with every value the run depends on filled in."""

    config: dict[str, Any]
    micro_batch_size: int
    total_batch_size: int
    gradient_accumulation_steps: int
    mixed_precision: str  # "no", "fp16" or "bf16"
    changes: list[str] = field(default_factory=list)  # one line per value not taken from the JSON


def find_ds_config(path: str) -> Path:
    """The JSON at `path`, looked up from the working directory, then from the repository."""
    candidates = [Path(path)] if Path(path).is_absolute() else [Path(path), REPO_ROOT / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(f"--ds_config {path}: no such file; give the path to a DeepSpeed JSON such as accelerate_configs/ds_zero2.json")


def load_ds_config(path: str) -> dict[str, Any]:
    file = find_ds_config(path)
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"--ds_config {file}: not valid JSON ({err}); fix the file or point --ds_config at another") from None
    if not isinstance(config, dict) or not isinstance(config.get("zero_optimization"), dict):
        raise UserError(f"--ds_config {file}: needs a JSON object with a \"zero_optimization\" section (see accelerate_configs/ds_zero2.json)")
    return config


def resolve(train: TrainConfig, raw: dict[str, Any], world_size: int, cuda: bool) -> ResolvedDeepSpeed:
    """Fill in batch sizes, accumulation, precision and CLI overrides for this launch."""
    config = copy.deepcopy(raw)
    changes: list[str] = []

    def put(section: dict[str, Any], key: str, value: Any, where: str, why: str) -> None:
        old = section.get(key, "unset")
        if old != value:
            changes.append(f"{where}: {old} (ds_config) -> {value} ({why})")
        section[key] = value

    micro = _int_or(config.get("train_micro_batch_size_per_gpu"), DEFAULT_MICRO_BATCH)
    total = _int_or(config.get("train_batch_size"), DEFAULT_TOTAL_BATCH)
    if train.per_device_train_batch_size is not None:
        micro = train.per_device_train_batch_size
    if train.total_batch_size is not None:
        total = train.total_batch_size
    accumulation = gradient_accumulation_steps(total, micro, world_size)
    put(config, "train_micro_batch_size_per_gpu", micro, "train_micro_batch_size_per_gpu", "--per_device_train_batch_size")
    put(config, "train_batch_size", total, "train_batch_size", "--total_batch_size")
    put(
        config,
        "gradient_accumulation_steps",
        accumulation,
        "gradient_accumulation_steps",
        f"derived: {total} / ({micro} x {world_size} processes)",
    )

    optimizer = config.get("optimizer", {}).get("params")
    scheduler = config.get("scheduler", {}).get("params")
    if train.learning_rate is not None:
        if optimizer is None:
            raise UserError("--learning_rate needs an \"optimizer\" section in --ds_config")
        put(optimizer, "lr", train.learning_rate, "optimizer.params.lr", "--learning_rate")
        if scheduler is not None and "warmup_max_lr" in scheduler:
            put(scheduler, "warmup_max_lr", train.learning_rate, "scheduler.params.warmup_max_lr", "--learning_rate")
    if train.weight_decay is not None:
        if optimizer is None:
            raise UserError("--weight_decay needs an \"optimizer\" section in --ds_config")
        put(optimizer, "weight_decay", train.weight_decay, "optimizer.params.weight_decay", "--weight_decay")
    if train.num_warmup_steps is not None:
        if scheduler is None:
            raise UserError("--num_warmup_steps needs a \"scheduler\" section in --ds_config")
        put(scheduler, "warmup_num_steps", train.num_warmup_steps, "scheduler.params.warmup_num_steps", "--num_warmup_steps")

    precision = _resolve_precision(train.mixed_precision, config, cuda)
    for name in ("fp16", "bf16"):
        section = config.setdefault(name, {})
        put(section, "enabled", precision == name, f"{name}.enabled", f"--mixed_precision {train.mixed_precision}")

    if not cuda and optimizer is not None and config["optimizer"].get("type", "").lower() in ("adam", "adamw"):
        # DeepSpeed's FusedAdam would JIT-compile a C++ kernel on CPU; torch's own AdamW
        # does the same update ("Adam" means decoupled weight decay in DeepSpeed) at no cost.
        if "torch_adam" not in optimizer:
            put(optimizer, "torch_adam", True, "optimizer.params.torch_adam", "no CUDA")
    zero = config["zero_optimization"]
    if not cuda and zero.get("stage", 0) >= 2 and zero.get("contiguous_gradients") is True:
        # Copying each gradient into a contiguous bucket as it is produced keeps GPU memory
        # unfragmented; a CPU has no such problem, and the copy cost ~5% of a CPU training
        # step of the default model (bench/). The update is the same either way.
        put(zero, "contiguous_gradients", False, "zero_optimization.contiguous_gradients", "no CUDA")
    # DeepSpeed's own step printing duplicates ours; Accelerate silences it the same way.
    config["steps_per_print"] = 10**9
    return ResolvedDeepSpeed(config, micro, total, accumulation, precision, changes)


def _resolve_precision(requested: str, config: dict[str, Any], cuda: bool) -> str:
    if requested == "auto":
        in_json = [name for name in ("fp16", "bf16") if config.get(name, {}).get("enabled") is True]
        requested = in_json[0] if in_json else ("fp16" if cuda else "no")
    if requested == "fp16" and not cuda:
        raise UserError(
            "fp16 needs a CUDA GPU and none is visible (DeepSpeed has no fp16 on CPU); "
            "use --mixed_precision no (or bf16) on this machine"
        )
    return requested


def _int_or(value: Any, default: int) -> int:
    if value is None or value == "auto":
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"--ds_config: batch sizes must be positive integers or \"auto\", got {value!r}")
    return value
