"""Optuna samplers and pruners of a study, and the seed each trial samples with."""

from __future__ import annotations

import warnings
import zlib
from typing import TYPE_CHECKING

import optuna

from rnnbench.config import ConfigError

if TYPE_CHECKING:  # spec.py imports this module to check sampler and pruner options
    from rnnbench.studies.spec import StudySpec, Variant


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and experimental-feature warnings stay out of logs."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


quiet_optuna()


class _GridSampler(optuna.samplers.GridSampler):
    # The budget decides when a variant is done; Study.stop() outside optimize() would raise.
    def after_trial(self, study, trial, state, values) -> None:  # noqa: D102
        return None


def trial_seed(spec: StudySpec, variant: Variant, number: int) -> int:
    """The sampler seed of one trial: fixed by (study seed, variant, trial number), so a
    study is reproducible with one worker and no two workers share a random stream."""
    base = int(spec.sampler.get("seed", 0) or 0)
    return (base * 1_000_003 + zlib.crc32(variant.name.encode()) + number) % (2**31 - 1)


def make_sampler(spec: StudySpec, variant: Variant, number: int):
    """A fresh Optuna sampler for one trial of ``variant`` (see :func:`trial_seed`)."""
    opts = {k: v for k, v in spec.sampler.items() if k not in ("name", "seed")}
    name = spec.sampler["name"]
    try:
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=trial_seed(spec, variant, number), **opts)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=trial_seed(spec, variant, number), **opts)
        # Every worker must shuffle the grid the same way: one seed for the whole variant.
        return _GridSampler(spec.space_for(variant).grid(),
                            seed=int(spec.sampler.get("seed", 0) or 0), **opts)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"study.sampler ({name}): {err}") from None


def make_pruner(spec: StudySpec):
    """The pruner of the search studies (each variant is pruned against itself only)."""
    opts = {k: v for k, v in spec.pruner.items() if k != "name"}
    name = spec.pruner["name"]
    try:
        if name == "none":
            return optuna.pruners.NopPruner()
        if name == "median":
            return optuna.pruners.MedianPruner(**opts)
        if "max_resource" not in opts and spec.max_epochs:
            opts["max_resource"] = spec.max_epochs  # steps reported are epochs 1..max_epochs
        return optuna.pruners.HyperbandPruner(**opts)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"study.pruner ({name}): {err}") from None


__all__ = ["make_pruner", "make_sampler", "quiet_optuna", "trial_seed"]
