"""Read the DeepSpeed JSON and resolve it into the exact values a run uses.

The JSON is the source of truth for optimizer, scheduler, clipping, ZeRO and batch sizes.
Three other sources may change a value, and every change is reported:

1. train.py flags (--learning_rate, --mixed_precision, ...) win over everything.
2. The accelerate config (`accelerate config` or `accelerate launch --config_file`) may set
   the ZeRO stage, offload, clipping, accumulation, precision and the JSON itself. Where the
   user also named a JSON (--ds_config or its deepspeed_config_file) and both give a value
   for the same key, they must agree or the run stops; "auto" (or no key) in the JSON
   leaves the value to the accelerate config.
3. With no JSON named, the project's default (ds_zero2.json) supplies what the accelerate
   config does not, and the accelerate config's answers replace its values.

The global batch is kept whatever the source: with accumulation from the accelerate
config, the micro batch follows from it. Nothing is left "auto" for DeepSpeed to guess:
the accumulation count depends on the process count, which only the trainer knows.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstm_trainer.config import TrainConfig, gradient_accumulation_steps, is_set
from lstm_trainer.errors import UserError
from lstm_trainer.train.launcher import LaunchRequest, Requested

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_DS_CONFIG = "accelerate_configs/ds_zero2.json"
ABSENT = object()


@dataclass(frozen=True)
class ResolvedDeepSpeed:
    """A DeepSpeed config with every value the run depends on filled in, and where each came from.

    Made by `resolve` before the Accelerator exists, completed once with the data's size
    (steps.fit_to_data, a new record) before DeepSpeed's engine exists; frozen, so nothing
    changes it after. A checkpoint keeps its `identity()`, which a resume compares and from
    which it takes the warmup derived from the planned steps.
    """

    config: dict[str, Any]
    micro_batch_size: int
    total_batch_size: int
    gradient_accumulation_steps: int
    mixed_precision: str  # "no", "fp16" or "bf16"
    changes: list[str] = field(default_factory=list)  # one line per value not taken from the JSON
    source: str = DEFAULT_DS_CONFIG  # which JSON, and who chose it
    # The launcher fixed the accumulation count (the micro batch follows from it): steps.py leaves the batch alone.
    accumulation_from_launcher: bool = False
    notes: list[str] = field(default_factory=list)  # one line per thing a user should know about the plan
    # The stage the JSON and the accelerate config ask for. The engine runs it wherever it
    # shards something; a lone fp32 process runs stage 0 instead (see resolve).
    zero_stage: int = 2

    def identity(self) -> dict[str, Any]:
        """The values a checkpoint depends on, wherever they came from (JSON, accelerate config, flags)."""
        optimizer = self.config.get("optimizer", {}).get("params", {})
        scheduler = self.config.get("scheduler", {}).get("params", {})
        return {
            # As asked, so that a checkpoint resumes on another process count.
            "zero_stage": self.zero_stage,
            "train_micro_batch_size_per_gpu": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "train_batch_size": self.total_batch_size,
            # As resolved: the same flags over another JSON train otherwise.
            "lr": optimizer.get("lr"),
            "weight_decay": optimizer.get("weight_decay"),
            "warmup_num_steps": scheduler.get("warmup_num_steps"),
        }


@dataclass(frozen=True)
class DsJson:
    """The DeepSpeed JSON a run starts from, and who named it (None: the project's default)."""

    config: dict[str, Any]
    path: str
    chosen_by: str | None = None

    @property
    def label(self) -> str:
        return f"{self.path} ({self.chosen_by or 'the default --ds_config'})"


def find_ds_config(path: str, flag: str = "--ds_config") -> Path:
    """The JSON at `path`, looked up from the working directory, then from the repository."""
    candidates = [Path(path)] if Path(path).is_absolute() else [Path(path), REPO_ROOT / path]
    for candidate in candidates:
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
    """--ds_config, else the accelerate config's deepspeed_config_file, else the project's default.

    Both named and different is a conflict: neither is obviously the one the user meant.
    """
    named = launch.ds_config_file
    if (
        flag is not None
        and named is not None
        and find_ds_config(flag).resolve() != find_ds_config(named.value, named.origin).resolve()
    ):
        raise UserError(
            f"two DeepSpeed JSONs: {flag} (--ds_config) and {named.value} ({named.origin}); drop --ds_config to "
            f"use the accelerate config's, or launch with `accelerate launch --deepspeed_config_file {flag} ...`"
        )
    if flag is not None:
        return DsJson(load_ds_config(flag), flag, "--ds_config")
    if named is not None:
        return DsJson(load_ds_config(named.value, named.origin), named.value, named.origin)
    return DsJson(load_ds_config(DEFAULT_DS_CONFIG), DEFAULT_DS_CONFIG)


def resolve(
    train: TrainConfig,
    raw: dict[str, Any] | DsJson,
    world_size: int,
    cuda: bool,
    launch: LaunchRequest | None = None,
) -> ResolvedDeepSpeed:
    """Fill in batch sizes, accumulation, precision, the launcher's values and CLI overrides."""
    source = raw if isinstance(raw, DsJson) else DsJson(raw, DEFAULT_DS_CONFIG)
    launch = launch or LaunchRequest()
    config = copy.deepcopy(source.config)
    changes: list[str] = []
    conflicts: list[str] = []
    # Where the user named the JSON, a launcher value that contradicts it is a conflict;
    # the project's default JSON gives way.
    strict = source.chosen_by is not None

    def put(section: dict[str, Any], key: str, value: Any, where: str, why: str, default: bool = False) -> None:
        old = section.get(key, "unset")
        # "auto" filled with the trainer's own default is what "auto" asks for (Accelerate's
        # convention: the script owns the value), not a change; the header prints the values.
        if old != value and not (default and old == "auto"):
            changes.append(f"{where}: {old} (ds_config) -> {value} ({why})")
        section[key] = value

    micro, total, accumulation, why_micro, why_accumulation = _batch_sizes(
        train, config, world_size, launch.accumulation, source, conflicts
    )
    default_micro = launch.accumulation is None and not is_set(train, "per_device_train_batch_size")
    put(config, "train_micro_batch_size_per_gpu", micro, "train_micro_batch_size_per_gpu", why_micro, default_micro)
    default_total = not is_set(train, "total_batch_size")
    put(config, "train_batch_size", total, "train_batch_size", "--total_batch_size", default_total)
    put(config, "gradient_accumulation_steps", accumulation, "gradient_accumulation_steps", why_accumulation)

    optimizer = config.get("optimizer", {}).get("params")
    scheduler = config.get("scheduler", {}).get("params")
    # A typed flag replaces the JSON's value; the default fills a value the JSON leaves "auto".
    for flag, name, section, key in (
        ("learning_rate", "optimizer", optimizer, "lr"),
        ("weight_decay", "optimizer", optimizer, "weight_decay"),
        ("num_warmup_steps", "scheduler", scheduler, "warmup_num_steps"),
    ):
        chosen = is_set(train, flag)
        if section is None:
            if chosen:
                raise UserError(f'--{flag} needs an "{name}" section in --ds_config')
        elif chosen or section.get(key) == "auto":
            why = f"--{flag}" if chosen else "default"
            put(section, key, getattr(train, flag), f"{name}.params.{key}", why, default=not chosen)
    if (
        scheduler is not None
        and "warmup_max_lr" in scheduler
        and (is_set(train, "learning_rate") or scheduler["warmup_max_lr"] == "auto")
    ):
        # WarmupLR climbs to the optimizer's rate, whichever source set it.
        peak = optimizer["lr"] if optimizer is not None and "lr" in optimizer else train.learning_rate
        why = "--learning_rate" if is_set(train, "learning_rate") else "the optimizer's lr"
        put(scheduler, "warmup_max_lr", peak, "scheduler.params.warmup_max_lr", why, not is_set(train, "learning_rate"))

    for requested in launch.values:
        current = get_dotted(config, requested.key)
        if current is ABSENT and _same(requested.value, requested.absent_means):
            continue  # the launcher asks for what DeepSpeed does anyway
        if current is ABSENT or current == "auto" or not strict or _same(current, requested.value):
            section, key = _node(config, requested.key)
            put(section, key, requested.value, requested.key, requested.origin)
        else:
            conflicts.append(
                f"{requested.key} is {requested.value!r} from {requested.origin} but {current!r} in {source.label}"
            )

    precision, why_precision = _resolve_precision(
        train.mixed_precision, config, cuda, launch.mixed_precision, source, conflicts
    )
    overridden = launch.mixed_precision
    if train.mixed_precision != "auto" and overridden is not None and overridden.value != precision:
        changes.append(f"mixed precision: {overridden.value} ({overridden.origin}) -> {precision} (--mixed_precision)")
    if conflicts:
        raise UserError(
            "the accelerate config and the DeepSpeed JSON disagree: "
            + "; ".join(conflicts)
            + f". Make them agree: to keep the JSON's, drop the value from {launch.where} or from the launch "
            'flags; to take the accelerate config\'s, set it to "auto" in the JSON'
        )
    for name in ("fp16", "bf16"):
        section = config.setdefault(name, {})
        put(section, "enabled", precision == name, f"{name}.enabled", why_precision)

    if (
        not cuda
        and optimizer is not None
        and config["optimizer"].get("type", "").lower() in ("adam", "adamw")
        and "torch_adam" not in optimizer
    ):
        # DeepSpeed's FusedAdam (or, with offload, its CPUAdam) would JIT-compile a C++ kernel
        # first (minutes on 2 cores); torch's own AdamW does the same update ("Adam" means
        # decoupled weight decay in DeepSpeed) at no cost. "torch_adam": false in the JSON opts out.
        put(optimizer, "torch_adam", True, "optimizer.params.torch_adam", "no CUDA")
    zero = config["zero_optimization"]
    asked_stage = int(zero.get("stage", 0))
    if world_size == 1 and asked_stage in (1, 2) and precision == "no" and not _offloaded(zero):
        # ZeRO-1/2 cut optimizer state and gradients across processes. Alone there is nothing
        # to cut, and stage 2 still reduces the gradients after every micro batch: 15-20% of
        # a CPU epoch of the default model (bench/). Stage 0 makes the same fp32 update with
        # the same optimizer; checkpoints carry the whole state, so runs on more processes,
        # which use the stage asked for, resume from them (reshard.py). Mixed precision keeps
        # ZeRO: DeepSpeed's stage-0 fp16/bf16 optimizers are other code paths.
        put(zero, "stage", 0, "zero_optimization.stage", "one process: nothing to shard")
    if not cuda and zero.get("stage") == 2 and zero.get("contiguous_gradients") is True:
        # Copying each gradient into a contiguous bucket as it is produced keeps GPU memory
        # unfragmented; a CPU has no such problem, and the copy cost ~5% of a CPU ZeRO-2
        # step of the default model (bench/). The update is the same either way. (ZeRO-3 was
        # not measured, and CPU offload turns the copy back on itself.)
        put(zero, "contiguous_gradients", False, "zero_optimization.contiguous_gradients", "no CUDA")
    # DeepSpeed's own step printing duplicates ours; Accelerate silences it the same way.
    config["steps_per_print"] = 10**9
    return ResolvedDeepSpeed(
        config,
        micro,
        total,
        accumulation,
        precision,
        changes,
        source.label,
        accumulation_from_launcher=launch.accumulation is not None,
        zero_stage=asked_stage,
    )


def _offloaded(zero: dict[str, Any]) -> bool:
    """Whether ZeRO moves optimizer state or parameters off the device (only ZeRO can)."""
    return any(
        isinstance(zero.get(name), dict) and str(zero[name].get("device", "none")).lower() not in ("none", "")
        for name in ("offload_optimizer", "offload_param")
    )


def check_with_deepspeed(resolved: ResolvedDeepSpeed) -> None:
    """Let DeepSpeed's own config class judge the result now: one line here, not a traceback in prepare().

    Before the process group exists DeepSpeed assumes one process, so the global batch (which
    counts every process and is checked above) is left for it to derive.
    """
    from deepspeed.runtime.config import DeepSpeedConfig

    config = _ReadKeys(copy.deepcopy(resolved.config))
    config.pop("train_batch_size", None)
    try:
        DeepSpeedConfig(config)
    except (ValueError, AssertionError, TypeError, KeyError) as err:
        detail = "; ".join(
            line.strip() for line in str(err).splitlines() if line.strip() and "errors.pydantic.dev" not in line
        )
        raise UserError(f"DeepSpeed rejects the config from {resolved.source}: {detail}; fix that file") from None
    # DeepSpeed validates the sections it reads and silently ignores a top-level key it never
    # asks for, so a typo there ("gradient_cliping") would train with the default.
    unknown = sorted(set(config) - config.read)
    if unknown:
        raise UserError(
            f"DeepSpeed does not use the top-level key(s) {', '.join(map(repr, unknown))} in {resolved.source}; "
            "fix their spelling or remove them"
        )


class _ReadKeys(dict[str, Any]):
    """A dict that records which of its keys were looked up: the keys DeepSpeed's config reads."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key: Any) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: Any, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):  # every key of a DeepSpeed config is
            self.read.add(key)
        return super().__contains__(key)

    def keys(self) -> Any:  # DeepSpeed also asks `KEY in config.keys()`
        return _RecordingKeys(self)


class _RecordingKeys:
    def __init__(self, owner: _ReadKeys) -> None:
        self.owner = owner

    def __contains__(self, key: object) -> bool:
        return key in self.owner

    def __iter__(self) -> Any:
        self.owner.read.update(dict.keys(self.owner))  # whoever walks every key reads them all
        return iter(dict.keys(self.owner))

    def __len__(self) -> int:
        return len(self.owner)


def _batch_sizes(
    train: TrainConfig,
    config: dict[str, Any],
    world_size: int,
    requested: Requested | None,
    source: DsJson,
    conflicts: list[str],
) -> tuple[int, int, int, str, str]:
    """Micro batch, global batch, accumulation, and why the micro batch and accumulation are what they are.

    The global batch is fixed (flag, JSON, or 128). Accumulation is derived from it unless
    the launcher asks for a count; then the micro batch is derived instead.
    """
    micro_in_json = _int_or(config.get("train_micro_batch_size_per_gpu"), None)
    micro = micro_in_json or train.per_device_train_batch_size
    total = _int_or(config.get("train_batch_size"), None) or train.total_batch_size
    if is_set(train, "total_batch_size"):
        total = train.total_batch_size
    if is_set(train, "per_device_train_batch_size"):
        micro = train.per_device_train_batch_size
    if requested is None:
        accumulation = gradient_accumulation_steps(total, micro, world_size)
        return (
            micro,
            total,
            accumulation,
            "--per_device_train_batch_size",
            f"derived: {total} / ({micro} x {world_size} processes)",
        )

    accumulation = requested.value
    in_json = config.get("gradient_accumulation_steps")
    if source.chosen_by is not None and isinstance(in_json, int) and in_json != accumulation:
        conflicts.append(
            f"gradient_accumulation_steps is {accumulation} from {requested.origin} but {in_json} in {source.label}"
        )
    per_step = accumulation * world_size
    if total % per_step != 0:
        raise UserError(
            f"global batch {total} is not gradient_accumulation_steps {accumulation} ({requested.origin}) x "
            f"processes {world_size} x a whole micro batch; change gradient_accumulation_steps there, "
            f"--total_batch_size or --num_processes"
        )
    needed = total // per_step
    why_micro = f"global batch {total} / (accumulation {accumulation} from {requested.origin} x {world_size} processes)"
    if needed != micro:
        if is_set(train, "per_device_train_batch_size"):
            raise UserError(
                f"--per_device_train_batch_size {micro} x gradient_accumulation_steps {accumulation} ({requested.origin}) x "
                f"processes {world_size} is {micro * per_step}, not the global batch {total}; drop one of the two "
                f"or pass --total_batch_size {micro * per_step}"
            )
        if source.chosen_by is not None and micro_in_json is not None:
            conflicts.append(
                f"gradient_accumulation_steps is {accumulation} from {requested.origin} but {source.label} sets micro "
                f"batch {micro} and global batch {total}, which take {total / (micro * world_size):g} on "
                f'{world_size} processes ("auto" as its train_micro_batch_size_per_gpu lets the micro batch follow)'
            )
    return needed, total, accumulation, why_micro, requested.origin


def _resolve_precision(
    flag: str, config: dict[str, Any], cuda: bool, requested: Requested | None, source: DsJson, conflicts: list[str]
) -> tuple[str, str]:
    """The precision and where it came from: flag, accelerate config, JSON, then fp16 on CUDA."""
    in_json = _json_precision(config)
    if flag != "auto":
        precision, why = flag, f"--mixed_precision {flag}"
    elif requested is not None:
        precision, why = requested.value, requested.origin
        if source.chosen_by is not None and in_json is not None and in_json != precision:
            conflicts.append(f"mixed precision is {precision} from {requested.origin} but {in_json} in {source.label}")
    elif in_json is not None:
        precision, why = in_json, "ds_config"
    else:
        precision, why = ("fp16" if cuda else "no"), "--mixed_precision auto"
    if precision == "fp16" and not cuda:
        raise UserError(
            f"fp16 needs a CUDA GPU and none is visible (DeepSpeed has no fp16 on CPU); fp16 came from {why}; "
            "use --mixed_precision no (or bf16) on this machine"
        )
    return precision, why


def _json_precision(config: dict[str, Any]) -> str | None:
    """What the JSON's fp16/bf16 sections ask for; None where they leave it open ("auto" or absent)."""
    enabled = {name: config.get(name, {}).get("enabled", ABSENT) for name in ("fp16", "bf16")}
    for name, value in enabled.items():
        if value is True:
            return name
    if "auto" in enabled.values() or all(value is ABSENT for value in enabled.values()):
        return None
    return "no"


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
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    return node, key


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)


def _int_or(value: Any, default: int | None) -> int | None:
    if value is None or value == "auto":
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f'--ds_config: batch sizes must be positive integers or "auto", got {value!r}')
    return value
