"""Study files: the run config plus a ``study:`` section (variants, space, budget, ...).

The types a study file becomes (:class:`Variant`, :class:`StudySpec`); the parse that checks
every option lives in :mod:`rnnbench.studies.spec_parse` and is re-exported here
(``from rnnbench.studies.spec import load_study`` keeps working).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.config import ConfigError
from rnnbench.studies.space import SearchSpace, build_space, get_path

if TYPE_CHECKING:  # at run time module __getattr__ (below) loads them on first use
    from rnnbench.studies.spec_parse import load_study, parse_study, parse_variants

STUDY_KEYS = (
    "name", "description", "variants", "trials_per_variant", "space", "overrides", "sampler",
    "pruner", "metric", "direction", "test_metric", "seeds", "storage", "retries",
    "heartbeat_interval", "grace_period", "paper", "baselines", "population",
    "final_population",
)
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = {"minimize": "minimize", "min": "minimize", "maximize": "maximize",
              "max": "maximize"}
SPEC_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Variant:
    """One architecture of the comparison: a cell, a depth and a direction."""

    cell: str
    num_layers: int = 1
    bidirectional: bool = False

    @property
    def name(self) -> str:
        """``lstm``, ``lstm-l2``, ``gru-bi``, ``gru-l3-bi``."""
        out = self.cell
        if self.num_layers != 1:
            out += f"-l{self.num_layers}"
        if self.bidirectional:
            out += "-bi"
        return out

    def model(self) -> dict[str, Any]:
        return {"cell": self.cell, "num_layers": self.num_layers,
                "bidirectional": self.bidirectional}


@dataclass
class StudySpec:
    """A parsed, validated study file.

    Attributes:
        name: Study name: the Optuna studies are ``{name}/{variant}`` and
            ``{name}/{variant}/final``; outputs go to ``{logging.dir}/{name}``.
        config: The composed run config every trial starts from (no ``study`` key).
        variants: The architectures compared, each with the same budget.
        space: The raw ``study.space`` mapping (see :func:`rnnbench.studies.space.parse_param`).
        overrides: Raw per-cell / per-variant patches of ``space``.
        trials_per_variant: Finished trials (complete + pruned + failed) each variant gets.
        sampler: ``{"name": "tpe"|"random"|"grid", "seed": int, ...options}``.
        pruner: ``{"name": "median"|"hyperband"|"none", ...options}``.
        metric: The validation metric (``val/nll``); ``None`` until the task is known.
        direction: ``minimize`` or ``maximize``; ``None`` until the task is known.
        test_metric: What the final re-runs report from the test split (``test/f1_pa``);
            ``None``: the test counterpart of ``metric`` (``val/nll`` -> ``test/nll``).
        seeds: Seeds the best configuration of each variant is re-run with (``seeds: K`` in
            the file means the K seeds after the config's ``seed``, which the search uses).
        storage: Storage URL from the file, or ``None`` (chosen by worker count).
        retries: How many times a trial whose worker died is run again.
        heartbeat_interval: Seconds between heartbeats of a running trial.
        grace_period: Seconds without a heartbeat before a trial is declared lost.
        baselines: Models without recurrence scored beside the variants, ``[{"name",
            "options"}]`` (:func:`rnnbench.studies.baselines.parse_baselines`).
        population: Search trials of one variant a worker trains together as one batched
            model (:mod:`rnnbench.studies.population`; ``1``: solo; ``auto``: memory-sized),
            or per variant name (missing: ``1``).
        final_population: Final re-runs (seeds) of one variant trained together, per
            variant name (missing: ``1``, solo).
    """

    name: str
    config: dict[str, Any]
    variants: list[Variant]
    space: dict[str, Any]
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    trials_per_variant: int = 10
    sampler: dict[str, Any] = field(default_factory=lambda: {"name": "tpe", "seed": 0})
    pruner: dict[str, Any] = field(default_factory=lambda: {"name": "median"})
    metric: str | None = None
    direction: str | None = None
    test_metric: str | None = None
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    storage: str | None = field(default=None, repr=False)  # may hold a password
    retries: int = 1
    heartbeat_interval: int = 20
    grace_period: int = 90
    description: str = ""
    source: str | None = None
    paper: dict[str, str] | None = None
    baselines: list[dict[str, Any]] = field(default_factory=list)
    population: int | str | dict[str, int | str] = 1
    final_population: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._spaces: dict[str, SearchSpace] = {}

    # ------------------------------------------------------------------ lookups
    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"unknown variant {name!r}; this study compares "
                          f"{', '.join(v.name for v in self.variants)}")

    def space_for(self, variant: Variant | str) -> SearchSpace:
        """The search space of one variant: ``space`` patched by its cell's, then its own,
        entry of ``overrides``."""
        v = self.variant(variant) if isinstance(variant, str) else variant
        if v.name not in self._spaces:
            patches = [(key, self.overrides[key]) for key in (v.cell, v.name)
                       if key in self.overrides]
            if v.cell == v.name and len(patches) == 2:
                patches = patches[:1]
            self._spaces[v.name] = build_space(self.space, patches, variant=v.name)
        return self._spaces[v.name]

    @property
    def output_dir(self) -> Path:
        """``{logging.dir}/{name}``: trial logs, worker logs, results, default storage."""
        return Path(self.config.get("logging", {}).get("dir", "runs")) / self.name

    @property
    def max_epochs(self) -> int | None:
        value = get_path(self.config, "trainer.max_epochs")
        return int(value) if isinstance(value, int) and value > 0 else None

    # ------------------------------------------------------------------ (de)serialising
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, stored in the study storage so remote workers need no file."""
        return {
            "version": SPEC_VERSION,
            "name": self.name,
            "description": self.description,
            "config": copy.deepcopy(self.config),
            "variants": [v.model() for v in self.variants],
            "space": copy.deepcopy(self.space),
            "overrides": copy.deepcopy(self.overrides),
            "trials_per_variant": self.trials_per_variant,
            "sampler": dict(self.sampler),
            "pruner": dict(self.pruner),
            "metric": self.metric,
            "direction": self.direction,
            "test_metric": self.test_metric,
            "seeds": list(self.seeds),
            "retries": self.retries,
            "heartbeat_interval": self.heartbeat_interval,
            "grace_period": self.grace_period,
            "source": self.source,
            "paper": dict(self.paper) if self.paper else None,
            "baselines": copy.deepcopy(self.baselines),
            "population": self.population,
            "final_population": dict(self.final_population),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudySpec:
        if int(data.get("version", 0)) > SPEC_VERSION:
            raise ConfigError(
                f"study {data.get('name')!r} was written by a newer rnnbench (spec version "
                f"{data.get('version')}); upgrade rnnbench on this machine"
            )
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            config=copy.deepcopy(data["config"]),
            variants=[Variant(**v) for v in data["variants"]],
            space=copy.deepcopy(data["space"]),
            overrides=copy.deepcopy(data.get("overrides") or {}),
            trials_per_variant=int(data["trials_per_variant"]),
            sampler=dict(data["sampler"]),
            pruner=dict(data["pruner"]),
            metric=data.get("metric"),
            direction=data.get("direction"),
            test_metric=data.get("test_metric"),
            seeds=[int(s) for s in data.get("seeds", [])],
            retries=int(data.get("retries", 1)),
            heartbeat_interval=int(data.get("heartbeat_interval", 20)),
            grace_period=int(data.get("grace_period", 90)),
            source=data.get("source"),
            paper=data.get("paper"),
            baselines=copy.deepcopy(data.get("baselines") or []),
            population=data.get("population", 1),
            final_population=dict(data.get("final_population") or {}),
        )

    def fingerprint(self) -> dict[str, Any]:
        """What must not change when a study is resumed: everything that shapes a trial.

        Hardware (accelerator, devices), logging, the storage, the number of trials (it may
        grow), the seeds of the final re-runs (they may be added to), the variants (new
        ones get their own budget) and the baselines (scored apart) are left out.
        """
        cfg = copy.deepcopy(self.config)
        cfg.pop("logging", None)
        cfg.pop("name", None)
        cfg.pop("description", None)
        cfg.pop("checkpoint", None)
        for key in ("accelerator", "devices", "strategy", "num_nodes", "precision"):
            cfg.get("trainer", {}).pop(key, None)
        return {
            "config": cfg,
            "space": self.space,
            "overrides": self.overrides,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "metric": self.metric,
            "direction": self.direction,
        }


_PARSE = ("load_study", "parse_study", "parse_variants")


def __getattr__(name: str) -> Any:
    """The parse's functions, still importable from here (the parse imports this module's
    types, so it is loaded on first use rather than at import)."""
    if name in _PARSE:
        from rnnbench.studies import spec_parse

        return getattr(spec_parse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["DIRECTIONS", "PRUNERS", "SAMPLERS", "STUDY_KEYS", "StudySpec", "Variant",
           "load_study", "parse_study", "parse_variants"]
