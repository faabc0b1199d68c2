"""Polyphonic music: next piano-roll frame as 88 independent Bernoulli keys."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from rnnbench.tasks.base import Task, masked_mean


class MusicTask(Task):
    """Next-frame prediction on piano rolls, the benchmark of Boulanger-Lewandowski et al. 2012.

    The metric is the negative log-likelihood per frame: the sum over the 88 keys of the
    Bernoulli NLL, averaged over frames, as Chung et al. (2014) and Bai et al. (2018) report.

    Args:
        n_keys: Keys per frame (88 for the piano roll).
        dropout: Dropout on the backbone's outputs before the head (``task: {dropout: 0.3}``),
            active in training only: the one non-recurrent connection of a one-layer model
            (``model.dropout`` acts between stacked layers).
    """

    name = "music"
    causal = True
    loss_name = "nll"
    monitor = "nll"

    def __init__(self, n_keys: int = 88, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_keys = int(n_keys)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"task.dropout must lie in [0, 1), got {dropout}")
        self.drop = nn.Dropout(float(dropout))
        self.head: nn.Linear | None = None

    @property
    def input_size(self) -> int:
        return self.n_keys

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        self.head = nn.Linear(backbone_output_size, self.n_keys)

    @property
    def output_dropout(self) -> float:
        return float(self.drop.p)

    def forward(self, y, mask, lengths):
        return self.head(self.drop(y))  # (B, T, 88) logits

    def logits(self, y, mask, lengths):
        return self.head(y)  # (B, T, 88), no dropout: a population applies each member's

    def loss(self, out, targets, mask):
        return masked_mean(_frame_nll(out, targets), mask)  # (), ()

    def member_loss(self, out, targets, mask):
        return masked_mean(_frame_nll(out, targets), mask, members=True)  # (K,), (K,)


def _frame_nll(out, targets):
    """``(..., T, 88)`` logits -> ``(..., T)`` NLL per frame, summed over the 88 keys."""
    return F.binary_cross_entropy_with_logits(out, targets, reduction="none").sum(-1)
