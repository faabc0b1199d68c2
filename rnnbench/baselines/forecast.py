"""Forecasting baselines: the last value again (persistence), and linear AR(p) per series."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch

from rnnbench.baselines.base import (
    Baseline,
    BaselineUnfit,
    TaskInfo,
    last_steps,
    stack_batches,
)
from rnnbench.baselines.registry import register_baseline


class _Forecast(Baseline):
    """Baselines for tasks whose target is the next value of the input series."""

    tasks = ("anomaly", "regression")

    @classmethod
    def check_task(cls, task: TaskInfo) -> str | None:
        if not task.forecasting:
            return (f"baseline {cls.name!r} forecasts the next value of the inputs; the "
                    f"{task.name!r} task here does not predict it (anomaly, or regression "
                    "with task.residual: true)")
        return None


@register_baseline("persistence")
class Persistence(_Forecast):
    """Predicts that every series keeps its last value: ``x_{t+1} = x_t``."""

    summary = "persistence: the next value is the last one"

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        pass  # nothing to learn

    def predict(self, batch: Any) -> torch.Tensor:
        return last_steps(batch.inputs, batch.mask, 1)[:, 0].float()  # (B, D)


@register_baseline("ar")
class AutoRegressive(_Forecast):
    """Linear AR(p) with an intercept, one per input series, fitted by least squares on the
    training windows: ``x_{t+1,d} = c_d + sum_i a_{d,i} x_{t+1-i,d}``.

    Args:
        order: ``p``, the number of past values. Not given: chosen on the validation split
            among :attr:`select`'s candidates (those that fit in the window).
    """

    select = {"order": (1, 2, 3, 5, 10, 20, 30)}
    summary = "linear AR(p) per series, least squares on the training windows"

    def __init__(self, order: int = 1) -> None:
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"ar: order must be a positive integer, got {order!r}")
        self.order = order
        self.coef: torch.Tensor | None = None  # (D, p + 1): p lags (oldest first), intercept

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        xs, ys, ms = stack_batches(train)
        p = self.order
        lags = torch.cat([last_steps(x, m, p) for x, m in zip(xs, ms)]).double()  # (N, p, D)
        y = torch.cat(ys).double().reshape(len(lags), -1)  # (N, D)
        if y.shape[1] != lags.shape[2]:
            raise BaselineUnfit(f"ar: targets have {y.shape[1]} values per window, inputs "
                                f"{lags.shape[2]}; AR forecasts each input series")
        if len(lags) < p + 1:
            raise BaselineUnfit(f"ar: {len(lags)} training windows cannot fit {p + 1} "
                                "coefficients per series")
        coef = []
        for d in range(y.shape[1]):
            design = np.column_stack([lags[:, :, d].numpy(), np.ones(len(lags))])  # (N, p + 1)
            # Least squares with the minimum-norm solution: a constant series is fine.
            sol, *_ = np.linalg.lstsq(design, y[:, d].numpy(), rcond=None)
            coef.append(sol)
        self.coef = torch.tensor(np.stack(coef))  # (D, p + 1)

    def predict(self, batch: Any) -> torch.Tensor:
        lags = last_steps(batch.inputs, batch.mask, self.order).double()  # (B, p, D)
        w = self.coef.to(lags.device)  # (D, p + 1)
        pred = torch.einsum("bpd,dp->bd", lags, w[:, :-1]) + w[:, -1]  # (B, D)
        return pred.float()

    @property
    def num_parameters(self) -> int:
        return 0 if self.coef is None else int(self.coef.numel())

    def options(self) -> dict[str, Any]:
        return {"order": self.order}

    def describe(self) -> str:
        return f"linear AR({self.order}) per series, least squares on the training windows"


__all__ = ["AutoRegressive", "Persistence"]
