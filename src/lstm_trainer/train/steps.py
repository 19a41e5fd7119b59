"""Global batch and warmup fitted to the number of training windows.

The reference's values (global batch 128, warmup 100 steps) assume its 8,000 windows: 62
optimizer steps an epoch. A real series of a few hundred points gives a few hundred windows:
one step an epoch, and an epoch limit reached before warmup ends. Where the user did not set
them, the global batch shrinks to leave at least MIN_STEPS_PER_EPOCH steps an epoch and the
warmup to at most WARMUP_SHARE of the planned steps; each change is a `changed:` line.

The windows are known only once the data is prepared, after the Accelerator exists, so the
resolved config is fitted then and written into the Accelerator's DeepSpeed plugin, which
DeepSpeed reads only at `accelerator.prepare`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from accelerate import Accelerator

from lstm_trainer.config import TrainConfig, is_set
from lstm_trainer.train.ds_config import ResolvedDeepSpeed

# A global batch of at most windows / 10: ten optimizer steps an epoch, so early stopping's
# patience (counted in epochs) spans at least ten times its value in updates.
MIN_STEPS_PER_EPOCH = 10
# Warmup is a small share of training (the reference: 100 of ~3,100 steps, 3%); 10% caps it.
WARMUP_SHARE = 0.1
# Below this, a run rarely gets past warmup and the first fits; said in one line.
FEW_STEPS = 300


def planned_steps(windows: int, total_batch_size: int, train: TrainConfig) -> int:
    """Optimizer steps the run will take at most (the sampler drops a last partial global batch)."""
    steps = (windows // total_batch_size) * train.num_train_epochs
    return min(steps, train.max_train_steps) if train.max_train_steps is not None else steps


def fit_to_data(
    ds: ResolvedDeepSpeed, train: TrainConfig, windows: int, world_size: int, resumed: dict[str, Any] | None = None
) -> ResolvedDeepSpeed:
    """`ds` with the global batch and warmup fitted to `windows` training windows, where the user left them.

    `resumed`: the values the checkpoint being resumed trained with (its `identity()`). The
    warmup derived from the planned steps is taken from there, so a resume that changes
    --max_train_steps or --num_train_epochs (which the README allows) keeps its schedule.
    """
    config = copy.deepcopy(ds.config)
    changes, notes = list(ds.changes), list(ds.notes)
    micro, total = ds.micro_batch_size, ds.total_batch_size
    cap = max(1, windows // MIN_STEPS_PER_EPOCH)
    fixed_micro = is_set(train, "per_device_train_batch_size")
    if total > cap and not is_set(train, "total_batch_size") and not ds.accumulation_from_launcher:
        total, micro = _smaller_batch(total, micro, cap, world_size, fixed_micro)
        why = f"{windows} training windows: at least {MIN_STEPS_PER_EPOCH} optimizer steps an epoch"
        if micro != ds.micro_batch_size:
            changes.append(f"train_micro_batch_size_per_gpu: {ds.micro_batch_size} -> {micro} ({why})")
        changes.append(f"train_batch_size: {ds.total_batch_size} -> {total} ({why})")
    accumulation = total // (micro * world_size)
    if accumulation != ds.gradient_accumulation_steps:
        changes.append(
            f"gradient_accumulation_steps: {ds.gradient_accumulation_steps} -> {accumulation} "
            f"(derived: {total} / ({micro} x {world_size} processes))"
        )
    config.update(
        train_micro_batch_size_per_gpu=micro, train_batch_size=total, gradient_accumulation_steps=accumulation
    )

    planned = planned_steps(windows, total, train)
    scheduler = config.get("scheduler", {}).get("params", {})
    warmup = scheduler.get("warmup_num_steps")
    longest = max(1, int(planned * WARMUP_SHARE))
    kept = (resumed or {}).get("warmup_num_steps")
    if not is_set(train, "num_warmup_steps") and isinstance(warmup, int) and isinstance(kept, int):
        if kept != warmup:
            scheduler["warmup_num_steps"] = kept
            changes.append(
                f"scheduler.params.warmup_num_steps: {warmup} -> {kept} (the checkpoint's, fitted to "
                "the steps its run planned: a resume keeps its schedule)"
            )
    elif not is_set(train, "num_warmup_steps") and isinstance(warmup, int) and warmup > longest:
        scheduler["warmup_num_steps"] = longest
        changes.append(
            f"scheduler.params.warmup_num_steps: {warmup} -> {longest} "
            f"(at most {WARMUP_SHARE:.0%} of the {planned} planned optimizer steps)"
        )
    if planned < FEW_STEPS:
        notes.append(
            f"this run plans only {planned} optimizer steps ({windows} training windows / global batch {total} x "
            f"{train.num_train_epochs} epochs{', capped by --max_train_steps' if train.max_train_steps else ''}); "
            f"a few hundred are usually needed: raise --num_train_epochs or give more data"
        )
    return dataclasses.replace(
        ds,
        config=config,
        micro_batch_size=micro,
        total_batch_size=total,
        gradient_accumulation_steps=accumulation,
        changes=changes,
        notes=notes,
    )


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
        per_step = micro * world_size
        return per_step * max(1, total // per_step), micro
    micro = next(m for m in range(min(micro, total // world_size), 0, -1) if total % (m * world_size) == 0)
    return total, micro


def apply_to_accelerator(accelerator: Accelerator, ds: ResolvedDeepSpeed) -> None:
    """Hand the fitted values to the Accelerator before `prepare` builds DeepSpeed's engine from them."""
    plugin = accelerator.state.deepspeed_plugin
    keys = ("train_micro_batch_size_per_gpu", "train_batch_size", "gradient_accumulation_steps")
    plugin.deepspeed_config.update({key: ds.config[key] for key in keys})
    if "scheduler" in ds.config and "scheduler" in plugin.deepspeed_config:
        plugin.deepspeed_config["scheduler"]["params"].update(ds.config["scheduler"].get("params", {}))
    plugin.gradient_accumulation_steps = ds.gradient_accumulation_steps
    accelerator.gradient_accumulation_steps = ds.gradient_accumulation_steps
