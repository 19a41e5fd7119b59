"""Resume a checkpoint on another number of processes.

ZeRO keeps each process's slice of the fp32 master weights and of the optimizer moments in
that process's own file, cut for the process count that wrote it; DeepSpeed refuses to load
them with another count. So every checkpoint also holds the whole state, gathered through
DeepSpeed's own accessors (`safe_get_full_fp32_param`, `safe_get_full_optimizer_state`):
`portable.safetensors`, a few hundred KB for this model. A run with another process count
builds its engine as usual, then writes each full tensor back into its own slices with
`safe_set_full_*`, which cut it for the new count.

A lone fp32 process runs ZeRO stage 0 (plan.make_plan), where each parameter is its own
fp32 master and the torch optimizer keys its moments by parameter: the same whole state,
read and written directly, so checkpoints move between stage 0 on one process and the
asked-for stage on several.

What carries over exactly: fp32 master weights, every optimizer moment and the step count,
the learning-rate schedule, the global batch and the position in the data. What cannot:
the random state of processes that did not exist before (dropout masks), and the order
in which gradients are summed, so losses agree closely, not bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PORTABLE = "portable.safetensors"
_MASTER = "master"


def gather_full_state(engine: Any) -> dict[str, torch.Tensor]:
    """Every parameter's fp32 master and optimizer moments, whole; a collective: call on every process."""
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    state: dict[str, torch.Tensor] = {}
    keys = _moment_keys(engine)
    if _unsharded(engine):
        optimizer = _torch_optimizer(engine)
        for name, param in engine.module.named_parameters():
            state[f"{_MASTER}/{name}"] = param.detach().cpu().float().contiguous()
            for key in keys:
                if key in optimizer.state.get(param, {}):
                    state[f"{key}/{name}"] = optimizer.state[param][key].detach().cpu().float().contiguous()
        return state
    for name, param in engine.module.named_parameters():
        master = safe_get_full_fp32_param(param)
        assert master is not None, f"{name} is not managed by a ZeRO optimizer"
        state[f"{_MASTER}/{name}"] = master.detach().cpu().float().contiguous()
        for key in keys:
            moment = safe_get_full_optimizer_state(param, key)
            if moment is not None:
                state[f"{key}/{name}"] = moment.detach().cpu().float().contiguous()
    return state


def optimizer_steps_taken(engine: Any) -> int:
    """The optimizer's own step count (Adam's bias correction depends on it)."""
    for value in _torch_optimizer(engine).state.values():
        if "step" in value:
            step = value["step"]
            return int(step.item() if torch.is_tensor(step) else step)
    return 0


def save_full_state(engine: Any, folder: Path, is_main: bool) -> None:
    from safetensors.torch import save_file

    state = gather_full_state(engine)
    if is_main:
        save_file(state, folder / PORTABLE, metadata={"optimizer_steps": str(optimizer_steps_taken(engine))})


def load_full_state(engine: Any, folder: Path) -> None:
    """Write a checkpoint's whole state into this engine's slices, whatever its process count."""
    from deepspeed.utils import safe_set_full_fp32_param, safe_set_full_optimizer_state
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = folder / PORTABLE
    state = load_file(path)
    with safe_open(str(path), framework="pt") as handle:
        steps = int(handle.metadata()["optimizer_steps"])
    keys = sorted({name.split("/", 1)[0] for name in state} - {_MASTER})
    if _unsharded(engine):
        optimizer = _torch_optimizer(engine)
        with torch.no_grad():
            for name, param in engine.module.named_parameters():
                param.copy_(state[f"{_MASTER}/{name}"].to(param.device))
                if keys:
                    moments = {key: state[f"{key}/{name}"].to(param.device) for key in keys}
                    optimizer.state[param] = {"step": torch.tensor(float(steps)), **moments}
        return
    _create_optimizer_state(engine, keys, steps)
    with torch.no_grad():
        for name, param in engine.module.named_parameters():
            master = state[f"{_MASTER}/{name}"].to(param.device)
            safe_set_full_fp32_param(param, master)
            param.copy_(master.to(param.dtype))  # the working copy every process holds under ZeRO-1/2
            for key in keys:
                safe_set_full_optimizer_state(param, state[f"{key}/{name}"].to(param.device), key)


def supported(engine: Any) -> bool:
    """Whether this engine's state can be gathered whole: ZeRO-1/2, or stage 0 in fp32 (ZeRO-3 cannot)."""
    stage = engine.zero_optimization_stage()
    return stage in (1, 2) or (stage == 0 and not engine.fp16_enabled() and not engine.bfloat16_enabled())


def _unsharded(engine: Any) -> bool:
    return engine.zero_optimization_stage() == 0


def _torch_optimizer(engine: Any) -> torch.optim.Optimizer:
    """The optimizer that holds the moments: under ZeRO's wrapper, or DeepSpeed's optimizer itself at stage 0."""
    return engine.optimizer if _unsharded(engine) else engine.optimizer.optimizer


def _moment_keys(engine: Any) -> list[str]:
    """The optimizer's per-parameter tensors (Adam: exp_avg, exp_avg_sq), as its state names them."""
    for value in _torch_optimizer(engine).state.values():
        return sorted(key for key, tensor in value.items() if torch.is_tensor(tensor) and tensor.dim() > 0)
    return []  # no step taken yet: the moments do not exist


def _create_optimizer_state(engine: Any, keys: list[str], steps: int) -> None:
    """Create the moments a torch optimizer makes lazily at its first step, so they can be filled.

    DeepSpeed links each parameter's slice to the optimizer state only once it exists.
    """
    zero = engine.optimizer
    if not keys:
        return
    for group in zero.optimizer.param_groups:
        for flat in group["params"]:
            record = zero.optimizer.state[flat]
            record["step"] = torch.tensor(float(steps))
            for key in keys:
                record[key] = torch.zeros_like(flat)
    zero._hp_optimizer_states_linked = False
    zero._lazy_init_hp_params_optimizer_state()
