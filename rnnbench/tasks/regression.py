"""Sequence -> value regression: adding problem, forecasting, HAI-style anomaly detection."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from rnnbench.tasks.base import Task, last_valid


class RegressionTask(Task):
    """Reads a window and predicts a vector (the next value of a series, a sum, ...).

    Args:
        input_dim: Features per input step.
        output_dim: Features of the prediction.
        residual: Predict the change from the last input step (forecasting): needs
            ``output_dim == input_dim``.
        hidden_head: Width of a ReLU layer before the output (the HAI baseline uses none;
            0 disables it).
    """

    name = "regression"
    loss_name = "mse"
    monitor = "mse"

    def __init__(
        self, input_dim: int, output_dim: int = 1, residual: bool = False, hidden_head: int = 0
    ) -> None:
        super().__init__()
        if residual and output_dim != input_dim:
            raise ValueError("residual prediction needs output_dim == input_dim")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.residual = residual
        self.hidden_head = int(hidden_head)
        self.head: nn.Module | None = None
        self.bidirectional = False
        self._mae = nn.ModuleDict(
            {s: torchmetrics.MeanAbsoluteError() for s in ("train_", "val_", "test_")}
        )

    @property
    def input_size(self) -> int:
        return self.input_dim

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        self.bidirectional = bidirectional
        if self.hidden_head:
            self.head = nn.Sequential(
                nn.Linear(backbone_output_size, self.hidden_head),
                nn.ReLU(),
                nn.Linear(self.hidden_head, self.output_dim),
            )
        else:
            self.head = nn.Linear(backbone_output_size, self.output_dim)

    def unpack(self, batch):
        self._last_inputs = batch.inputs  # (B, T, D) the residual adds the last valid step
        return batch.inputs, batch.targets, batch.mask, {}

    def forward(self, y, mask, lengths):
        pred = self.head(last_valid(y, lengths, self.bidirectional))  # (B, out)
        if self.residual:
            pred = pred + last_valid(self._last_inputs, lengths, False)  # (B, D)
        return pred

    def loss(self, out, targets, mask):
        targets = targets.reshape(out.shape).to(out.dtype)  # (B, out)
        return F.mse_loss(out, targets), out.new_full((), float(out.shape[0]))  # (), ()

    def update_metrics(self, stage, out, targets, mask, extras):
        self._mae[stage + "_"].update(  # (B, out), (B, out)
            out.detach(), targets.reshape(out.shape).to(out.dtype)
        )

    def compute_metrics(self, stage):
        metric = self._mae[stage + "_"]
        return {"mae": metric.compute()} if metric.update_count else {}

    def reset_metrics(self, stage):
        self._mae[stage + "_"].reset()


class AnomalyTask(RegressionTask):
    """HAI-style anomaly detection: forecast the next value; the error is the anomaly score.

    Windows come as ``Batch(inputs (B, T, D), targets (B, D), labels (B,))``. The score of a
    window is the mean absolute prediction error over the sensors, smoothed by a moving
    average. Threshold rule: on each validation pass the threshold that maximises TaPR F1
    (:func:`rnnbench.tasks.tapr.tapr_threshold`: time-series aware precision and recall,
    Hwang et al. 2019, the HAI competitions' metric, among 200 quantiles of the validation
    scores from the median up) is chosen and kept with the model; the test windows are
    scored with it. Point-adjusted F1 is not used to choose it: it saturates at 1 on the
    data that pick the threshold. Logged: ``tapr_f1``, ``tap``, ``tar`` (TaPR), ``f1_pa``,
    ``precision_pa``, ``recall_pa`` (point-adjusted), ``f1`` (point-wise) and
    ``threshold``, all at that threshold.

    Args:
        input_dim: Sensors.
        smoothing: Moving-average window over consecutive scores.
        hidden_head: Width of a ReLU layer before the output (0: none).
        tapr_theta: TaPR's share of an attack (or an alarm) that must be covered to count.
        tapr_alpha: TaPR's weight of detection against portion scores.
        tapr_delta: TaPR's ambiguous section after each attack, in windows (steps).
    """

    name = "anomaly"

    def __init__(
        self, input_dim: int, smoothing: int = 10, hidden_head: int = 0,
        tapr_theta: float = 0.5, tapr_alpha: float = 0.5, tapr_delta: int = 0,
    ) -> None:
        super().__init__(input_dim, input_dim, residual=True, hidden_head=hidden_head)
        self.smoothing = int(smoothing)
        self.tapr_options = {"theta": float(tapr_theta), "alpha": float(tapr_alpha),
                             "delta": int(tapr_delta)}
        self._scores: dict[str, list[torch.Tensor]] = {"val": [], "test": []}
        self._labels: dict[str, list[torch.Tensor]] = {"val": [], "test": []}
        self.threshold: float | None = None

    # The threshold is part of the model: a checkpoint tested later must use the threshold
    # picked by the validation pass that chose that checkpoint, not the last epoch's.
    def get_extra_state(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        threshold = (state or {}).get("threshold")
        self.threshold = None if threshold is None else float(threshold)

    def unpack(self, batch):
        if batch.labels is None:
            raise ValueError(
                "the anomaly task needs Batch.labels (one 0/1 attack flag per window) to "
                "score windows; HAIWindows items carry them"
            )
        inputs, targets, mask, extras = super().unpack(batch)
        return inputs, targets, mask, {**extras, "labels": batch.labels}

    def update_metrics(self, stage, out, targets, mask, extras):
        super().update_metrics(stage, out, targets, mask, extras)
        if stage in self._scores:
            err = (out.detach() - targets.to(out.dtype)).abs().mean(-1)  # (B,)
            self._scores[stage].append(err.float().cpu())  # (B,)
            self._labels[stage].append(extras["labels"].detach().cpu())  # (B,)

    def compute_metrics(self, stage):
        metrics = super().compute_metrics(stage)
        if stage not in self._scores or not self._scores[stage]:
            return metrics
        from rnnbench.tasks import anomaly, tapr

        scores = anomaly.moving_average(  # (N,) one per window, in data-set order
            torch.cat(self._scores[stage]).numpy(), self.smoothing
        )
        labels = torch.cat(self._labels[stage]).numpy().astype(np.int64)  # (N,)
        if stage == "val" or self.threshold is None:
            if labels.any():
                self.threshold, _ = tapr.tapr_threshold(scores, labels, **self.tapr_options)
            else:
                self.threshold = float(np.quantile(scores, 0.99))
        pred = anomaly.threshold_predict(scores, self.threshold)
        pa = anomaly.range_metrics(pred, labels)
        point = anomaly.precision_recall_f1(pred, labels)
        ta = tapr.tapr(pred, labels, **self.tapr_options)
        values = {"tapr_f1": ta["f1"], "tap": ta["tap"], "tar": ta["tar"], "f1_pa": pa["f1"],
                  "precision_pa": pa["precision"], "recall_pa": pa["recall"],
                  "f1": point["f1"], "threshold": self.threshold}
        metrics.update({k: torch.tensor(float(v)) for k, v in values.items()})
        return metrics

    def reset_metrics(self, stage):
        super().reset_metrics(stage)
        if stage in self._scores:
            self._scores[stage].clear()
            self._labels[stage].clear()
