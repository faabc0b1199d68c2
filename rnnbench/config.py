"""The typed run-config schema (OmegaConf structured configs) and its composition from YAML.

One dataclass per section, each field with its default, its type and its rule. A config is
composed as: schema defaults < ``defaults:`` groups (``configs/<group>/<name>.yaml``) < the
file < its ``quick:`` section (with ``--quick``) < command-line overrides. Overrides are
dotted (``optim.lr=1e-3``) or switch a group (``model=lstm_2x200``); values may interpolate
(``data.eval_batch_size=${data.batch_size}``). OmegaConf types every value (``1e-3`` is a
float), struct mode turns a typo into an error naming the key, and the rules beside the
fields refuse values that would train nothing (``lr <= 0``).

The composed config is handed on as a plain ``dict`` (what the rest of the package and the
study machinery patch and pass around), and saved as ``config.yaml`` in every run folder:
``rnnbench fit runs/NAME/version_K/config.yaml`` runs it again.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional, Union

import yaml


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
        None, doc="uniform, fan_in_normal, embedding_std, recurrent, forget_bias")
    tbptt: int | None = _f(None, positive, doc="window length inside long sequences")
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
        None, doc="{name: decay_after|plateau|cosine|step, ...}")
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


# ---------------------------------------------------------------- composition
def config_root() -> Path:
    """The ``configs/`` folder of this checkout (or the one next to the working directory)."""
    here = Path(__file__).resolve().parent.parent / "configs"
    return here if here.is_dir() else Path.cwd() / "configs"


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merges ``over`` into a copy of ``base`` (``over`` wins)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's mapping; a missing, unreadable or non-mapping file is a ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read ({err})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """``"model.hidden_size=650"`` -> ``{"model": {"hidden_size": 650}}``, typed as OmegaConf
    reads a value (``1e-3`` is a float; ``${...}`` interpolates)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if "=" not in text or text.startswith("="):
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key = text.split("=", 1)[0].strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: {key!r} is not a dotted key like optim.lr")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([text]), resolve=False)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError) as err:
        raise ConfigError(f"override {text!r} cannot be read: {_first_line(err)}") from None


def _split_overrides(overrides: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Group switches (``model=lstm_2x200``) apart from dotted overrides."""
    groups: dict[str, str] = {}
    rest: list[str] = []
    for text in overrides:
        key, _, value = text.partition("=")
        if key.strip() in GROUPS and value and not value.lstrip().startswith(("{", "[")):
            groups[key.strip()] = value.strip()
        else:
            rest.append(text)
    return groups, rest


def _group_file(root: Path, group: str, name: Any) -> dict[str, Any]:
    if group not in GROUPS:
        raise ConfigError(f"defaults names unknown group {group!r}; groups: "
                          f"{', '.join(GROUPS)}")
    known = sorted(p.stem for p in (root / group).glob("*.yaml"))
    if not isinstance(name, str) or not (root / group / f"{name}.yaml").is_file():
        raise ConfigError(
            f"{group}={name}: there is no {root / group / f'{name}.yaml'}"
            f"{did_you_mean(str(name), known)}; known {group} configs: "
            f"{', '.join(known) or 'none'}"
        )
    return read_yaml(root / group / f"{name}.yaml")


def compose(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    root: Path | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """The raw (unvalidated) composition of defaults groups, file, quick and overrides."""
    root = root or config_root()
    file_cfg: dict[str, Any] = {}
    cfg: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        file_cfg = read_yaml(path)
        cfg["name"] = path.stem
    switched, dotted = _split_overrides(overrides)
    defaults = file_cfg.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults must be a mapping like "
                          "{model: lstm_2x200, data: ptb}, got {defaults!r}")
    for group, name in {**defaults, **switched}.items():
        cfg = deep_merge(cfg, {group: _group_file(root, group, name)})
    quick_cfg = file_cfg.get("quick")
    cfg = deep_merge(cfg, {k: v for k, v in file_cfg.items() if k not in ("defaults", "quick")})
    if quick:
        if not isinstance(quick_cfg, dict):
            raise ConfigError(
                f"--quick: {path} has no quick: section (a mapping of overrides that makes a "
                "short version of the run); run it without --quick"
            )
        cfg = deep_merge(cfg, quick_cfg)
    for text in dotted:
        cfg = deep_merge(cfg, parse_override(text))
    return cfg


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    root: Path | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Composes and validates a run config (see the module docstring for the order).

    Returns:
        The config as a plain dict with every schema field filled in.

    Raises:
        ConfigError: Missing file, bad YAML, unknown key or group, wrong type, broken rule.
    """
    return validate_config(compose(path, overrides, root=root, quick=quick))


# ---------------------------------------------------------------- validation
def did_you_mean(word: str, known: Sequence[str]) -> str:
    """``" (did you mean 'lstm'?)"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "msg", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


# The type words of OmegaConf's conversion errors, said as a config's reader would.
_TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false",
               "String": "a string", "int": "an integer", "float": "a number",
               "bool": "true or false", "str": "a string"}


def _schema_error(err: Any, section: str | None = None) -> ConfigError:
    """An OmegaConf error as one sentence that names the key."""
    from omegaconf.errors import ConfigKeyError

    key = ".".join(k for k in (section, getattr(err, "full_key", None)) if k)
    if isinstance(err, ConfigKeyError):
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        cls = SCHEMA.get(parent) if parent else RunConfig
        known = [f.name for f in fields(cls)] if cls else []
        if not parent:
            known = list(TOP_LEVEL)
        name = key.rsplit(".", 1)[-1]
        return ConfigError(f"unknown config key {key}{did_you_mean(name, known)}; "
                           f"{parent or 'the top level'} takes: {', '.join(sorted(known))}")
    msg = _first_line(err)
    if "could not be converted" in msg or "is not a" in msg:
        # "... could not be converted to Integer" / "... is not a valid bool (type str)"
        tail = msg.split("converted to ")[-1] if "converted to" in msg else \
            msg.split("is not a valid ")[-1]
        want = _TYPE_WORDS.get(tail.split()[0].strip(".'") if tail else "", "another type")
        bad = msg.split("'")[1] if msg.count("'") >= 2 else "?"
        return ConfigError(f"{key}: expected {want}, got {bad!r}")
    return ConfigError(f"{key}: {msg}")


def _check_rules(obj: Any, cls: type, prefix: str) -> None:
    for f in fields(cls):
        value = getattr(obj, f.name, None)
        for rule in f.metadata.get("rules", ()):
            try:
                problem = rule(value)
            except TypeError:
                problem = "has the wrong type"
            if problem:
                raise ConfigError(f"{prefix}{f.name}: {problem}, got {_show(value)}")


def _typed(section: str, cls: type, raw: Any) -> dict[str, Any]:
    """One section merged onto its schema (struct mode), rules checked; returns a dict."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config section {section} must be a mapping, got {raw!r}")
    base = OmegaConf.structured(cls)
    open_keys = {}
    if cls is TrainerConfig:  # any Lightning Trainer argument: checked by name below
        known = {f.name for f in fields(cls)}
        open_keys = {k: v for k, v in raw.items() if k not in known}
        raw = {k: v for k, v in raw.items() if k in known}
    try:
        merged = OmegaConf.merge(base, raw)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _schema_error(err, section) from None
    _check_rules(obj, cls, f"{section}.")
    out = OmegaConf.to_container(merged, resolve=True)
    out.update(open_keys)
    return out


# lightning.Trainer's arguments, listed so a config check imports no Lightning (about 3 s);
# tests/test_config.py holds this list equal to the installed Trainer's signature.
TRAINER_ARGS = frozenset({
    "accelerator", "accumulate_grad_batches", "barebones", "benchmark", "callbacks",
    "check_val_every_n_epoch", "default_root_dir", "detect_anomaly", "deterministic", "devices",
    "enable_autolog_hparams", "enable_checkpointing", "enable_model_summary",
    "enable_progress_bar", "fast_dev_run", "gradient_clip_algorithm", "gradient_clip_val",
    "inference_mode", "limit_predict_batches", "limit_test_batches", "limit_train_batches",
    "limit_val_batches", "log_every_n_steps", "logger", "max_epochs", "max_steps", "max_time",
    "min_epochs", "min_steps", "model_registry", "num_nodes", "num_sanity_val_steps",
    "overfit_batches", "plugins", "precision", "profiler", "reload_dataloaders_every_n_epochs",
    "strategy", "sync_batchnorm", "use_distributed_sampler", "val_check_interval",
})


def _trainer_args() -> set[str]:
    return set(TRAINER_ARGS)


def _check_trainer(trainer: dict[str, Any]) -> None:
    if "gradient_clip_val" in trainer:
        raise ConfigError("set gradient clipping with optim.clip, not trainer.gradient_clip_val")
    extra = set(trainer) - {f.name for f in fields(TrainerConfig)}
    if not extra:
        return
    known = _trainer_args()
    for key in sorted(extra - known):
        raise ConfigError(f"unknown config key trainer.{key}{did_you_mean(key, sorted(known))}"
                          "; trainer: takes the arguments of lightning.Trainer")


def _data_schema(name: str) -> tuple[type | None, bool]:
    """A dataclass typed from the data set's builder signature; whether it takes more."""
    from rnnbench.data.catalog import _BUILDERS

    builder = _BUILDERS[name]
    try:
        hints = typing.get_type_hints(builder)
    except Exception:  # an annotation that does not evaluate: leave the values untyped
        hints = {}
    spec: list[tuple[str, Any, Any]] = [("dataset", str, field(default=name))]
    more = False
    for p in inspect.signature(builder).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            more = True
            continue
        if p.name in ("seed", "dataset"):
            continue
        kind = _omegaconf_type(hints.get(p.name, Any))
        default = None if p.default is p.empty else p.default
        spec.append((p.name, kind, field(default=default)))
    return make_dataclass(f"Data_{name}", spec), more


def _omegaconf_type(hint: Any) -> Any:
    """A builder annotation as OmegaConf can hold it (unions of containers stay untyped)."""
    args = typing.get_args(hint)
    base = [a for a in args if a is not type(None)]
    if typing.get_origin(hint) in (Union, getattr(__import__("types"), "UnionType", Union)):
        if len(base) == 1 and base[0] in (int, float, bool, str):
            return Optional[base[0]]  # noqa: UP045 (a runtime type object for OmegaConf)
        return Any
    return hint if hint in (int, float, bool, str) else Any


_DATA_RULES: dict[str, tuple[Rule, ...]] = {
    "batch_size": (positive,), "eval_batch_size": (positive,), "bptt": (positive,),
    "limit_tokens": (positive,), "limit_pieces": (positive,), "T": (positive,),
    "n": (positive,), "window": (positive,), "n_steps": (positive,),
}


def _check_data(raw: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rnnbench.data.catalog import list_datasets

    if not isinstance(raw, dict):
        raise ConfigError(f"config section data must be a mapping, got {raw!r}")
    name = raw.get("dataset", "ptb")
    known = list_datasets()
    if name not in known:
        raise ConfigError(f"data.dataset: unknown data set {name!r}"
                          f"{did_you_mean(str(name), known)}; known data sets: "
                          f"{', '.join(known)}")
    cls, more = _data_schema(name)
    base = OmegaConf.structured(cls)
    names = {f.name for f in fields(cls)}
    extra = {k: v for k, v in raw.items() if k not in names}
    if extra and not more:
        key = sorted(extra)[0]
        raise ConfigError(f"unknown config key data.{key}{did_you_mean(key, sorted(names))}; "
                          f"data set {name} takes: {', '.join(sorted(names))}")
    try:
        typed = OmegaConf.to_container(
            OmegaConf.merge(base, {k: v for k, v in raw.items() if k in names}), resolve=True)
    except OmegaConfBaseException as err:
        raise _schema_error(err, "data") from None
    for key, value in typed.items():
        for rule in _DATA_RULES.get(key, ()):
            problem = rule(value) if isinstance(value, (int, float)) or value is None else \
                "expected a number"
            if problem:
                raise ConfigError(f"data.{key}: {problem}, got {value!r}")
    # Only what the user set (and the dataset name) travels on: the builder keeps its defaults.
    out = {k: typed[k] for k in raw if k in typed}
    out["dataset"] = name
    out.update(extra)
    return out


def _drop_unset(section: dict[str, Any], cls: type) -> dict[str, Any]:
    """Fields left at a ``None`` default are dropped, as if never written."""
    unset = {f.name for f in fields(cls) if f.default is None}
    return {k: v for k, v in section.items() if not (v is None and k in unset)}


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Types and checks a composed config against the schema; returns the typed plain dict.

    Raises:
        ConfigError: Unknown key (with a "did you mean"), wrong type, or a broken rule; the
            message names the key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(cfg, dict):
        raise ConfigError(f"a config must be a mapping, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(TOP_LEVEL) - {"defaults", "quick"})
    if unknown:
        key = unknown[0]
        raise ConfigError(f"unknown top-level config key {key!r}{did_you_mean(key, TOP_LEVEL)}"
                          f"; allowed: {', '.join(TOP_LEVEL)}")
    # Interpolations may point across sections: resolve them on the whole tree first.
    try:
        cfg = OmegaConf.to_container(OmegaConf.create(cfg), resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{getattr(err, 'full_key', '') or 'config'}: {_first_line(err)}") \
            from None
    out: dict[str, Any] = {}
    for f in fields(RunConfig):
        if f.name in SCHEMA:
            section = _typed(f.name, SCHEMA[f.name], cfg.get(f.name))
            out[f.name] = _drop_unset(section, SCHEMA[f.name]) if f.name in ("model",
                                                                            "optim") else section
        elif f.name == "data":
            out["data"] = _check_data(cfg.get("data", {"dataset": "ptb"}))
        else:
            default = f.default if f.default is not MISSING else f.default_factory()
            out[f.name] = copy.deepcopy(cfg.get(f.name, default))
    for key in ("task",):
        if not isinstance(out[key], dict):
            raise ConfigError(f"config section {key} must be a mapping, got {out[key]!r}")
    if not isinstance(out["seed"], int) or isinstance(out["seed"], bool) or out["seed"] < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {out['seed']!r}")
    _check_trainer(out["trainer"])
    if out.get("study") is None:
        out.pop("study")
    return out


# ---------------------------------------------------------------- saving
def to_yaml(cfg: dict[str, Any]) -> str:
    """The composed config as YAML (what ``config.yaml`` holds and ``--print-config`` shows)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)


def save_config(cfg: dict[str, Any], folder: str | Path, *, only_if_changed: bool = False,
                ) -> Path:
    """Writes ``config.yaml`` into a run folder (atomically); returns its path.

    With ``only_if_changed``, an existing file that holds the same config is left untouched
    (resuming a finished run changes no file).
    """
    import os
    import tempfile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.yaml"
    if only_if_changed and target.is_file():
        try:
            if yaml.safe_load(target.read_text()) == yaml.safe_load(to_yaml(cfg)):
                return target
        except (OSError, yaml.YAMLError):
            pass
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".config.", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"# rnnbench fit {target}\n")
            fh.write(to_yaml(cfg))
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = [
    "CheckpointConfig", "ConfigError", "LoggingConfig", "ModelConfig", "OptimConfig",
    "RunConfig", "TrainerConfig", "compose", "did_you_mean", "load_config", "parse_override",
    "save_config", "to_yaml", "validate_config",
]
