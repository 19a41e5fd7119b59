"""The benchmark's yardstick: a bare PyTorch loop over in-memory tensors.

    python bench/bare_loop.py --results out.json [--device cpu|cuda] [train.py flags...]

It trains what `train.py` trains with the same flags, read the same way: the data
(`prepare_data`: any --dataset, normalised as the trainer does), the model (`LSTMForecaster`),
and the DeepSpeed JSON resolved for one process, so the learning rate, weight decay, warmup, clipping, micro batch, accumulation
and precision are the trainer's. What it leaves out is what the benchmark prices: no
Accelerate, no DeepSpeed engine, no DataLoader, no logging. One optimizer step is, with the
reference's 4 micro batches of 32 on one process,

    4 x (forward, MSE / 4, backward) -> clip the global norm to 1.0 -> AdamW -> warmup lr

on the same shuffled micro batches (`GlobalBatchSampler`) as the trainer's. It writes the
same timing keys the trainer writes to all_results.json (see lstm_trainer/train/perf.py).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lstm_trainer.cli.train import parse_config  # noqa: E402
from lstm_trainer.config import (  # noqa: E402
    ForecasterConfig,
    Plan,
    RunConfig,
)
from lstm_trainer.data import INPUTS, TARGET, prepare_data  # noqa: E402
from lstm_trainer.data.loaders import GlobalBatchSampler  # noqa: E402
from lstm_trainer.errors import UserError  # noqa: E402
from lstm_trainer.model.forecaster import LSTMForecaster  # noqa: E402
from lstm_trainer.train.perf import peak_rss_mib  # noqa: E402
from lstm_trainer.train.plan import DEFAULT_DS_CONFIG, load_ds_config, make_plan  # noqa: E402


def warmup_factor(scheduler: dict[str, Any]) -> Any:
    """DeepSpeed's WarmupLR as a LambdaLR factor of the peak rate, step for step.

    WarmupLR starts at the minimum and, after its i-th step() call (i = 0, 1, ...), sets
    min + (max - min) * gamma(i), with gamma(i) = log(i + 1) / log(warmup) ("log", its
    default) or i / warmup ("linear") while i < warmup, then 1; so optimizer step k runs at
    the minimum for k = 0 and at gamma(k - 1) after. LambdaLR's base lr here is the maximum.
    """
    if scheduler.get("type") != "WarmupLR":
        raise UserError(f"the bare loop knows the WarmupLR scheduler only, not {scheduler.get('type')!r}")
    params = scheduler["params"]
    warmup = max(2, int(params.get("warmup_num_steps", 1000)))  # WarmupLR's own floor
    low = float(params.get("warmup_min_lr", 0.0)) / float(params["warmup_max_lr"])
    linear = params.get("warmup_type", "log") == "linear"

    def factor(step: int) -> float:
        i = step - 1
        if i < 0:
            return low
        if i >= warmup:
            return 1.0
        gamma = i / warmup if linear else math.log(i + 1) / math.log(warmup)
        return low + (1.0 - low) * gamma

    return factor


def make_optimizer(model: torch.nn.Module, ds: Plan) -> torch.optim.Optimizer:
    """What DeepSpeed builds for "Adam" with torch_adam: torch's AdamW (decoupled decay)."""
    spec = ds.config["optimizer"]
    if spec.get("type", "").lower() not in ("adam", "adamw"):
        raise UserError(f"the bare loop knows Adam/AdamW only, not {spec.get('type')!r}")
    params = {k: v for k, v in spec["params"].items() if k in ("lr", "betas", "eps", "weight_decay")}
    return torch.optim.AdamW(model.parameters(), **params)


@dataclass
class BareLoop:
    """The model and its update, built from the trainer's flags and resolved DeepSpeed JSON."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    half: torch.dtype | None  # autocast dtype, None for fp32
    accumulation: int
    clip: float
    steps: int = 0
    first_step_time: float | None = None  # Unix time

    @classmethod
    def build(cls, config: RunConfig, ds: Plan, device: torch.device, train: dict[str, torch.Tensor]) -> BareLoop:
        model = LSTMForecaster(ForecasterConfig.of(config))
        model.fit_linear_skip(train[INPUTS], train[TARGET])  # as the trainer does, before any device move
        model = model.to(device)
        optimizer = make_optimizer(model, ds)
        fp16 = ds.config.get("fp16", {})
        # DeepSpeed's dynamic loss scale: start at 2^initial_scale_power, grow after a window.
        scaler = torch.amp.GradScaler(
            device.type,
            init_scale=2.0 ** fp16.get("initial_scale_power", 16),
            growth_interval=fp16.get("loss_scale_window", 1000),
            enabled=ds.mixed_precision == "fp16",
        )
        return cls(
            model=model,
            optimizer=optimizer,
            scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_factor(ds.config["scheduler"])),
            scaler=scaler,
            half={"fp16": torch.float16, "bf16": torch.bfloat16}.get(ds.mixed_precision),
            accumulation=ds.gradient_accumulation_steps,
            clip=float(ds.config.get("gradient_clipping", 0.0)),
        )

    def autocast(self, device: torch.device) -> torch.autocast:
        return torch.autocast(device.type, dtype=self.half, enabled=self.half is not None)

    def optimizer_step(self) -> None:
        self.scaler.unscale_(self.optimizer)
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        # Like DeepSpeed, a step skipped for an fp16 overflow does not advance the warmup.
        if not self.scaler.is_enabled() or self.scaler.get_scale() >= scale:
            self.scheduler.step()
            self.steps += 1
        self.optimizer.zero_grad(set_to_none=True)


def train_epoch(loop: BareLoop, inputs: torch.Tensor, targets: torch.Tensor, sampler: GlobalBatchSampler) -> float:
    """One epoch over the sampler's micro batches; returns the mean training loss."""
    loop.model.train()
    device = inputs.device
    loss_sum = torch.zeros((), device=device)
    batches = 0
    order = torch.tensor(list(sampler), device=device)  # [micro batches, B]: one copy an epoch
    for batches, index in enumerate(order, start=1):
        with loop.autocast(device):
            prediction = loop.model(inputs[index])  # [B]
        loss = F.mse_loss(prediction.float(), targets[index])
        loop.scaler.scale(loss / loop.accumulation).backward()
        loss_sum += loss.detach()
        if batches % loop.accumulation == 0:
            loop.optimizer_step()
            if loop.first_step_time is None:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                loop.first_step_time = time.time()
    return (loss_sum / max(batches, 1)).item()  # the one host sync of the epoch


@torch.no_grad()
def evaluate(loop: BareLoop, inputs: torch.Tensor, targets: torch.Tensor, batch: int) -> float:
    """MSE over every validation window, in the trainer's evaluation batches."""
    loop.model.eval()
    squared_error = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for start in range(0, len(inputs), batch):
        with loop.autocast(inputs.device):
            prediction = loop.model(inputs[start : start + batch]).float()  # [B]
        squared_error += ((prediction - targets[start : start + batch]).double() ** 2).sum()
    return (squared_error / len(inputs)).item()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="JSON file to write")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args, train_argv = parser.parse_known_args(argv)
    config = parse_config(train_argv)
    device = torch.device(args.device)
    # The JSON the trainer would use when no accelerate config names one.
    raw = load_ds_config(config.train.ds_config or DEFAULT_DS_CONFIG)
    seed = config.train.seed
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the global RNG, as set_seed seeds it: the trainer's state, copied
    torch.manual_seed(seed)  # as accelerate.utils.set_seed does in the trainer

    built = time.perf_counter()
    data = prepare_data(config.data, seed)  # what the trainer reads: any --dataset, normalised as it is
    dataset_seconds = time.perf_counter() - built
    # As the trainer plans it: the flags over the JSON, fitted to the training windows.
    ds = make_plan(config.train, raw, world_size=1, cuda=device.type == "cuda", windows=len(data.windows["train"]))
    units = (lambda mse: mse) if data.per_series else data.normalization.mse_in_data_units  # as the trainer does
    # The bare loop materialises every window as tensors: the fastest a batch can be read.
    train = dict(
        zip(
            (INPUTS, TARGET),
            map(torch.from_numpy, data.windows["train"].gather(np.arange(len(data.windows["train"])))),
            strict=True,
        )
    )
    val = dict(
        zip(
            (INPUTS, TARGET),
            map(torch.from_numpy, data.windows["validation"].gather(np.arange(len(data.windows["validation"])))),
            strict=True,
        )
    )
    x_train, y_train = train[INPUTS].to(device), train[TARGET].to(device)  # [N, T], [N]
    x_val, y_val = val[INPUTS].to(device), val[TARGET].to(device)

    loop = BareLoop.build(config, ds, device, train)
    sampler = GlobalBatchSampler(len(x_train), ds.micro_batch_size, ds.total_batch_size, seed)
    epoch_seconds: list[float] = []
    epoch_cpu_seconds: list[float] = []
    elapsed: list[float] = []
    val_mses: list[float] = []
    train_losses: list[float] = []
    started = time.perf_counter()
    for epoch in range(config.train.num_train_epochs):
        sampler.set_epoch(epoch)
        epoch_started, cpu_started = time.perf_counter(), time.process_time()
        train_losses.append(units(train_epoch(loop, x_train, y_train, sampler)))
        epoch_seconds.append(time.perf_counter() - epoch_started)
        epoch_cpu_seconds.append(time.process_time() - cpu_started)
        val_mses.append(units(evaluate(loop, x_val, y_val, config.train.eval_batch_size)))
        elapsed.append(time.perf_counter() - started)

    memory = {"peak_rss_mib_per_process": [peak_rss_mib()]}
    if device.type == "cuda":
        memory["peak_cuda_mib_per_process"] = [torch.cuda.max_memory_allocated(device) / 2**20]
    results = {
        "world_size": 1,
        "global_batch_size": ds.total_batch_size,
        "per_device_train_batch_size": ds.micro_batch_size,
        "gradient_accumulation_steps": ds.gradient_accumulation_steps,
        "mixed_precision": ds.mixed_precision,
        "optimizer_steps": loop.steps,
        "train_loss_history": train_losses,
        "val_mse_history": val_mses,
        "dataset_seconds": dataset_seconds,
        "epoch_train_seconds": epoch_seconds,
        "epoch_cpu_seconds": epoch_cpu_seconds,
        "elapsed_seconds_history": elapsed,
        "first_optimizer_step_unix_time": loop.first_step_time,
        "cpu_threads_per_process": torch.get_num_threads(),
        **memory,
    }
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
