"""Baselines: models with no recurrence, scored with the same data, split and metric as cells.

Built-ins are registered by the explicit imports below; add one with
``@register_baseline("name")`` on a :class:`Baseline` subclass.
"""

from rnnbench.baselines import constant as _constant  # noqa: F401  (registers the built-ins)
from rnnbench.baselines import forecast as _forecast  # noqa: F401
from rnnbench.baselines import ngram as _ngram  # noqa: F401
from rnnbench.baselines.base import Baseline, BaselineUnfit, TaskInfo
from rnnbench.baselines.constant import KeyFrequency, Mean, Memoryless
from rnnbench.baselines.forecast import AutoRegressive, Persistence
from rnnbench.baselines.ngram import KneserNey, NGramModel, Unigram
from rnnbench.baselines.registry import (
    UnknownBaselineError,
    get_baseline,
    list_baselines,
    register_baseline,
)

__all__ = [
    "AutoRegressive",
    "Baseline",
    "BaselineUnfit",
    "KeyFrequency",
    "KneserNey",
    "Mean",
    "Memoryless",
    "NGramModel",
    "Persistence",
    "TaskInfo",
    "Unigram",
    "UnknownBaselineError",
    "get_baseline",
    "list_baselines",
    "register_baseline",
]
