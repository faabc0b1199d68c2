"""The run-config schema: one dataclass per section, each field with its default, type and rule."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """A config file or override is wrong; the message says what to fix."""


# ---------------------------------------------------------------- rules beside the fields
Rule = Callable[[Any], "str | None"]  # returns what is wrong, or None


def positive(value: Any) -> str | None:
    return None if value is None or value > 0 else "expected a positive number"


def non_negative(value: Any) -> str | None:
    return None if value is None or value >= 0 else "expected a number >= 0"


def unit_interval(value: Any) -> str | None:
    """Dropout-like probabilities: [0, 1)."""
    return None if value is None or 0 <= value < 1 else "expected a number in [0, 1)"


def finite(value: Any) -> str | None:
    ok = value is None or isinstance(value, bool) or math.isfinite(value)
    return None if ok else "expected a finite number"


def one_of(*choices: Any) -> Rule:
    def rule(value: Any) -> str | None:
        if value is None or value in choices:
            return None
        return "expected one of " + ", ".join(_show(c) for c in choices)

    return rule


def options_among(*known: str) -> Rule:
    """A mapping of options whose keys are all in ``known``."""
    def rule(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            return "expected a mapping {" + ", ".join(known) + "}"
        unknown = sorted(set(value) - set(known))
        return f"unknown option(s) {unknown}; use {', '.join(known)}" if unknown else None

    return rule


# Names the model and optimiser builders take, here so a config check imports no torch;
# tests/test_config.py holds them equal to rnnbench.optim's and the module's.
INIT_OPTIONS = ("uniform", "fan_in_normal", "embedding_std", "recurrent", "forget_bias")
# Each scheduler's options (rnnbench.optim reads these keys; tests/test_config.py checks it).
SCHEDULER_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (), "decay_after": ("start_epoch", "factor"), "plateau": ("factor", "patience"),
    "cosine": ("t_max",), "step": ("step_size", "factor"),
}
SCHEDULER_NAMES = tuple(SCHEDULER_OPTIONS)
_COUNTS = {"start_epoch": 0, "patience": 0, "t_max": 1, "step_size": 1}  # smallest allowed


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def scheduler_named(value: Any) -> str | None:
    """``optim.scheduler``: ``null`` or ``{name: one of SCHEDULER_NAMES, its options}``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "expected a mapping {name: " + "|".join(SCHEDULER_NAMES) + ", ...}"
    name = value.get("name", "none")
    if name not in SCHEDULER_NAMES:
        return f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}"
    takes = SCHEDULER_OPTIONS[name]
    # Keys of another scheduler are let through (a preset's options stay merged in when the
    # command line switches the name); a key no scheduler takes is a typo.
    every = {k for opts in SCHEDULER_OPTIONS.values() for k in opts}
    unknown = sorted(set(value) - {"name"} - every)
    if unknown:
        return (f"unknown option(s) {unknown}; scheduler {name!r} takes "
                f"{', '.join(takes) or 'no option'}")
    for key in takes:
        if key not in value:
            continue
        v = value[key]
        if key in _COUNTS and not (isinstance(v, int) and not isinstance(v, bool)
                                   and v >= _COUNTS[key]):
            return f"{key} must be an integer >= {_COUNTS[key]}"
        if key == "factor" and not (_number(v) and v > 0):
            return "factor must be a positive number"
    return None


def init_options(value: Any) -> str | None:
    """``model.init``: known options with values of the right kind."""
    problem = options_among(*INIT_OPTIONS)(value)
    if problem or value is None:
        return problem
    v = value.get("uniform")  # 0, false or null: off
    if v is not None and v is not False and not (_number(v) and v >= 0):
        return "uniform must be a number >= 0"
    v = value.get("embedding_std")
    if v is not None and not (_number(v) and v > 0):
        return "embedding_std must be a positive number (the book uses 0.01)"
    if value.get("forget_bias") is not None and not _number(value["forget_bias"]):
        return "forget_bias must be a number"
    if value.get("recurrent") not in (None, "default", "orthogonal"):
        return "recurrent must be orthogonal or default"
    if not isinstance(value.get("fan_in_normal", False), (bool, type(None))):
        return "fan_in_normal must be true or false"
    return None


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _f(default: Any, *rules: Rule, doc: str = "") -> Any:
    """A dataclass field with its rules and one line of documentation in its metadata."""
    meta = {"rules": rules, "doc": doc}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------- the sections
@dataclass
class ModelConfig:
    """``model:``: the backbone (and the task options that size it)."""

    cell: str = _f("lstm", doc="registered cell name (rnnbench cells lists them)")
    hidden_size: int = _f(200, positive, doc="units per layer and direction")
    num_layers: int = _f(1, positive, doc="stacked recurrent layers")
    bidirectional: bool = _f(False, doc="refused for next-step (causal) tasks")
    dropout: float = _f(0.0, unit_interval, doc="dropout between recurrent layers")
    impl: str = _f("auto", one_of("auto", "fused", "reference", "compiled"),
                   doc="backbone path")
    cell_kwargs: dict[str, Any] | None = _f(None, doc="extra options of the cell")
    init: dict[str, Any] | None = _f(
        None, init_options, doc=", ".join(INIT_OPTIONS))
    tbptt: int | None = _f(None, positive, doc="window length inside long sequences")
    weight_noise: float = _f(0.0, non_negative, finite,
                             doc="std of Gaussian noise on the weights during each update "
                             "(removed before the step; 0: off)")
    padding: str = _f("mask", one_of("mask", "pack"),
                      doc="padded batches: fused kernel unpacked (mask) or packed (pack)")
    param_budget: int | None = _f(
        None, positive, doc="pick the hidden size whose parameter count is closest to this")
    # Task options set under model: (they size the model); moved to the task when built.
    tie_weights: bool | None = _f(None, doc="LM: tie input and output embeddings")
    embedding_dropout: float | None = _f(None, unit_interval, doc="LM: embedding dropout")
    embedding_size: int | None = _f(None, positive, doc="LM: embedding width")


@dataclass
class OptimConfig:
    """``optim:``: optimiser, clipping, schedule and the training step's execution."""

    optimizer: str = _f("sgd", one_of("sgd", "adam", "adamw", "rmsprop"))
    lr: float = _f(1.0, positive, finite, doc="learning rate")
    momentum: float = _f(0.0, non_negative, finite, doc="SGD / RMSprop momentum")
    weight_decay: float = _f(0.0, non_negative, finite, doc="L2 penalty (decoupled: AdamW)")
    clip: float | None = _f(5.0, non_negative, finite,
                               doc="max global gradient norm (null or 0: none)")
    scheduler: dict[str, Any] | None = _f(
        None, scheduler_named, doc="{name: decay_after|plateau|cosine|step, ...}")
    loss_reduction: str = _f("mean", one_of("mean", "sum_time"))
    cuda_graphs: bool | str = _f("auto", one_of("auto", True, False, "emulate"),
                                       doc="whole-step CUDA graphs on one GPU")
    check_finite_every: int | None = _f(
        None, non_negative, doc="steps between NaN checks (null: default, 0: never)")


@dataclass
class LoggingConfig:
    """``logging:``: where and how a run records itself."""

    dir: str = _f("runs", doc="root folder of run folders")
    csv: bool = _f(True)
    tensorboard: bool = _f(False)
    wandb: Any = _f(False, doc="true, false, a project name or {project, entity, mode, ...}")
    progress_bar: bool = _f(True)
    progress_every: int | None = _f(None, positive, doc="batches between bar refreshes")


@dataclass
class CheckpointConfig:
    """``checkpoint:``: best-validation and last checkpoints."""

    enabled: bool = _f(True)
    every_n_train_steps: int | None = _f(None, positive,
                                            doc="also save last.ckpt every N steps")


@dataclass
class TrainerConfig:
    """``trainer:``: any ``lightning.Trainer`` argument; these are typed and checked."""

    max_epochs: int | None = _f(1, positive)
    accelerator: str = _f("auto")
    devices: Any = _f(1)


@dataclass
class RunConfig:
    """A whole run. ``data:`` is typed by the chosen data set's own builder signature."""

    seed: int = _f(0, non_negative)
    flush_denormal: bool = _f(
        False, doc="CPU: flush subnormal floats to zero while training (docs/benchmarks.md)")
    name: str | None = _f(None, doc="run name: runs/<name>/version_K")
    description: str | None = _f(None)
    data: dict[str, Any] = _f({"dataset": "ptb"})
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    task: dict[str, Any] = _f({})
    study: dict[str, Any] | None = _f(None, doc="a study file's study: section")


SCHEMA: dict[str, type] = {"model": ModelConfig, "optim": OptimConfig,
                           "trainer": TrainerConfig, "logging": LoggingConfig,
                           "checkpoint": CheckpointConfig}
SECTIONS = ("data", "model", "optim", "trainer", "logging", "checkpoint", "task")
GROUPS = ("data", "model", "optim", "trainer", "logging", "checkpoint")
TOP_LEVEL = tuple(f.name for f in fields(RunConfig)) + ("defaults", "quick")
# The model/optim options as the schema defines them (studies check search paths with these).
TASK_KEYS_FROM_MODEL = {"tie_weights", "embedding_dropout", "embedding_size"}
MODEL_KEYS = {f.name for f in fields(ModelConfig)} - TASK_KEYS_FROM_MODEL
OPTIM_KEYS = {f.name for f in fields(OptimConfig)}
