"""The run config of one trial: the study's config, its variant and its sampled values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.config import validate_config

if TYPE_CHECKING:
    from rnnbench.studies.spec import StudySpec, Variant

# The two kinds of trial: a search slot, or a final re-run of a variant's best with one seed.
SEARCH, FINAL = "search", "final"


def trial_config(spec: StudySpec, variant: Variant, values: dict[str, Any], *, seed: int,
                 kind: str = SEARCH) -> dict[str, Any]:
    """The run config of one trial: the study's config, the variant, the sampled values.

    Raises:
        ConfigError: A sampled value makes an invalid config.
    """
    cfg = spec.space_for(variant).apply(spec.config, values)
    cfg["model"] = {**cfg.get("model", {}), **variant.model()}
    cfg["seed"] = int(seed)
    cfg.setdefault("logging", {})["progress_bar"] = False
    ckpt = dict(cfg.get("checkpoint") or {})
    # Search trials are compared on their reported metric and need no files; final re-runs
    # keep their best epoch so that the test split is evaluated there.
    ckpt["enabled"] = kind == FINAL
    cfg["checkpoint"] = ckpt
    cfg.pop("description", None)
    validate_config(cfg)
    return cfg


def trial_dir(output_dir: Path, variant: Variant, kind: str, number: int, seed: int) -> Path:
    """A trial's run folder: ``trials/{variant}/{number}``, ``final/{variant}/{number}-seed{seed}``
    for a final re-run."""
    if kind == FINAL:
        return Path(output_dir) / "final" / variant.name / f"{number:04d}-seed{seed}"
    return Path(output_dir) / "trials" / variant.name / f"{number:04d}"


def all_values(spec: StudySpec, variant: Variant, params: dict[str, Any]) -> dict[str, Any]:
    """Searched values from ``params`` plus the fixed entries of the variant's space."""
    space = spec.space_for(variant)
    return {name: (params[name] if p.searched else copy.deepcopy(p.value))
            for name, p in space.params.items() if not p.searched or name in params}


__all__ = ["FINAL", "SEARCH", "all_values", "trial_config"]
