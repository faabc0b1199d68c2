"""Search spaces: one distribution per hyper-parameter, per-cell overrides, config patching."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rnnbench.config import MODEL_KEYS, OPTIM_KEYS, TASK_KEYS_FROM_MODEL, ConfigError

# Short names a study file may use instead of a ``section.key`` path.
ALIASES: dict[str, str] = {
    "lr": "optim.lr",
    "optimizer": "optim.optimizer",
    "momentum": "optim.momentum",
    "weight_decay": "optim.weight_decay",
    "clip": "optim.clip",
    "scheduler": "optim.scheduler",
    "hidden_size": "model.hidden_size",
    "param_budget": "model.param_budget",
    "dropout": "model.dropout",
    "tbptt": "model.tbptt",
    "embedding_dropout": "model.embedding_dropout",
    "embedding_size": "model.embedding_size",
    "bptt": "data.bptt",
    "batch_size": "data.batch_size",
    # variant axes: named here only to refuse them with a clear message
    "cell": "model.cell",
    "num_layers": "model.num_layers",
    "bidirectional": "model.bidirectional",
}
# Paths whose values are whole numbers: ``{low: 20, high: 70}`` means integers there.
INT_PATHS = {
    "model.hidden_size", "model.param_budget", "model.tbptt", "model.embedding_size",
    "data.bptt", "data.batch_size", "data.eval_batch_size",
}
# The variant axes: set by ``study.variants``, never searched.
VARIANT_PATHS = {"model.cell", "model.num_layers", "model.bidirectional"}
# What every variant must share for a fair comparison: no per-variant override may touch it.
BUDGET_PATHS = {
    "model.param_budget", "trainer.max_epochs", "trainer.max_steps", "trainer.max_time",
    "trainer.limit_train_batches",
}
SECTIONS = ("data", "model", "optim", "trainer", "task")
KINDS = ("float", "int", "categorical", "fixed")


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its Optuna name, the config path it sets and its distribution.

    ``kind`` is ``float`` / ``int`` (``low``, ``high``, ``log``, ``step``), ``categorical``
    (``choices``) or ``fixed`` (``value``: set in the config, not searched).
    """

    name: str
    path: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    value: Any = None

    @property
    def searched(self) -> bool:
        return self.kind != "fixed"

    def distribution(self):
        """The Optuna distribution (``None`` for a fixed value)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "float":
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        if self.kind == "categorical":
            return CategoricalDistribution(self.choices)
        return None

    def suggest(self, trial) -> Any:
        """Draws (or, on a retried trial, re-reads) this parameter from an Optuna trial."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log,
                                       step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        return copy.deepcopy(self.value)

    def grid_values(self) -> list[Any]:
        """Every value of a grid axis; floats must be listed as choices."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.kind == "float" and self.step:
            n = int(round((self.high - self.low) / self.step))
            return [self.low + i * self.step for i in range(n + 1)]
        raise ConfigError(
            f"search space: {self.name} is a continuous range, which a grid sampler cannot "
            "enumerate; give it as a list of values (e.g. lr: [0.001, 0.01]) or a step"
        )

    def extremes(self) -> list[Any]:
        """The values a trial can draw that are most likely to be invalid: both ends of a
        range (the top as Optuna rounds it to the step) and every choice."""
        if self.kind == "fixed":
            return [copy.deepcopy(self.value)]
        if self.kind == "categorical":
            return list(self.choices)
        top = self.high
        if self.step:
            top = self.low + int((self.high - self.low) // self.step) * self.step
        return [self.low, top] if top != self.low else [self.low]

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        if self.kind == "fixed":
            return f"= {self.value}"
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step else ""
        return f"[{self.low}, {self.high}]{scale}{step}"


@dataclass
class SearchSpace:
    """The hyper-parameters of one variant, in the order the study file lists them."""

    params: dict[str, Param] = field(default_factory=dict)

    @property
    def searched(self) -> list[Param]:
        return [p for p in self.params.values() if p.searched]

    def suggest(self, trial) -> dict[str, Any]:
        """``{name: value}`` for every parameter (fixed ones included)."""
        return {name: p.suggest(trial) for name, p in self.params.items()}

    def distributions(self) -> dict[str, Any]:
        return {p.name: p.distribution() for p in self.searched}

    def grid(self) -> dict[str, list[Any]]:
        return {p.name: p.grid_values() for p in self.searched}

    def apply(self, cfg: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``cfg`` with each value written at its parameter's config path."""
        out = copy.deepcopy(cfg)
        for name, value in values.items():
            param = self.params.get(name)
            path = param.path if param is not None else resolve_path(name)
            set_path(out, path, value)
        return out


def resolve_path(key: str) -> str:
    """``"lr"`` -> ``"optim.lr"``; ``"optim.lr"`` stays. Raises for unknown names."""
    path = ALIASES.get(key, key)
    if "." not in path:
        raise ConfigError(
            f"search space: unknown hyper-parameter {key!r}; write a config path such as "
            f"optim.lr or model.dropout, or one of the short names: {', '.join(sorted(ALIASES))}"
        )
    section, _, rest = path.partition(".")
    if section not in SECTIONS:
        raise ConfigError(
            f"search space: {key!r} points into section {section!r}; searchable sections are "
            f"{', '.join(SECTIONS)}"
        )
    top = rest.split(".")[0]
    if section == "model" and top not in MODEL_KEYS | TASK_KEYS_FROM_MODEL:
        raise ConfigError(
            f"search space: model has no option {top!r}; model options: "
            f"{', '.join(sorted(MODEL_KEYS | TASK_KEYS_FROM_MODEL))}"
        )
    if section == "optim" and top not in OPTIM_KEYS:
        raise ConfigError(
            f"search space: optim has no option {top!r}; optim options: "
            f"{', '.join(sorted(OPTIM_KEYS))}"
        )
    if path in VARIANT_PATHS:
        raise ConfigError(
            f"search space: {key!r} is a variant axis; list its values under study.variants "
            "(cells, num_layers, bidirectional) so every variant gets its own equal budget"
        )
    return path


def set_path(cfg: dict[str, Any], path: str, value: Any) -> None:
    node = cfg
    parts = path.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def get_path(cfg: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _number(key: str, what: str, value: Any) -> float | int:
    # PyYAML reads 1e-4 (no dot) as a string: accept it as the number it means.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"search space: {key}.{what} must be a number, got {value!r}")


def _check_choice(key: str, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(
        f"search space: {key} choices must be numbers, strings, booleans or null (Optuna "
        f"stores them as such), got {value!r}; search nested options through their own path, "
        "e.g. optim.scheduler.factor"
    )


def parse_param(key: str, raw: Any) -> Param | None:
    """One entry of a ``space:`` mapping -> :class:`Param` (``None`` removes the entry).

    Accepted forms::

        lr: {low: 1.0e-4, high: 1.0e-1, log: true}      # float, log-uniform
        bptt: {low: 20, high: 70, step: 5}               # int (bptt is a whole number)
        dropout: {type: float, low: 0, high: 0.5}
        optimizer: [adam, sgd]                           # categorical
        optimizer: {choices: [adam, sgd]}
        clip: 5.0                                        # fixed, not searched
        dropout: null                                    # (in an override) drop the entry
    """
    if raw is None:
        return None
    path = resolve_path(key)
    if isinstance(raw, (list, tuple)):
        raw = {"choices": list(raw)}
    if not isinstance(raw, Mapping):
        return Param(key, path, "fixed", value=raw)
    allowed = {"type", "low", "high", "log", "step", "choices", "value"}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(
            f"search space: {key} has unknown field(s) {sorted(unknown)}; use "
            "low/high/log/step (ranges), choices (a list) or value (fixed), plus an "
            "optional type: float|int|categorical|fixed"
        )
    kind = raw.get("type")
    if kind is None:
        if "value" in raw:
            kind = "fixed"
        elif "choices" in raw:
            kind = "categorical"
        elif "low" in raw or "high" in raw:
            whole = path in INT_PATHS and not isinstance(raw.get("low"), float)
            kind = "int" if whole else "float"
        else:
            raise ConfigError(
                f"search space: {key} needs low and high (a range), choices (a list) or value"
            )
    if kind == "uniform":
        kind = "float"
    if kind == "loguniform":
        kind, raw = "float", {**raw, "log": True}
    if kind not in KINDS:
        raise ConfigError(f"search space: {key}.type must be one of {', '.join(KINDS)}, "
                          f"got {kind!r}")
    if kind == "fixed":
        return Param(key, path, "fixed", value=raw.get("value"))
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"search space: {key}.choices must be a non-empty list")
        return Param(key, path, "categorical", choices=tuple(_check_choice(key, c)
                                                             for c in choices))
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"search space: {key} is a range and needs both low and high")
    low, high = _number(key, "low", raw["low"]), _number(key, "high", raw["high"])
    step = None if raw.get("step") is None else _number(key, "step", raw["step"])
    log = bool(raw.get("log", False))
    if not low <= high:
        raise ConfigError(f"search space: {key}.low ({low}) must not exceed high ({high})")
    if log and low <= 0:
        raise ConfigError(f"search space: {key} is log-scaled, so low must be > 0 (got {low})")
    if log and step is not None:
        raise ConfigError(f"search space: {key} cannot be both log-scaled and stepped")
    if kind == "int":
        for what, v in (("low", low), ("high", high), ("step", step)):
            if v is not None and not float(v).is_integer():
                raise ConfigError(f"search space: {key}.{what} must be a whole number for an "
                                  f"integer parameter, got {v}")
        return Param(key, path, "int", low=int(low), high=int(high), log=log,
                     step=None if step is None else int(step))
    if not all(math.isfinite(float(v)) for v in (low, high)):
        raise ConfigError(f"search space: {key} bounds must be finite")
    return Param(key, path, "float", low=float(low), high=float(high), log=log,
                 step=None if step is None else float(step))


def _merge_raw(base: Any, over: Any) -> Any:
    # A mapping patches a range ({high: 0.01} keeps low and log); a new list, value or
    # anything else replaces the entry.
    if isinstance(base, Mapping) and isinstance(over, Mapping) and not (
        {"choices", "value", "type"} & set(over)
    ):
        return {**base, **over}
    return over


def build_space(
    base: Mapping[str, Any] | None,
    overrides: list[tuple[str, Mapping[str, Any]]] = (),
    *,
    variant: str = "",
) -> SearchSpace:
    """Resolves one variant's space: the study's ``space`` patched by its overrides in order.

    An override entry that is a mapping is merged into the base entry (``{high: 0.01}`` keeps
    the base ``low`` and ``log``); a list or scalar replaces it; ``null`` removes it.

    Raises:
        ConfigError: A malformed entry, or an override touching what all variants share.
    """
    raw: dict[str, Any] = dict(base or {})
    for where, over in overrides:
        for key, value in over.items():
            path = resolve_path(key)
            if path in BUDGET_PATHS:
                raise ConfigError(
                    f"study.overrides.{where}: {key} cannot differ between variants; a fair "
                    "comparison gives every variant the same parameter budget and the same "
                    "epochs/steps (set it once in the study file)"
                )
            # The same parameter may be written as an alias in one place and a path in another.
            same = [k for k in raw if resolve_path(k) == path]
            name = same[0] if same else key
            raw[name] = _merge_raw(raw.get(name), value) if name in raw else value
    space = SearchSpace()
    seen: dict[str, str] = {}
    for key, value in raw.items():
        param = parse_param(key, value)
        if param is None:
            continue
        if param.path in seen:
            raise ConfigError(
                f"search space: {key} and {seen[param.path]} both set {param.path}; keep one"
            )
        seen[param.path] = key
        space.params[key] = param
    if not space.searched:
        where = f" of variant {variant}" if variant else ""
        raise ConfigError(
            f"the search space{where} is empty: study.space must give at least one "
            "hyper-parameter to search, e.g. lr: {low: 1.0e-4, high: 1.0e-1, log: true}"
        )
    return space


__all__ = ["ALIASES", "Param", "SearchSpace", "build_space", "get_path", "parse_param",
           "resolve_path", "set_path"]
