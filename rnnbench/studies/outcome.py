"""How a trial ended and what is recorded with it, for solo trials and population members."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnbench.studies.ledger import ERROR


@dataclass
class TrialOutcome:
    """How one trial ended: ``state`` is COMPLETE, PRUNED or FAIL, ``reason`` says why."""

    variant: str
    kind: str
    number: int
    state: str
    value: float | None = None
    reason: str = ""


def score_trial(metric: str, result: Any, value: float | None, best_epoch: int | None,
                out: TrialOutcome, attrs: dict[str, Any]) -> None:
    """Records a finished run as its trial: ``value`` (the best epoch's ``metric``) and the
    metrics kept with it, or the reason it has none. Solo trials and population members
    both go through here, so their stored attributes are the same."""
    metrics = {k: v for k, v in result.metrics.items()
               if k.startswith(("val/", "test/")) and math.isfinite(v)}
    if value is not None and math.isfinite(value) and metric in metrics:
        # The run's logged metric is its last epoch's; the trial's value (and the
        # checkpoint the test split is scored on) is its best epoch's.
        metrics[f"{metric}_last"] = metrics[metric]
        metrics[metric] = float(value)
    attrs.update(metrics=metrics, wall_time_s=round(result.wall_time_s, 3),
                 num_parameters=result.num_parameters, hidden_size=result.hidden_size,
                 best_epoch=best_epoch)
    if value is None or not math.isfinite(value):
        out.reason = f"{metric} was never logged as a finite number"
        attrs.update(fail_kind=ERROR, fail_reason=out.reason)
    else:
        out.state, out.value = "COMPLETE", float(value)


__all__ = ["TrialOutcome", "score_trial"]
