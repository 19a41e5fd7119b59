"""The trained model as files that need nothing but torch and safetensors to use."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator

from lstm_trainer.files import replace_dir
from lstm_trainer.model import LSTMForecaster


def fp32_state_dict(accelerator: Accelerator, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full fp32 weights, gathered from wherever DeepSpeed keeps them; a collective call.

    Under fp16/bf16 the module holds low-precision copies and the fp32 masters live in
    the optimizer's partitions (split across processes under ZeRO-2, and the weights too
    under ZeRO-3); DeepSpeed's `safe_get_full_fp32_param` assembles each one.
    """
    from deepspeed.utils import safe_get_full_fp32_param

    unwrapped = accelerator.unwrap_model(model)
    state: dict[str, torch.Tensor] = {}
    for name, param in unwrapped.named_parameters():
        full = safe_get_full_fp32_param(param)
        state[name] = (param.data if full is None else full).detach().to("cpu", torch.float32).clone()
    for name, buffer in unwrapped.named_buffers():
        state[name] = buffer.detach().to("cpu", torch.float32).clone()
    return state


def save_model(accelerator: Accelerator, model: torch.nn.Module, path: Path) -> None:
    """Write fp32 safetensors and config.json to `path`, replacing it whole.

    Every process takes part in gathering the weights; the main one writes.
    """
    state = fp32_state_dict(accelerator, model)
    if accelerator.is_main_process:
        export = LSTMForecaster(accelerator.unwrap_model(model).config)
        export.load_state_dict(state)
        with replace_dir(path) as tmp:
            export.save_pretrained(tmp)
    accelerator.wait_for_everyone()
