"""The trained model as files that need nothing but torch and safetensors to use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from lstm_trainer.config import is_hub_id
from lstm_trainer.data.normalization import Normalization
from lstm_trainer.files import replace_dir
from lstm_trainer.model.forecaster import LSTMForecaster
from lstm_trainer.outputs.hub import LOCAL_MODEL
from lstm_trainer.outputs.render import baseline_rows, distribution_rows, number, step_rows
from lstm_trainer.outputs.results import Results


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


def save_model(accelerator: Accelerator, model: torch.nn.Module, path: Path, normalization: Normalization) -> None:
    """Write fp32 safetensors, config.json and normalization.json to `path`, replacing it whole.

    Every process takes part in gathering the weights; the main one writes.
    """
    state = fp32_state_dict(accelerator, model)
    if accelerator.is_main_process:
        # Building a model draws its initial weights from the global RNG, which also drives
        # dropout: without the fork, each save would shift the rest of the run's dropout masks.
        with torch.random.fork_rng(devices=[]):
            export = LSTMForecaster(accelerator.unwrap_model(model).config)
        export.load_state_dict(state)
        with replace_dir(path, "model") as tmp:
            export.save_pretrained(tmp)
            normalization.save(tmp)  # the model predicts normalised values: useless without it
    accelerator.wait_for_everyone()


def describe_output(model: dict[str, Any], horizon: int) -> str:
    """What the model forecasts, in words, from its config.json."""
    steps = "the next value" if horizon == 1 else f"the next {horizon} values at once (a direct multi-step head)"
    if model.get("quantiles"):
        return f"{steps}, as the quantiles {', '.join(f'{q:g}' for q in model['quantiles'])} (pinball loss)"
    distribution = model.get("distribution", "none")
    if distribution != "none":
        point = "mean" if distribution == "normal" else "median"
        return f"{steps}, as a {distribution} distribution (trained on its negative log-likelihood; point forecast: its {point})"
    return steps


def model_card(config: dict[str, Any], results: Results, zero_stage: int) -> str:
    """README.md for the model folder: Hub metadata, what it is, how well it does, how to load it.

    The commands name the model `LOCAL_MODEL`; a push replaces it with the repo id.
    """
    model, data = config["model"], config["data"]
    horizon = data.get("horizon", 1)
    revision = config["train"].get("hub_revision")
    revision_flag = f" --model_revision {revision}" if revision else ""
    revision_arg = f", revision={revision!r}" if revision else ""
    dataset = data["dataset"]
    synthetic = dataset == "synthetic"
    # A Hub dataset is linked from the model page; a local file or folder is nobody else's to see.
    on_hub = not synthetic and is_hub_id(dataset) and not Path(dataset).exists()
    datasets = f"datasets:\n- {dataset}\n" if on_hub else ""
    # The generated sine is public domain; for your own data only you know: edit it before sharing.
    license = "cc0-1.0" if synthetic else "unknown"
    # Only a local file's name: its full path says things about this machine that a public card should not.
    source = "the synthetic sine wave" if synthetic else f"`{dataset if on_hub else Path(dataset).name}`"

    validation, test = results.scores.validation, results.scores.test

    return f"""---
library_name: lstm-trainer
license: {license}
pipeline_tag: time-series-forecasting
{datasets}tags:
- time-series-forecasting
- {model["cell"]}
- deepspeed
- accelerate
---

# {model["cell"].upper()} {"next-step" if horizon == 1 else f"{horizon}-step"} forecaster

A {model["num_layers"]}-layer {model["cell"].upper()} (hidden size {model["hidden_size"]}, dropout {model["dropout"]})
with a linear head on the last step (window scaling `{model.get("window_norm")}`, head `{model.get("head")}`,
linear skip over {model.get("linear_skip") if model.get("linear_skip") is not None else "all"} input steps), trained with
lstm-trainer on Accelerate + DeepSpeed ZeRO-{zero_stage} on {source}. Input: the last {data["seq_length"]} values;
output: {describe_output(model, horizon)}.

| metric | value |
|---|---|
| best validation MSE | {number(results.best_val_mse)} |
| persistence forecast (next = last value) | {number(validation.persistence.overall.mse if validation else None)} |
| noise floor | {number(results.noise_floor)} |
| test MSE (held out, scored once) | {number(test.model.overall.mse if test is not None and test.model is not None else None)} |
| persistence on the test split | {number(test.persistence.overall.mse if test is not None else None)} |
| quality | {results.quality} |
| epochs | {results.epochs_completed} |
{baseline_rows(results.scores)}{distribution_rows(results.scores)}{step_rows(validation)}

## How to load and predict

With lstm-trainer installed, forecast the 24 values that follow the series in a CSV
(at least {data["seq_length"]} rows; `y` is the column holding it):

```bash
python -m lstm_trainer.cli.predict --model {LOCAL_MODEL}{revision_flag} --input series.csv --data_column y --horizon 24 --output forecast.csv
```

In Python (a Hub id is downloaded once with `snapshot_download`; `HF_HUB_OFFLINE=1` uses the cache):

```python
from lstm_trainer.outputs.hub import resolve_model
from lstm_trainer.model.inference import Predictor

folder = resolve_model("{LOCAL_MODEL}"{revision_arg})  # a local folder is used as it is
predictor = Predictor.load(folder)  # safetensors and normalization.json, no DeepSpeed needed
forecast = predictor.forecast(windows, steps=24)  # windows: NumPy [batch, {data["seq_length"]}], data units
forecast.point  # [batch, 24]: direct up to the model's horizon ({horizon}), recursive beyond
{"forecast.quantiles((0.1, 0.5, 0.9))  # [batch, 24, 3]" if model.get("distribution", "none") != "none" or model.get("quantiles") else "# a point forecaster: no quantiles (train with --distribution or --quantiles)"}
```

`LSTMForecaster.from_pretrained(folder)` gives the bare network: it works on values
z-scored with `normalization.json` and returns what `lstm_trainer/model/heads.py` describes.

MSEs above are in the data's own units. `normalization.json` holds the z-score fitted on the
training split (mean 0, std 1 where the data was not normalised).

The weights are plain fp32 safetensors (`model.safetensors`) and `config.json` holds the shape,
so any PyTorch code can rebuild the network.
"""
