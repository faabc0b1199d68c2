"""Baselines that ignore the inputs: the training mean, per-key frequencies, no memory."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from rnnbench.baselines.base import Baseline, BaselineUnfit, TaskInfo, stack_batches
from rnnbench.baselines.registry import register_baseline


@register_baseline("mean")
class Mean(Baseline):
    """Predicts the training targets' mean whatever the input: the MSE it reaches is the
    targets' variance (adding problem: 1/6, about 0.167)."""

    tasks = ("regression", "anomaly")
    summary = "the mean of the training targets"

    def __init__(self) -> None:
        self.mean: torch.Tensor | None = None

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        _, ys, _ = stack_batches(train)
        y = torch.cat([t.reshape(len(t), -1) for t in ys]).double()  # (N, out)
        self.mean = y.mean(0)  # (out,)

    def predict(self, batch: Any) -> torch.Tensor:
        return self.mean.float().expand(len(batch.inputs), -1)  # (B, out)

    @property
    def num_parameters(self) -> int:
        return 0 if self.mean is None else int(self.mean.numel())


@register_baseline("frequency")
class KeyFrequency(Baseline):
    """Polyphonic music: every key an independent Bernoulli with its frequency in the
    training frames, the same for every frame.

    Args:
        prior: Pseudo-count added to both outcomes of every key (``(on + prior) / (frames +
            2 prior)``; 0.5 is the Krichevsky-Trofimov estimate), so that a key never played
            in training does not get probability 0.
    """

    tasks = ("music",)
    summary = "per-key frequency in the training frames (independent Bernoulli keys)"

    def __init__(self, prior: float = 0.5) -> None:
        if not isinstance(prior, (int, float)) or isinstance(prior, bool) or prior < 0:
            raise ValueError(f"frequency: prior must be a non-negative number, got {prior!r}")
        self.prior = float(prior)
        self.logits: torch.Tensor | None = None  # (K,)

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        on = frames = 0
        for _, y, m in zip(*stack_batches(train)):
            keep = m if m is not None else torch.ones(y.shape[:2], dtype=torch.bool)  # (B, T)
            on = on + y[keep].double().sum(0)  # (K,)
            frames += int(keep.sum())
        p = (on + self.prior) / (frames + 2 * self.prior)  # (K,)
        if self.prior == 0 and bool(((p == 0) | (p == 1)).any()):
            raise BaselineUnfit("frequency: with prior 0 a key never (or always) on in "
                                "training gets probability 0 or 1; use prior > 0")
        self.logits = torch.log(p) - torch.log1p(-p)  # (K,)

    def predict(self, batch: Any) -> torch.Tensor:
        batch_size, steps = batch.inputs.shape[:2]
        return self.logits.float().expand(batch_size, steps, -1)  # (B, T, K)

    @property
    def num_parameters(self) -> int:
        return 0 if self.logits is None else int(self.logits.numel())

    def options(self) -> dict[str, Any]:
        return {"prior": self.prior}


@register_baseline("memoryless")
class Memoryless(Baseline):
    """Copy memory without memory: predicts the symbols seen in training at each phase, each
    equally likely, knowing only where the sequence is (blanks, then the recalled digits).

    On the copy task that is a blank with probability 1 before the last ``recall_steps``
    steps and one of the 8 digits uniformly on them: cross-entropy ``10 ln 8 / (T + 20)``
    (Arjovsky et al. 2016; Bai et al. 2018).

    Args:
        recall_steps: How many final steps recall the digits (10 in the copy task).
    """

    tasks = ("copy",)
    summary = "no memory: the symbols seen at each phase in training, uniformly"

    def __init__(self, recall_steps: int = 10) -> None:
        if isinstance(recall_steps, bool) or not isinstance(recall_steps, int) \
                or recall_steps < 1:
            raise ValueError(f"memoryless: recall_steps must be a positive integer, got "
                             f"{recall_steps!r}")
        self.recall_steps = recall_steps
        self.logits: torch.Tensor | None = None  # (2, S): before / during the recall

    def fit(self, train: Iterable[Any], task: TaskInfo) -> None:
        symbols = int(task.options.get("num_symbols", 10))
        seen = torch.zeros(2, symbols, dtype=torch.bool)
        k = self.recall_steps
        for _, y, m in zip(*stack_batches(train)):
            if m is not None and not bool(m.all()):
                raise BaselineUnfit("memoryless: the copy sequences are expected unpadded")
            if y.shape[1] <= k:
                raise BaselineUnfit(f"memoryless: sequences of {y.shape[1]} steps have no "
                                    f"phase before the last {k}")
            seen[0, y[:, :-k].unique()] = True
            seen[1, y[:, -k:].unique()] = True
        # log(1 / |seen|) on the symbols seen in the phase, -inf (probability 0) elsewhere.
        counts = seen.sum(1, keepdim=True).double()  # (2, 1)
        self.logits = torch.where(seen, -torch.log(counts), torch.tensor(-math.inf,
                                                                         dtype=torch.float64))

    def predict(self, batch: Any) -> torch.Tensor:
        batch_size, steps = batch.inputs.shape[:2]
        phase = (torch.arange(steps) >= steps - self.recall_steps).long()  # (T,)
        return self.logits[phase].float().expand(batch_size, -1, -1)  # (B, T, S)

    @property
    def num_parameters(self) -> int:
        return 0

    def options(self) -> dict[str, Any]:
        return {"recall_steps": self.recall_steps}


__all__ = ["KeyFrequency", "Mean", "Memoryless"]
