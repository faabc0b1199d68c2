"""Typing and checking a composed config against the schema; saving it as config.yaml."""

from __future__ import annotations

import copy
import difflib
import inspect
import typing
from collections.abc import Sequence
from dataclasses import MISSING, field, fields, make_dataclass
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from rnnbench.config.schema import (
    SCHEMA,
    TOP_LEVEL,
    ConfigError,
    Rule,
    RunConfig,
    TrainerConfig,
    _show,
    positive,
)


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
    _check_rules(obj, cls, f"{section}." if section else "")
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


# Lightning.Trainer's counting arguments: (smallest int allowed, None allowed, what it means).
# Checked here, as Lightning checks some only mid-run (check_val_every_n_epoch=0 divides by
# zero at the first epoch's end) and others with a traceback.
_TRAINER_COUNTS = {
    "max_steps": (-1, True, "-1: no limit"),
    "min_steps": (0, True, ""),
    "min_epochs": (0, True, ""),
    "check_val_every_n_epoch": (1, True, "null: by val_check_interval alone"),
    "log_every_n_steps": (1, True, ""),
    "accumulate_grad_batches": (1, False, ""),
    "num_sanity_val_steps": (-1, True, "-1: all"),
    "reload_dataloaders_every_n_epochs": (0, False, ""),
}
# Batches: an int is a count, a float a fraction of the loader (Lightning's rule).
_TRAINER_FRACTIONS = ("limit_train_batches", "limit_val_batches", "limit_test_batches",
                      "limit_predict_batches", "overfit_batches", "val_check_interval")


def _check_trainer_values(trainer: dict[str, Any]) -> None:
    for key, (low, none_ok, note) in _TRAINER_COUNTS.items():
        if key not in trainer:
            continue
        v = trainer[key]
        if v is None and none_ok:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(
                f"trainer.{key} must be an integer >= {low}{' or null' if none_ok else ''}"
                f"{' (' + note + ')' if note else ''}, got {v!r}")
    for key in _TRAINER_FRACTIONS:
        if key not in trainer or trainer[key] is None:
            continue
        v = trainer[key]
        ok = not isinstance(v, bool) and (
            (isinstance(v, int) and v >= 0) or (isinstance(v, float) and 0.0 <= v <= 1.0))
        if not ok:
            raise ConfigError(f"trainer.{key} must be a number of batches (an integer >= 0) or "
                              f"a fraction of them (a float from 0.0 to 1.0), got {v!r}")


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
    _check_trainer_values(trainer)


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


# The top level's plain fields (not sections, not the free-form data/task/study mappings),
# as a dataclass of their own so they go through the same typing and rules as a section.
_TOP_SCALARS = tuple(f.name for f in fields(RunConfig)
                     if f.name not in SCHEMA and f.name not in ("data", "task", "study"))
_TopScalars = make_dataclass("_TopScalars", [
    (f.name, _omegaconf_type(typing.get_type_hints(RunConfig)[f.name]),
     field(default=f.default, metadata=f.metadata))
    for f in fields(RunConfig) if f.name in _TOP_SCALARS])


_DATA_RULES: dict[str, tuple[Rule, ...]] = {
    "batch_size": (positive,), "eval_batch_size": (positive,), "bptt": (positive,),
    "limit_tokens": (positive,), "limit_pieces": (positive,),
    "limit_train_pieces": (positive,), "T": (positive,),
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
        elif f.name not in _TOP_SCALARS:
            default = f.default if f.default is not MISSING else f.default_factory()
            out[f.name] = copy.deepcopy(cfg.get(f.name, default))
    # seed, name, description, flush_denormal: typed and ruled like the sections' fields
    out.update(_typed("", _TopScalars, {k: cfg[k] for k in _TOP_SCALARS if k in cfg}))
    for key in ("task",):
        if not isinstance(out[key], dict):
            raise ConfigError(f"config section {key} must be a mapping, got {out[key]!r}")
    _check_trainer(out["trainer"])
    _check_tensorboard(out["logging"])
    if out.get("study") is None:
        out.pop("study")
    return out


def _check_tensorboard(logging: dict[str, Any]) -> None:
    """TensorBoard is an extra: asking for its logs without it installed is a config error."""
    import importlib.util

    if logging.get("tensorboard") and not any(
            importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise ConfigError('logging.tensorboard: true needs TensorBoard, which is not '
                          'installed: pip install "rnnbench[tensorboard]", or set '
                          "logging.tensorboard=false (metrics.csv holds the same metrics)")


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
    from rnnbench.atomic import write_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.yaml"
    if only_if_changed and target.is_file():
        try:
            if yaml.safe_load(target.read_text()) == yaml.safe_load(to_yaml(cfg)):
                return target
        except (OSError, yaml.YAMLError):
            pass
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(f"# rnnbench fit {target}\n")
            fh.write(to_yaml(cfg))

    write_atomic(target, write)
    return target
