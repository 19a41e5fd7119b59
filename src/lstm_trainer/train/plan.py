"""The plan: every value a run trains with, decided once by one pure function, and where each came from.

`make_plan` combines the typed flags, what `accelerate launch` asked for (launch.py reads it), the
DeepSpeed JSON and the number of training windows. The rules, highest first:
1. A flag the user typed (or, for a TrainConfig built in code, a value other than its default).
2. The accelerate config (ZeRO stage, offload, clipping, accumulation, precision). Against a JSON
   the user named (--ds_config or deepspeed_config_file), a value both give must agree or the run
   stops; "auto" or no key leaves it to the accelerate config. The default JSON gives way.
3. The JSON's own values; "auto" leaves a value to the trainer (Accelerate's convention).
4. config.py's defaults. Where the user left them, the global batch shrinks to leave at least
   MIN_STEPS_PER_EPOCH steps an epoch and the warmup to at most WARMUP_SHARE of the planned steps
   (the reference's values assume its 8,000 windows; a real series may give a few hundred). A resume
   takes these fitted values from its checkpoint's plan, so a changed step limit keeps its schedule.
The global batch is kept whatever the process count. Every value not from the JSON is a `changed:` line.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_trainer.config import Plan, TrainConfig, gradient_accumulation_steps
from lstm_trainer.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DS_CONFIG = "accelerate_configs/ds_zero2.json"
ABSENT = object()
# A global batch of at most windows / 10: ten optimizer steps an epoch, so early stopping's
# patience (counted in epochs) spans at least ten times its value in updates.
MIN_STEPS_PER_EPOCH = 10
# Warmup is a small share of training (the reference: 100 of ~3,100 steps, 3%); 10% caps it.
WARMUP_SHARE = 0.1
# Below this, a run rarely gets past warmup and the first fits; said in one line.
FEW_STEPS = 300


@dataclass(frozen=True)
class Requested:
    """One value the launcher asked for and where the user wrote it."""

    key: str  # the DeepSpeed JSON key, dotted: "zero_optimization.stage"
    value: Any
    origin: str  # "zero_stage in the accelerate config" or "accelerate launch --zero_stage"


@dataclass
class LaunchRequest:
    """Everything the launcher passed on that train.py acts on; empty for `python train.py`."""

    values: list[Requested] = field(default_factory=list)
    accumulation: Requested | None = None
    ds_config_file: Requested | None = None
    mixed_precision: Requested | None = None
    use_cpu: Requested | None = None
    where: str = "the accelerate config"  # how messages name the accelerate config file


@dataclass(frozen=True)
class DsJson:
    """The DeepSpeed JSON a run starts from, and who named it (None: the project's default)."""

    config: dict[str, Any]
    path: str = DEFAULT_DS_CONFIG
    chosen_by: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path} ({self.chosen_by or 'the default --ds_config'})"


def find_ds_config(path: str, flag: str = "--ds_config") -> Path:
    """The JSON at `path`, looked up from the working directory, then from the repository."""
    for candidate in [Path(path)] if Path(path).is_absolute() else [Path(path), REPO_ROOT / path]:
        if candidate.is_file():
            return candidate
    raise UserError(f"{flag} {path}: no such file; give the path to a DeepSpeed JSON such as {DEFAULT_DS_CONFIG}")


def load_ds_config(path: str, flag: str = "--ds_config") -> dict[str, Any]:
    file = find_ds_config(path, flag)
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{flag} {file}: not valid JSON ({err}); fix the file or point {flag} at another") from None
    if not isinstance(config, dict) or not isinstance(config.get("zero_optimization"), dict):
        raise UserError(
            f'{flag} {file}: needs a JSON object with a "zero_optimization" section (see {DEFAULT_DS_CONFIG})'
        )
    return config


def choose_ds_config(flag: str | None, launch: LaunchRequest) -> DsJson:
    """--ds_config, else the accelerate config's deepspeed_config_file, else the default; two different is an error."""
    named = launch.ds_config_file
    if flag and named and find_ds_config(flag).resolve() != find_ds_config(named.value, named.origin).resolve():
        raise UserError(
            f"two DeepSpeed JSONs: {flag} (--ds_config) and {named.value} ({named.origin}); drop --ds_config to "
            f"use the accelerate config's, or launch with `accelerate launch --deepspeed_config_file {flag} ...`"
        )
    if flag is not None:
        return DsJson(load_ds_config(flag), flag, "--ds_config")
    if named is not None:
        return DsJson(load_ds_config(named.value, named.origin), named.value, named.origin)
    return DsJson(load_ds_config(DEFAULT_DS_CONFIG))


def make_plan(
    train: TrainConfig,
    ds: DsJson | dict[str, Any],
    world_size: int,
    cuda: bool,
    windows: int,
    launch: LaunchRequest | None = None,
    saved: dict[str, Any] | None = None,
) -> Plan:
    """The plan for `windows` training windows on `world_size` processes. `saved`: the `identity()`
    of the checkpoint a run resumes, whose fitted batch and warmup it keeps. Every user error is raised here."""
    source = ds if isinstance(ds, DsJson) else DsJson(ds)
    launch, saved, chosen = launch or LaunchRequest(), saved or {}, train.chosen()
    if launch.use_cpu is not None and cuda:
        # Accelerate would drop DeepSpeed for use_cpu, and DeepSpeed would still take the GPU.
        raise UserError(
            f"{launch.use_cpu.origin} asks for the CPU, but a CUDA GPU is visible; to train on the CPU hide it "
            "(CUDA_VISIBLE_DEVICES= accelerate launch ...), else set use_cpu: false"
        )
    d = _Draft(copy.deepcopy(source.config))
    micro, total, accumulation = _batch(d, train, chosen, world_size, windows, launch.accumulation, source, saved)
    optimizer = d.config.get("optimizer", {}).get("params")
    scheduler = d.config.get("scheduler", {}).get("params")
    for flag, section, key in (
        ("learning_rate", "optimizer", "lr"),
        ("weight_decay", "optimizer", "weight_decay"),
        ("num_warmup_steps", "scheduler", "warmup_num_steps"),
    ):
        params = optimizer if section == "optimizer" else scheduler
        if params is None and flag in chosen:
            raise UserError(f'--{flag} needs an "{section}" section in --ds_config')
        if params is not None and (flag in chosen or params.get(key) == "auto"):
            d.put(f"{section}.params.{key}", getattr(train, flag), f"--{flag}", filled=flag not in chosen)
    typed = "learning_rate" in chosen
    if scheduler is not None and "warmup_max_lr" in scheduler and (typed or scheduler["warmup_max_lr"] == "auto"):
        # WarmupLR climbs to the optimizer's rate, whichever source set it.
        peak = optimizer["lr"] if optimizer is not None and "lr" in optimizer else train.learning_rate
        d.put("scheduler.params.warmup_max_lr", peak, "--learning_rate" if typed else "the optimizer's lr", not typed)
    planned = (windows // total) * train.num_train_epochs  # the sampler drops a last partial global batch
    planned = min(planned, train.max_train_steps or planned)
    if scheduler and "num_warmup_steps" not in chosen and isinstance(scheduler.get("warmup_num_steps"), int):
        kept = saved.get("warmup_num_steps")
        if isinstance(kept, int):
            why = "the checkpoint's, fitted to the steps its run planned: a resume keeps its schedule"
            d.put("scheduler.params.warmup_num_steps", kept, why, fitted=True)
        else:
            longest = max(1, int(planned * WARMUP_SHARE))
            why = f"at most {WARMUP_SHARE:.0%} of the {planned} planned optimizer steps"
            d.put("scheduler.params.warmup_num_steps", min(scheduler["warmup_num_steps"], longest), why, fitted=True)

    for asked in launch.values:
        current = get_dotted(d.config, asked.key)
        if current is ABSENT and asked.value in ("none", False):
            continue  # "none", off or 0 where the JSON has no key: what DeepSpeed does anyway
        if current is ABSENT or current == "auto" or source.chosen_by is None or current == asked.value:
            d.put(asked.key, asked.value, asked.origin)
        else:
            d.conflicts.append(f"{asked.key} is {asked.value!r} from {asked.origin} but {current!r} in {source.label}")
    precision, why_precision = _precision(train.mixed_precision, d, cuda, launch.mixed_precision, source)
    if d.conflicts:
        raise UserError(
            f"the accelerate config and the DeepSpeed JSON disagree: {'; '.join(d.conflicts)}. Make them agree: to "
            f"keep the JSON's, drop the value from {launch.where} or from the launch flags; to take the accelerate "
            'config\'s, set it to "auto" in the JSON'
        )
    for name in ("fp16", "bf16"):
        d.put(f"{name}.enabled", precision == name, why_precision)
    adam = d.config.get("optimizer", {}).get("type", "").lower() in ("adam", "adamw")
    if not cuda and adam and optimizer is not None and "torch_adam" not in optimizer:
        # DeepSpeed's FusedAdam (or, with offload, its CPUAdam) would JIT-compile a C++ kernel
        # first (minutes on 2 cores); torch's own AdamW does the same update ("Adam" means
        # decoupled weight decay in DeepSpeed) at no cost. "torch_adam": false in the JSON opts out.
        d.put("optimizer.params.torch_adam", True, "no CUDA")
    zero = d.config["zero_optimization"]
    asked_stage = int(zero.get("stage", 0))
    offloaded = any(
        str(zero.get(f"offload_{p}", {}).get("device", "none")).lower() != "none" for p in ("optimizer", "param")
    )
    if world_size == 1 and asked_stage in (1, 2) and precision == "no" and not offloaded:
        # ZeRO-1/2 cut optimizer state and gradients across processes. Alone there is nothing
        # to cut, and stage 2 still reduces the gradients after every micro batch: 15-20% of
        # a CPU epoch of the default model (bench/). Stage 0 makes the same fp32 update with
        # the same optimizer; checkpoints carry the whole state, so runs on more processes,
        # which use the stage asked for, resume from them (reshard.py). Mixed precision keeps
        # ZeRO: DeepSpeed's stage-0 fp16/bf16 optimizers are other code paths.
        d.put("zero_optimization.stage", 0, "one process: nothing to shard")
    if not cuda and zero.get("stage") == 2 and zero.get("contiguous_gradients") is True:
        # Copying each gradient into a contiguous bucket as it is produced keeps GPU memory
        # unfragmented; a CPU has no such problem, and the copy cost ~5% of a CPU ZeRO-2
        # step of the default model (bench/). The update is the same either way. (ZeRO-3 was
        # not measured, and CPU offload turns the copy back on itself.)
        d.put("zero_optimization.contiguous_gradients", False, "no CUDA")
    d.config["steps_per_print"] = 10**9  # DeepSpeed's own step printing duplicates ours (Accelerate does the same)
    few = (
        f"this run plans only {planned} optimizer steps ({windows} training windows / global batch {total} x "
        f"{train.num_train_epochs} epochs{', capped by --max_train_steps' if train.max_train_steps else ''}); "
        "a few hundred are usually needed: raise --num_train_epochs or give more data"
    )
    notes, changes = ((few,) if planned < FEW_STEPS else ()), tuple(d.changes)
    return Plan(d.config, micro, total, accumulation, precision, asked_stage, planned, source.label, changes, notes)


@dataclass
class _Draft:
    """The JSON being filled in, with a line for each value not taken from it and each conflict found."""

    config: dict[str, Any]
    changes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def put(self, dotted: str, value: Any, why: str, filled: bool = False, fitted: bool = False) -> None:
        """`value` at `dotted`. `filled`: the trainer's own value, which "auto" asks for: then not a change.
        `fitted`: a value fitted to the data, whose line names the value it replaces rather than the JSON."""
        section, key = _node(self.config, dotted)
        old = section.get(key, "unset")
        if old != value and not (filled and old == "auto"):
            self.changes.append(f"{dotted}: {old}{'' if fitted else ' (ds_config)'} -> {value} ({why})")
        section[key] = value


def _batch(
    d: _Draft,
    train: TrainConfig,
    chosen: frozenset[str],
    world_size: int,
    windows: int,
    asked: Requested | None,
    source: DsJson,
    saved: dict[str, Any],
) -> tuple[int, int, int]:
    """Micro batch, global batch and accumulation, put in the draft. The global batch is fixed (flag, JSON,
    or 128 fitted to the data); the accumulation follows, or, where the launcher fixes it, the micro batch."""
    micro_in_json = _batch_size(d.config.get("train_micro_batch_size_per_gpu"))
    fixed_micro = "per_device_train_batch_size" in chosen
    micro = micro_in_json if micro_in_json is not None and not fixed_micro else train.per_device_train_batch_size
    total = _batch_size(d.config.get("train_batch_size")) or train.total_batch_size
    total = train.total_batch_size if "total_batch_size" in chosen else total
    d.put("train_batch_size", total, "--total_batch_size", filled="total_batch_size" not in chosen)
    if asked is None:
        d.put("train_micro_batch_size_per_gpu", micro, "--per_device_train_batch_size", filled=not fixed_micro)
        if "total_batch_size" not in chosen:
            fitted, fitted_micro, cap = total, micro, max(1, windows // MIN_STEPS_PER_EPOCH)
            why = f"{windows} training windows: at least {MIN_STEPS_PER_EPOCH} optimizer steps an epoch"
            if "train_batch_size" in saved:  # a resume: the checkpoint's, fitted to its data
                fitted, why = saved["train_batch_size"], "the checkpoint's plan"
                fitted_micro = (
                    micro if fixed_micro else _micro_for(fitted, saved["train_micro_batch_size_per_gpu"], world_size)
                )
            elif total > cap:
                fitted, fitted_micro = _smaller_batch(total, micro, cap, world_size, fixed_micro)
            d.put("train_micro_batch_size_per_gpu", fitted_micro, why, fitted=True)
            d.put("train_batch_size", fitted, why, fitted=True)
            micro, total = fitted_micro, fitted
        accumulation = gradient_accumulation_steps(total, micro, world_size)
        d.put("gradient_accumulation_steps", accumulation, f"derived: {total} / ({micro} x {world_size} processes)")
        return micro, total, accumulation

    accumulation, per_step = asked.value, asked.value * world_size
    in_json = d.config.get("gradient_accumulation_steps")
    if source.chosen_by is not None and isinstance(in_json, int) and in_json != accumulation:
        d.conflicts.append(
            f"gradient_accumulation_steps is {accumulation} from {asked.origin} but {in_json} in {source.label}"
        )
    if total % per_step != 0:
        raise UserError(
            f"global batch {total} is not gradient_accumulation_steps {accumulation} ({asked.origin}) x "
            f"processes {world_size} x a whole micro batch; change gradient_accumulation_steps there, "
            f"--total_batch_size or --num_processes"
        )
    if total // per_step != micro and fixed_micro:
        raise UserError(
            f"--per_device_train_batch_size {micro} x gradient_accumulation_steps {accumulation} ({asked.origin}) x "
            f"processes {world_size} is {micro * per_step}, not the global batch {total}; drop one of the two "
            f"or pass --total_batch_size {micro * per_step}"
        )
    if total // per_step != micro and source.chosen_by is not None and micro_in_json is not None:
        d.conflicts.append(
            f"gradient_accumulation_steps is {accumulation} from {asked.origin} but {source.label} sets micro "
            f"batch {micro} and global batch {total}, which take {total / (micro * world_size):g} on "
            f'{world_size} processes ("auto" as its train_micro_batch_size_per_gpu lets the micro batch follow)'
        )
    why = f"global batch {total} / (accumulation {accumulation} from {asked.origin} x {world_size} processes)"
    d.put("train_micro_batch_size_per_gpu", total // per_step, why)
    d.put("gradient_accumulation_steps", accumulation, asked.origin)
    return total // per_step, total, accumulation


def _smaller_batch(total: int, micro: int, cap: int, world_size: int, fixed_micro: bool) -> tuple[int, int]:
    """(global batch, micro batch) with the global batch at most `cap`.

    The global batch is halved, not cut to fit the process count, so a run on 1, 2 or 4
    processes keeps the same one, as it does at full size; only a process count that does not
    divide it rounds it down to a multiple. The micro batch is the largest (at most the
    configured one) that makes it whole: micro x processes x accumulation.
    """
    while total > cap and total > 1:
        total //= 2
    if total % world_size:
        total = world_size * max(1, total // world_size)
    if fixed_micro:  # the user's micro batch stays; the global batch is the nearest whole multiple
        return micro * world_size * max(1, total // (micro * world_size)), micro
    return total, _micro_for(total, micro, world_size)


def _micro_for(total: int, micro: int, world_size: int) -> int:
    """The largest micro batch, at most `micro`, that divides the global batch on `world_size` processes."""
    return next(m for m in range(min(micro, total // world_size), 0, -1) if total % (m * world_size) == 0)


def _precision(flag: str, d: _Draft, cuda: bool, asked: Requested | None, source: DsJson) -> tuple[str, str]:
    """The precision and where it came from: flag, accelerate config, JSON, then fp16 on CUDA."""
    enabled = {name: d.config.get(name, {}).get("enabled", ABSENT) for name in ("fp16", "bf16")}
    in_json = next((name for name, value in enabled.items() if value is True), None)
    if in_json is None and "auto" not in enabled.values() and any(v is not ABSENT for v in enabled.values()):
        in_json = "no"  # the JSON turns both off; "auto" or no sections leave it open
    if flag != "auto":
        precision, why = flag, f"--mixed_precision {flag}"
        if asked is not None and asked.value != flag:
            d.changes.append(f"mixed precision: {asked.value} ({asked.origin}) -> {flag} (--mixed_precision)")
    elif asked is not None:
        precision, why = asked.value, asked.origin
        if source.chosen_by is not None and in_json is not None and in_json != precision:
            d.conflicts.append(f"mixed precision is {precision} from {asked.origin} but {in_json} in {source.label}")
    else:
        precision, why = (in_json, "ds_config") if in_json else ("fp16" if cuda else "no", "--mixed_precision auto")
    if precision == "fp16" and not cuda:
        raise UserError(
            f"fp16 needs a CUDA GPU and none is visible (DeepSpeed has no fp16 on CPU); fp16 came from {why}; "
            "use --mixed_precision no (or bf16) on this machine"
        )
    return precision, why


def check_with_deepspeed(plan: Plan) -> None:
    """Let DeepSpeed's own config class judge the plan now: one line here, not a traceback in prepare().
    It assumes one process, so the global batch (which counts them all) is left for it to derive."""
    from deepspeed.runtime.config import DeepSpeedConfig

    config = _Reads({k: v for k, v in copy.deepcopy(plan.config).items() if k != "train_batch_size"})
    try:
        DeepSpeedConfig(config)
    except (ValueError, AssertionError, TypeError, KeyError) as err:
        detail = "; ".join(
            line.strip() for line in str(err).splitlines() if line.strip() and "pydantic.dev" not in line
        )
        raise UserError(f"DeepSpeed rejects the config from {plan.source}: {detail}; fix that file") from None
    # DeepSpeed validates the sections it reads and silently ignores a top-level key it never
    # asks for, so a typo there ("gradient_cliping") would train with the default.
    unknown = sorted(set(dict.keys(config)) - config.read)
    if unknown:
        raise UserError(
            f"DeepSpeed does not use the top-level key(s) {', '.join(map(repr, unknown))} in {plan.source}; "
            "fix their spelling or remove them"
        )


class _Reads(dict[str, Any]):
    """Records the keys looked up in it (`copy.copy` shares the record): DeepSpeed lists no keys it reads."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.read: set[Any] = set()

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(key)
        return super().__contains__(key)

    def keys(self) -> Any:  # DeepSpeed asks `KEY in config.keys()`
        return self


def get_dotted(config: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted key ("zero_optimization.stage"), or ABSENT."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return node


def _node(config: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    """The dict holding `dotted`'s last key, created on the way if missing."""
    *parents, key = dotted.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    return config, key


def _batch_size(value: Any) -> int | None:
    if value is None or value == "auto":
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f'--ds_config: batch sizes must be positive integers or "auto", got {value!r}')
    return value
