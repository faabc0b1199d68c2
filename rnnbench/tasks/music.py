"""Polyphonic music: next piano-roll frame as 88 independent Bernoulli keys."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from rnnbench.tasks.base import Task


class MusicTask(Task):
    """Next-frame prediction on piano rolls, the benchmark of Boulanger-Lewandowski et al. 2012.

    The metric is the negative log-likelihood per frame: the sum over the 88 keys of the
    Bernoulli NLL, averaged over frames, as Chung et al. (2014) and Bai et al. (2018) report.
    """

    name = "music"
    causal = True
    loss_name = "nll"
    monitor = "nll"

    def __init__(self, n_keys: int = 88) -> None:
        super().__init__()
        self.n_keys = int(n_keys)
        self.head: nn.Linear | None = None

    @property
    def input_size(self) -> int:
        return self.n_keys

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        self.head = nn.Linear(backbone_output_size, self.n_keys)

    def forward(self, y, mask, lengths):
        return self.head(y)  # (B, T, 88) logits

    def loss(self, out, targets, mask):
        per_frame = F.binary_cross_entropy_with_logits(  # (B, T): summed over the 88 keys
            out, targets, reduction="none"
        ).sum(-1)
        if mask is None:
            return per_frame.mean(), per_frame.new_full((), float(per_frame.numel()))  # (), ()
        m = mask.to(per_frame.dtype)  # (B, T)
        count = m.sum()  # ()
        return (per_frame * m).sum() / count.clamp(min=1), count  # (), ()
