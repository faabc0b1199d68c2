"""A Lightning callback that reports the validation metric to an Optuna trial and prunes."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import optuna

CONTINUE, PRUNE, NONFINITE, MISSING = 0, 1, 2, 3


class NonFiniteMetricError(FloatingPointError):
    """The validation metric became NaN or infinite: the trial has diverged."""


class MissingMetricError(ValueError):
    """The metric the study optimises was not logged by the task."""


class PruningCallback(L.Callback):
    """Reports ``monitor`` after every validation epoch and stops trials the pruner rejects.

    Works with manual optimisation (it only reads ``trainer.callback_metrics``) and under DDP:
    rank 0 alone talks to the study storage; its decision is broadcast so that every rank
    raises the same exception at the same epoch and none is left waiting in a collective.

    Args:
        trial: The Optuna trial, or ``None`` (ranks > 0, or a run that only tracks its best).
        monitor: Metric name as logged, e.g. ``val/nll``.
        direction: ``minimize`` or ``maximize``: which value is the best epoch's.

    Raises (from ``trainer.fit``):
        optuna.TrialPruned: The pruner stopped the trial.
        NonFiniteMetricError: The metric became NaN/inf (a diverged run: record it as FAIL).
        MissingMetricError: The task does not log ``monitor``.
    """

    def __init__(self, trial: optuna.Trial | None, monitor: str, *,
                 direction: str = "minimize") -> None:
        self.trial = trial
        self.monitor = monitor
        self.direction = direction
        self.history: dict[int, float] = {}  # epoch (1-based) -> metric
        self.pruned_at: int | None = None

    @property
    def best_epoch(self) -> int | None:
        if not self.history:
            return None
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(self.history, key=lambda e: (sign * self.history[e], e))  # ties: earliest

    @property
    def best_value(self) -> float | None:
        """The best reported value (the epoch a checkpoint callback would keep)."""
        epoch = self.best_epoch
        return None if epoch is None else self.history[epoch]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        decision, message = CONTINUE, ""
        if trainer.is_global_zero:
            decision, message = self._decide(trainer.callback_metrics, epoch)
        if trainer.world_size > 1:
            decision, message = trainer.strategy.broadcast((decision, message), src=0)
        if decision == PRUNE:
            self.pruned_at = epoch
            raise optuna.TrialPruned(message)
        if decision == NONFINITE:
            raise NonFiniteMetricError(message)
        if decision == MISSING:
            raise MissingMetricError(message)

    def _decide(self, metrics: dict[str, Any], epoch: int) -> tuple[int, str]:
        value = metrics.get(self.monitor)
        if value is None:
            logged = sorted(k for k in metrics if k.startswith("val/"))
            return MISSING, (f"the study metric {self.monitor} was not logged; this task logs "
                             f"{', '.join(logged) or 'no validation metric'}")
        value = float(value)
        if not math.isfinite(value):
            return NONFINITE, f"{self.monitor} became {value} at epoch {epoch}"
        if epoch in self.history:  # validated twice in one epoch: report the first only
            return CONTINUE, ""
        self.history[epoch] = value
        if self.trial is None:
            return CONTINUE, ""
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            return PRUNE, f"pruned after epoch {epoch} with {self.monitor} = {value:.6g}"
        return CONTINUE, ""


__all__ = ["MissingMetricError", "NonFiniteMetricError", "PruningCallback"]
