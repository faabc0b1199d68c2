"""Classification of whole sequences (digits row by row) and per step (copy memory)."""

from __future__ import annotations

import torch.nn.functional as F
import torchmetrics
from torch import nn

from rnnbench.tasks.base import Task, last_valid


class ClassificationTask(Task):
    """One label per sequence from the backbone's summary (last valid step)."""

    name = "classification"
    loss_name = "ce"
    monitor = "acc"
    mode = "max"

    def __init__(self, input_dim: int, num_classes: int) -> None:
        super().__init__()
        self.input_dim = int(input_dim)
        self.num_classes = int(num_classes)
        self.head: nn.Linear | None = None
        self.bidirectional = False
        self._acc = nn.ModuleDict(
            {
                s: torchmetrics.Accuracy(task="multiclass", num_classes=self.num_classes)
                for s in ("train_", "val_", "test_")
            }
        )

    @property
    def input_size(self) -> int:
        return self.input_dim

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        self.bidirectional = bidirectional
        self.head = nn.Linear(backbone_output_size, self.num_classes)

    def forward(self, y, mask, lengths):
        return self.head(last_valid(y, lengths, self.bidirectional))  # (B, C)

    def loss(self, out, targets, mask):
        return F.cross_entropy(out, targets), out.new_full((), float(len(out)))  # (), ()

    def update_metrics(self, stage, out, targets, mask, extras):
        self._acc[stage + "_"].update(out.detach(), targets)  # (B, C), (B,)

    def compute_metrics(self, stage):
        metric = self._acc[stage + "_"]
        return {"acc": metric.compute()} if metric.update_count else {}

    def reset_metrics(self, stage):
        self._acc[stage + "_"].reset()


class CopyTask(Task):
    """Copy memory (Arjovsky et al. 2016; Bai et al. 2018): per-step classification.

    Inputs are symbol ids ``(B, T)`` fed one-hot; the loss is the cross-entropy over every
    step, as Bai et al. report it.
    """

    name = "copy"
    causal = True
    loss_name = "ce"
    monitor = "ce"

    def __init__(self, num_symbols: int = 10) -> None:
        super().__init__()
        self.num_symbols = int(num_symbols)
        self.head: nn.Linear | None = None
        self._acc = nn.ModuleDict(
            {
                s: torchmetrics.Accuracy(task="multiclass", num_classes=self.num_symbols)
                for s in ("train_", "val_", "test_")
            }
        )

    @property
    def input_size(self) -> int:
        return self.num_symbols

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        self.head = nn.Linear(backbone_output_size, self.num_symbols)

    def encode(self, inputs):
        return F.one_hot(inputs, self.num_symbols).to(self.head.weight.dtype)  # (B, T, S)

    def forward(self, y, mask, lengths):
        return self.head(y)  # (B, T, S)

    def loss(self, out, targets, mask):
        ce = F.cross_entropy(out.reshape(-1, out.size(-1)), targets.reshape(-1))  # ()
        return ce, out.new_full((), float(targets.numel()))  # (), ()

    def update_metrics(self, stage, out, targets, mask, extras):
        # Accuracy on the last 10 steps: the copied digits.
        last = out[:, -10:].detach().reshape(-1, out.size(-1))  # (B * 10, S)
        self._acc[stage + "_"].update(last, targets[:, -10:].reshape(-1))  # targets (B * 10,)

    def compute_metrics(self, stage):
        metric = self._acc[stage + "_"]
        return {"acc": metric.compute()} if metric.update_count else {}

    def reset_metrics(self, stage):
        self._acc[stage + "_"].reset()
