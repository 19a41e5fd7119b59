"""Typed run configuration: one dataclass per concern, a help text on every field.

Defaults come from the reference tutorial (`shared/reference/basic-rnn-lstm.md`).
This module imports no heavy library, so `train.py --help` stays instant.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from lstm_trainer.errors import UserError

CELLS = ("lstm", "gru")
# What DeepSpeed trains in; --mixed_precision also takes "auto" (fp16 with CUDA, else fp32).
PRECISIONS = ("no", "fp16", "bf16")
MIXED_PRECISION_CHOICES = ("auto", *PRECISIONS)
REPORT_TO = ("none", "wandb", "tensorboard", "all")
SAMPLING = ("windows", "series")
SELECT_ON = ("mse", "smape", "mase")
FILL_POLICIES = ("ffill", "interpolate", "drop")
NORMALIZATIONS = ("auto", "zscore", "none")
# The Hub's repo id rule, namespace required: letters, digits, '-', '_', '.'; no '--' or '..';
# 96 characters at most. Checked here so a typo stops the run before it trains, not after.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WINDOW_NORMS = ("window", "none")
HEADS = ("delta", "level")
DISTRIBUTIONS = ("none", "normal", "studentt")
# --calendar_features: what each is, from the time of a step (pandas' names); data/covariates.py makes them.
CALENDAR_FEATURES = ("hour", "dayofweek", "day", "dayofyear", "weekofyear", "month", "quarter")
LOSSES = ("mse", "mae")
# Every flag with a fixed set of values, declared once: argparse's choices (cli/common.py), the check at
# construction (check_fields: flags and API alike) and the docs read this table.
CHOICES: dict[str, tuple[str, ...]] = {
    "fill_missing": FILL_POLICIES,
    "normalization": NORMALIZATIONS,
    "calendar_features": CALENDAR_FEATURES,
    "cell": CELLS,
    "window_norm": WINDOW_NORMS,
    "head": HEADS,
    "loss": LOSSES,
    "distribution": DISTRIBUTIONS,
    "mixed_precision": MIXED_PRECISION_CHOICES,
    "select_on": SELECT_ON,
    "sampling": SAMPLING,
    "report_to": REPORT_TO,
}


def _help(text: str, **kwargs: Any) -> Any:
    """A dataclass field whose docstring doubles as its `--help` line."""
    return field(metadata={"help": text}, **kwargs)


# The most steps one forecast runs to (predict --horizon, Forecaster.predict's h): recursive steps beyond the
# model's horizon cost a model call each, and ten thousand answer in seconds on a CPU.
MAX_FORECAST_STEPS = 10_000


@dataclass
class DataConfig:
    """The series to learn: the reference's synthetic sine wave, or your own (a file, a folder, the Hub)."""

    dataset: str = _help(
        "synthetic (the reference sine wave), a CSV / Parquet / JSON Lines file, a folder written by "
        "save_to_disk, or a Hub dataset id (user/name).",
        default="synthetic",
    )
    data_column: list[str] | None = _help(
        "Column(s) holding the series. A long table (--id_column): its value column. A wide table: one column "
        "per series (a b c); left out, every numeric column is a series. Series rows (a folder or Hub id in "
        "the Hub's time-series layout): the list column, target when left out.",
        default=None,
    )
    id_column: str | None = _help(
        "Column naming the series in a long table (one row per series and time step); without it a table "
        "holds one series per data column.",
        default=None,
    )
    time_column: str | None = _help(
        "Column to put the rows in time order by (numbers or ISO 8601 times); without it the row order is used.",
        default=None,
    )
    past_covariates: list[str] | None = _help(
        "Columns known only up to the forecast origin (an observed temperature): read with each window's inputs. "
        "Scaled from the training part; predict takes them from its --input with the target.",
        default=None,
    )
    future_covariates: list[str] | None = _help(
        "Columns known over the horizon too (calendar, planned prices, holidays): read with the window and over "
        "the --horizon steps it forecasts; predict takes their future from --future. feat_dynamic_real names the "
        "Hub layout's covariates (GluonTS: known in the future).",
        default=None,
    )
    static_covariates: list[str] | None = _help(
        "Columns holding one value per series (a store's size, a region code as a number), with --id_column: "
        "each series' own, given to every step of its windows.",
        default=None,
    )
    calendar_features: list[str] | None = _help(
        f"Future-known covariates made from --time_column: any of {', '.join(CALENDAR_FEATURES)}.",
        default=None,
    )
    dataset_revision: str | None = _help("Branch, tag or commit of a Hub --dataset; None means main.", default=None)
    val_fraction: float = _help("Share of your series, after the training part, held out for validation.", default=0.15)
    test_fraction: float = _help(
        "Share at the end of your series held out for the final test (0: no test split).", default=0.15
    )
    test_size: int | None = _help(
        "The competitions' cut: the last N values of every series are the test (0: no test split), and the "
        "--val_size before them validate; replaces the fractions. None: cut by fraction.",
        default=None,
    )
    val_size: int | None = _help(
        "Values of every series before its test part held out for validation (with --test_size; "
        "None: the same as --test_size, or --horizon where that is 0). 0: none, the final fit on "
        "everything: no early stopping, the last step's model is kept (choose the steps on a run with validation).",
        default=None,
    )
    min_inputs: int | None = _help(
        "Fewest real values a training window needs; the rest of its --seq_length inputs repeat the series' "
        "first value (left padding). None: a whole window where the series' training part holds one, "
        "and 1 where it does not, so a series shorter than a window still trains.",
        default=None,
    )
    fill_missing: str | None = _help(
        "Repair empty, NaN or inf values: ffill (last value before), interpolate (linear), drop (the rows). "
        "None: stop with an error that says where they are.",
        default=None,
    )
    normalization: str = _help(
        "auto: z-score (train split statistics) for your data, none for the synthetic sine, which the "
        "reference trains on raw values. Or zscore, none.",
        default="auto",
    )
    seq_length: int = _help("Input window length in time steps (reference: 50).", default=50)
    horizon: int = _help(
        "Steps ahead forecast from each window (direct multi-output head); 1 is the reference's next-step forecast.",
        default=1,
    )
    season: int | None = _help(
        "Season length in time steps (e.g. 12 for monthly data with a yearly cycle), for the seasonal naive "
        "baseline 'next = the value one season before'; None: no seasonal baseline.",
        default=None,
    )
    deseasonalize: bool = _help(
        "Divide each series by its multiplicative seasonal indices (classical decomposition over --season, "
        "fitted on its training part, where a 90%% autocorrelation test finds the season; M4's benchmarks), "
        "and multiply the forecast back. Needs --season.",
        default=False,
    )
    num_train_samples: int = _help("Synthetic data: training windows (reference: 8,000).", default=8000)
    num_val_samples: int = _help("Synthetic data: validation windows (reference: 2,000).", default=2000)
    noise_std: float = _help("Synthetic data: standard deviation of the Gaussian noise (reference: 0.1).", default=0.1)

    def __post_init__(self) -> None:
        check_fields(self)
        _positive(self, "seq_length", "horizon", "num_train_samples", "num_val_samples")
        if isinstance(self.data_column, str):  # one column, as Python callers (and old configs) name it
            self.data_column = [self.data_column]
        if self.data_column is not None and len(set(self.data_column)) != len(self.data_column):
            raise UserError(f"--data_column names a column twice ({' '.join(self.data_column)}); name each once")
        if self.id_column is not None and self.data_column is not None and len(self.data_column) > 1:
            raise UserError(
                f"--id_column {self.id_column} holds a long table, one value column; --data_column names "
                f"{len(self.data_column)} ({' '.join(self.data_column)}): give one, or leave out --id_column for a wide table"
            )
        self._check_covariates()
        _positive_or_none(self, "season", "min_inputs")
        for name in ("test_size", "val_size"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise UserError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.val_size is not None and self.test_size is None:
            raise UserError(
                f"--val_size {self.val_size} cuts by size and needs --test_size too (0 for no test split); "
                "or use --val_fraction"
            )
        if self.deseasonalize and (self.season is None or self.season < 2):
            raise UserError("--deseasonalize needs --season N (N >= 2): the season length to adjust for, e.g. 12")
        if self.noise_std < 0:
            raise UserError(f"--noise_std must be >= 0, got {self.noise_std}")
        if not self.dataset.strip():
            raise UserError("--dataset must not be empty; use synthetic, a file, a folder or a Hub id (user/name)")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 <= self.test_fraction < 1:
            raise UserError(f"--test_fraction must be in [0, 1), got {self.test_fraction}")
        if self.val_fraction + self.test_fraction >= 1:
            raise UserError(
                f"--val_fraction {self.val_fraction} + --test_fraction {self.test_fraction} leave nothing to "
                "train on; their sum must be below 1"
            )

    def _check_covariates(self) -> None:
        named: dict[str, str] = dict.fromkeys(self.data_column or [], "--data_column")
        for flag in ("past_covariates", "future_covariates", "static_covariates", "calendar_features"):
            given = getattr(self, flag)
            if isinstance(given, str):  # one name, as a Python caller may give it
                given = [given]
                setattr(self, flag, given)
            for column in given or []:
                if column in named:
                    raise UserError(
                        f"column {column!r} is named twice ({named[column]} and --{flag}); a column is one thing: name it once"
                    )
                named[column] = f"--{flag}"
        unknown = [f for f in self.calendar_features or [] if f not in CALENDAR_FEATURES]
        if unknown:
            raise UserError(f"--calendar_features {unknown[0]!r} is not one of {', '.join(CALENDAR_FEATURES)}")
        if self.calendar_features and self.time_column is None:
            raise UserError("--calendar_features are made from the times of the steps: name them with --time_column")
        if self.static_covariates and self.id_column is None:
            raise UserError(
                "--static_covariates hold one value per series: give --id_column naming the series of a long table"
            )
        if self.has_covariates and self.is_synthetic:
            raise UserError("the synthetic sine has no covariates; give a table with them as --dataset")

    @property
    def has_covariates(self) -> bool:
        return bool(self.past_covariates or self.future_covariates or self.static_covariates or self.calendar_features)

    @property
    def is_synthetic(self) -> bool:
        return self.dataset == "synthetic"

    @property
    def by_size(self) -> bool:
        """Whether series are cut by --test_size / --val_size (the competitions' way) instead of by fraction."""
        return self.test_size is not None

    @property
    def split_sizes(self) -> tuple[int, int]:
        """(validation, test) values per series when cut by size."""
        assert self.test_size is not None
        val = self.val_size if self.val_size is not None else (self.test_size or self.horizon)
        return val, self.test_size

    @property
    def validates(self) -> bool:
        """Whether a validation split is held out (all but --val_size 0)."""
        return not (self.by_size and self.split_sizes[0] == 0)


@dataclass
class ModelConfig:
    """Shape of the recurrent forecaster; saved beside the weights as config.json."""

    cell: str = _help("Recurrent cell: lstm (reference) or gru (its 'GRU alternative').", default="lstm")
    input_size: int = _help("Features per time step (1 for a univariate series).", default=1)
    hidden_size: int = _help("Hidden units per layer (reference: 64).", default=64)
    num_layers: int = _help("Stacked recurrent layers (reference: 2).", default=2)
    dropout: float = _help("Dropout between recurrent layers (reference: 0.2).", default=0.2)
    window_norm: str = _help(
        "window: each input window is scaled by its own mean and std inside the model and the forecast scaled "
        "back (instance normalisation, as RevIN), so a level or spread never seen in training looks familiar. "
        "none: the values as the data pipeline gives them.",
        default="window",
    )
    head: str = _help(
        "delta: the head predicts the change from the last observed value and starts at zero, so an untrained "
        "model forecasts next = last. level: it predicts the value itself (the reference).",
        default="delta",
    )
    linear_skip: int | None = _help(
        "Also add a linear autoregression on the last N inputs, learned jointly with the RNN (LSTNet's highway "
        "component), so the model is at least as good as a linear AR on what it learns. None: the whole input "
        "window (--seq_length); 0: none.",
        default=None,
    )
    loss: str = _help(
        "What a point forecast is trained to minimise: mse (the reference; the forecast estimates the mean) "
        "or mae (the median; the errors the competitions score, sMAPE and MASE, are absolute ones).",
        default="mse",
    )
    distribution: str = _help(
        "none: a point forecast trained on MSE (the reference). normal or studentt: the head outputs the "
        "distribution's parameters (scale on a log scale) and trains on its negative log-likelihood; the point "
        "forecast is its mean (normal) or median (studentt, degrees of freedom kept above 2).",
        default="none",
    )
    quantiles: tuple[float, ...] | None = _help(
        "With --distribution none: levels in (0, 1) of a quantile head trained on the pinball loss (e.g. "
        "0.1 0.5 0.9); its point forecast is the level nearest 0.5. None: no quantile head.",
        default=None,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        _positive(self, "input_size", "hidden_size", "num_layers")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.linear_skip is not None and self.linear_skip < 0:
            raise UserError(f"--linear_skip must be >= 0, got {self.linear_skip}")
        if self.quantiles is not None:
            levels = tuple(float(q) for q in self.quantiles)
            if not levels or not all(0 < q < 1 for q in levels):
                raise UserError(
                    f"--quantiles must be levels strictly between 0 and 1 (e.g. 0.1 0.5 0.9), got {list(levels)}"
                )
            if len(set(levels)) != len(levels):
                raise UserError(f"--quantiles must not repeat a level, got {list(levels)}")
            if self.distribution != "none":
                raise UserError(
                    f"--quantiles trains a quantile head and --distribution {self.distribution} a parametric one; "
                    "pick one (predict --quantiles chooses the levels written for a distribution)"
                )
            # Sorted once here, so the head's outputs are in level order wherever it is loaded.
            self.quantiles = tuple(sorted(levels))

    @property
    def output_kind(self) -> str:
        """What the head predicts: point, normal, studentt or quantile."""
        if self.quantiles is not None:
            return "quantile"
        return "point" if self.distribution == "none" else self.distribution

    @property
    def params_per_step(self) -> int:
        """Head outputs per forecast step: 1 value, (loc, log scale), (loc, log scale, df) or one per quantile."""
        if self.quantiles is not None:
            return len(self.quantiles)
        return {"none": 1, "normal": 2, "studentt": 3}[self.distribution]


# Hidden units of the network that maps one step's future covariates to its effect on that step.
FUTURE_UNITS = 16


@dataclass(frozen=True)
class ForecasterConfig:
    """What the forecaster (model/forecaster.py) is built from, as nanoGPT's GPTConfig: its architecture
    (the model flags) and the shape of what it reads and writes. Saved whole as config.json, so a model
    folder says how to use it; here, beside the flags, so that it is read without loading torch."""

    model: ModelConfig
    seq_length: int  # T: the input window, in steps
    horizon: int = 1  # H: the steps forecast at once
    covariates: tuple[int, int, int] = (0, 0, 0)  # (past, future, static) input channels beside the values

    def __post_init__(self) -> None:
        # Users' values are checked where they give them (DataConfig, config.json); these are invariants.
        assert self.seq_length >= 1 and self.horizon >= 1, (self.seq_length, self.horizon)
        assert len(self.covariates) == 3 and min(self.covariates) >= 0, self.covariates

    @classmethod
    def of(cls, config: RunConfig, covariates: tuple[int, int, int] = (0, 0, 0)) -> ForecasterConfig:
        """The model a run trains: its flags, its window and horizon, and the covariate channels its data has."""
        return cls(config.model, config.data.seq_length, config.data.horizon, covariates)

    def num_parameters(self) -> int:
        """Weights and biases of the recurrent layers, the head, the linear skip and the future covariates'
        network, from the shape alone (the memory check before a run reads it)."""
        arch, horizon = self.model, self.horizon
        past, future, static = self.covariates
        gates = 4 if arch.cell == "lstm" else 3
        h = arch.hidden_size
        first = gates * h * (arch.input_size + past + static + h + 2)  # input and hidden weights, two biases
        later = gates * h * (h + h + 2)
        skip = self.seq_length if arch.linear_skip is None else arch.linear_skip
        outputs = horizon * arch.params_per_step
        effect = (2 * future + 1) * FUTURE_UNITS + (FUTURE_UNITS + 1) * arch.params_per_step if future else 0
        return (
            first + (arch.num_layers - 1) * later + (h + 1) * outputs + ((skip + 1) * horizon if skip else 0) + effect
        )

    def to_dict(self) -> dict[str, Any]:
        """config.json: the architecture's fields and the shape beside them, one flat record (as Transformers
        writes). The covariates only where there are any: a model without keeps the config.json it always had."""
        record = {**asdict(self.model), "seq_length": self.seq_length, "horizon": self.horizon}
        if any(self.covariates):
            record["covariates"] = dict(zip(("past", "future", "static"), self.covariates, strict=True))
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ForecasterConfig:
        """From config.json. Raises KeyError, TypeError or ValueError on a record that is not one (the caller
        names the file)."""
        record = dict(record)
        seq_length, horizon = record.pop("seq_length"), int(record.pop("horizon"))
        channels = record.pop("covariates", None) or {}
        covariates = (int(channels.get("past", 0)), int(channels.get("future", 0)), int(channels.get("static", 0)))
        if not (isinstance(seq_length, int) and seq_length >= 1 and horizon >= 1 and min(covariates) >= 0):
            raise ValueError(f"seq_length {seq_length!r}, horizon {horizon}, covariates {covariates}")
        return cls(ModelConfig(**record), seq_length, horizon, covariates)


@dataclass
class TrainConfig:
    """How to train. Batch and optimizer values set in a --ds_config JSON win over these defaults; a flag wins over the JSON
    (train/plan.py)."""

    output_dir: str = _help("Where results, the best model and logs are written.", default="outputs")
    ds_config: str | None = _help(
        "DeepSpeed JSON (ZeRO stage, optimizer, scheduler, clipping, batch sizes). Default: the accelerate "
        "config's deepspeed_config_file if it names one, else accelerate_configs/ds_zero2.json.",
        default=None,
    )
    num_train_epochs: int = _help("Maximum epochs (reference: 50).", default=50)
    select_on: str = _help(
        "What validation chooses the model kept (and early stopping counts) on: mse (the point forecast's MSE "
        "over every window, as the model sees them) or, for your own data, smape or mase (each series scored "
        "alone in the data's units, then the mean over series: the competitions' measures the summary reports).",
        default="mse",
    )
    early_stopping_patience: int = _help(
        "Stop after this many epochs without a better validation MSE (reference: 10).", default=10
    )
    per_device_train_batch_size: int = _help("Micro batch per process (reference: 32).", default=32)
    total_batch_size: int = _help(
        "Global batch per optimizer step, kept whatever the process count (reference: 128).", default=128
    )
    sampling: str = _help(
        "How training batches draw windows: windows (every window once an epoch, shuffled; long series weigh "
        "more) or series (a series uniformly, then one of its windows, with replacement: every series weighs "
        "the same, as N-BEATS trains on the M competitions).",
        default="windows",
    )
    learning_rate: float = _help("Peak learning rate (reference: 5e-4).", default=5e-4)
    weight_decay: float = _help("Adam weight decay (reference: 1e-5).", default=1e-5)
    num_warmup_steps: int = _help("WarmupLR steps from 0 to the peak rate (reference: 100).", default=100)
    mixed_precision: str = _help(
        "auto: fp16 where CUDA is present (reference), else fp32. Or no, fp16, bf16.", default="auto"
    )
    seed: int = _help("Seed for data generation, initialisation and shuffling.", default=42)
    logging_steps: int = _help("Log loss, gradient norm and learning rate every N optimizer steps.", default=20)
    eval_batch_size: int = _help("Windows per process per validation batch.", default=256)
    max_train_steps: int | None = _help(
        "Stop after this many optimizer steps in all (a resumed run counts the steps before it).", default=None
    )
    checkpointing_steps: int | None = _help(
        "Also save a checkpoint every N optimizer steps (one is always saved at the end of each epoch).",
        default=None,
    )
    save_total_limit: int = _help(
        "Checkpoints to keep under output_dir/checkpoints (the newest ones, plus the best).", default=3
    )
    resume_from_checkpoint: str | None = _help(
        "Continue a run: 'latest' (output_dir/checkpoints/latest) or a checkpoint folder.", default=None
    )
    overwrite_output_dir: bool = _help(
        "Start a new run in an output_dir that holds a finished or checkpointed run, replacing its model, "
        "results and checkpoints (its tracker logs stay). A folder holding files lstm-trainer did not write "
        "is refused even so.",
        default=False,
    )
    report_to: str = _help(
        "Experiment tracking through Accelerate: wandb, tensorboard, all (both) or none. "
        "TensorBoard writes to output_dir/tensorboard/; W&B honours WANDB_MODE (e.g. offline).",
        default="none",
    )
    project_name: str = _help("W&B project the run is logged to.", default="lstm-trainer")
    run_name: str | None = _help(
        "Run name in W&B and TensorBoard's folder name (default: W&B picks one; TensorBoard the start time).",
        default=None,
    )
    push_to_hub: bool = _help(
        "At the end of the run, upload output_dir/model (weights, config, normalization, card) to the Hub "
        "repository --hub_model_id. Needs a write token: HF_TOKEN or `hf auth login`.",
        default=False,
    )
    hub_model_id: str | None = _help("Hub model repository to push to, user/name (created if missing).", default=None)
    hub_private_repo: bool = _help(
        "Create the Hub repository private (an existing one keeps its visibility).", default=False
    )
    hub_revision: str | None = _help("Branch to push the model to (created if missing); None means main.", default=None)
    num_threads: int | None = _help(
        "Compute threads per process. Default: OMP_NUM_THREADS where set (accelerate launch sets it from "
        "--num_cpu_threads_per_process), else 1: two per process spin-wait for each other and collapse when "
        "another job shares the cores (train/threads.py). Above 1, OpenMP's waiting threads sleep "
        "(OMP_WAIT_POLICY=PASSIVE).",
        default=None,
    )
    # The flags typed on the command line (cli.parse_config fills it): a flag given with the
    # default's value still wins over the JSON. Not a flag, and not part of the saved config.
    typed: frozenset[str] = field(default=frozenset(), repr=False, compare=False, metadata={"flag": False})

    def __post_init__(self) -> None:
        check_fields(self)
        _positive(self, "num_train_epochs", "early_stopping_patience", "logging_steps", "eval_batch_size")
        _positive(self, "save_total_limit", "per_device_train_batch_size", "total_batch_size", "learning_rate")
        _positive_or_none(self, "max_train_steps", "checkpointing_steps", "num_threads")
        for name in ("weight_decay", "num_warmup_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.run_name is not None and (not self.run_name.strip() or "/" in self.run_name):
            raise UserError(f"--run_name must be a non-empty name without '/', got {self.run_name!r}")
        if self.push_to_hub and self.hub_model_id is None:
            raise UserError("--push_to_hub needs --hub_model_id user/name: the Hub repository to push the model to")
        if self.hub_model_id is not None and not is_hub_id(self.hub_model_id):
            raise UserError(
                f"--hub_model_id must be a Hub repository id user/name (letters, digits, '-', '_', '.'), "
                f"got {self.hub_model_id!r}"
            )

    def chosen(self) -> frozenset[str]:
        """The fields the user chose: flags typed (even with the default's value), or, for a TrainConfig
        built in code, values other than their defaults. Where the DeepSpeed JSON also sets one, these win."""
        return self.typed | {f.name for f in config_fields(self) if getattr(self, f.name) != f.default}


@dataclass
class RunConfig:
    """Everything one run needs; what `train.py` parses and the trainer reads."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.model.linear_skip is not None and self.model.linear_skip > self.data.seq_length:
            raise UserError(
                f"--linear_skip {self.model.linear_skip} reaches past the window of --seq_length "
                f"{self.data.seq_length}; use at most {self.data.seq_length}"
            )
        if self.train.select_on != "mse" and self.data.is_synthetic:
            raise UserError(
                f"--select_on {self.train.select_on} scores series one by one in their own units, which the "
                "synthetic sine does not have; use --select_on mse, or give --dataset your series"
            )
        if self.data.season is not None and self.data.season > self.data.seq_length:
            raise UserError(
                f"--season {self.data.season} is longer than the window (--seq_length {self.data.seq_length}), so "
                f"the seasonal naive forecast cannot see a season back; pass --seq_length {self.data.season} or more"
            )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _as_dict(getattr(self, f.name)) for f in fields(self)}


def gradient_accumulation_steps(total_batch_size: int, micro_batch_size: int, world_size: int) -> int:
    """Micro batches per optimizer step that keep the global batch whatever the process count.

    128 = 32 x accumulation x processes gives 4 on one process, 2 on two and 1 on four.
    """
    per_step = micro_batch_size * world_size
    if total_batch_size % per_step != 0 or total_batch_size < per_step:
        raise UserError(
            f"total batch size {total_batch_size} is not micro batch {micro_batch_size} x processes "
            f"{world_size} x a whole accumulation count; pick --total_batch_size as a multiple of "
            f"{per_step} or change --per_device_train_batch_size or --num_processes"
        )
    return total_batch_size // per_step


@dataclass(frozen=True)
class Plan:
    """Every value in force, made before the Accelerator and DeepSpeed's engine exist, never changed after.
    A checkpoint keeps `identity()`, which a resume compares and takes its fitted values from.

    Made by train/plan.py's `make_plan`; kept here, on the floor below every reader, so that outputs/
    (the run's header, all_results.json) reads the plan itself rather than a copy of its fields."""

    config: dict[str, Any]  # the DeepSpeed JSON as the engine gets it, nothing "auto"
    micro_batch_size: int
    total_batch_size: int
    gradient_accumulation_steps: int
    mixed_precision: str  # "no", "fp16" or "bf16"
    zero_stage: int  # as the JSON and the accelerate config ask; a lone fp32 process runs 0 (make_plan)
    planned_steps: int  # optimizer steps the run takes at most
    source: str  # which JSON, and who chose it
    changes: tuple[str, ...] = ()  # one line per value not taken from the JSON
    notes: tuple[str, ...] = ()  # one line per thing a user should know about the plan

    def identity(self) -> dict[str, Any]:
        """The values a checkpoint depends on, wherever they came from (JSON, accelerate config, flags, data)."""
        optimizer = self.config.get("optimizer", {}).get("params", {})
        return {
            "zero_stage": self.zero_stage,  # as asked, so that a checkpoint resumes on another process count
            "train_micro_batch_size_per_gpu": self.micro_batch_size,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            "train_batch_size": self.total_batch_size,
            "lr": optimizer.get("lr"),
            "weight_decay": optimizer.get("weight_decay"),
            "warmup_num_steps": self.config.get("scheduler", {}).get("params", {}).get("warmup_num_steps"),
        }


def is_hub_id(name: str) -> bool:
    """Whether `name` can be a Hub repository id with its namespace (user/name)."""
    return len(name) <= 96 and bool(HUB_ID.match(name)) and "--" not in name and ".." not in name


def config_fields(cls: Any) -> list[Any]:
    """The fields of a config dataclass that are flags (and saved with a run)."""
    return [f for f in fields(cls) if f.metadata.get("flag", True)]


def _as_dict(obj: Any) -> dict[str, Any]:
    # Tuples as lists, as JSON gives them back, so a saved config compares equal on resume.
    return {f.name: list(v) if isinstance(v := getattr(obj, f.name), tuple) else v for f in config_fields(obj)}


KIND_WORDS = {"bool": "True or False", "int": "a whole number", "float": "a number", "str": "a string"}
PLURAL_WORDS = {"int": "whole numbers", "float": "numbers", "str": "strings"}


def check_fields(obj: Any) -> None:
    """Every field of a config dataclass of its declared type, every number finite: a Python caller can pass
    anything (seq_length="12", quantiles=0.5), and NaN passes every range check (NaN <= 0 is False)."""
    for f in config_fields(obj):
        value, kind = getattr(obj, f.name), str(f.type)
        if value is None and kind.endswith(" | None"):
            continue
        base = kind.removesuffix(" | None")
        if not base.startswith(("list[", "tuple[")):
            _check_value(f.name, base, value)
            if f.name in CHOICES and value not in CHOICES[f.name]:
                raise UserError(f"--{f.name} must be one of {', '.join(CHOICES[f.name])}, got {value!r}")
            continue
        inner = base[base.index("[") + 1 :].split(",")[0].rstrip("]")
        if base.startswith("list[str") and isinstance(value, str):
            continue  # one column, as Python callers name it (DataConfig makes it a list)
        if not isinstance(value, list | tuple) or not value:
            raise UserError(f"--{f.name} must be a list of {PLURAL_WORDS[inner]}, got {value!r}")
        for item in value:
            _check_value(f.name, inner, item, "each value of ")


def _check_value(name: str, kind: str, value: Any, which: str = "") -> None:
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = {
        "bool": isinstance(value, bool),
        "int": numeric and isinstance(value, numbers.Integral),
        "float": numeric,
        "str": isinstance(value, str),
    }.get(kind, True)
    if not ok:
        raise UserError(f"{which}--{name} must be {KIND_WORDS[kind]}, got {value!r}")
    if kind == "float" and not math.isfinite(value):
        raise UserError(f"{which}--{name} must be a finite number, got {value}")


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value <= 0:
            raise UserError(f"--{name} must be > 0, got {value}")


def _positive_or_none(obj: Any, *names: str) -> None:
    for name in names:
        if getattr(obj, name) is not None:
            _positive(obj, name)
