"""Task contract: what goes into the backbone, what comes out, the loss and the metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:  # annotations only: tasks read batches, they do not build them
    from rnnbench.data.batch import Batch


def masked_mean(per_unit: torch.Tensor, mask: torch.Tensor | None, members: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean of per_unit over the valid units, number of valid units)``.

    With ``members``, the first dimension is K population members and each gets its own
    mean and count ``(K,)``; otherwise both are scalars.
    """
    dims = tuple(range(1, per_unit.dim())) if members else None
    if mask is None:
        n = per_unit[0].numel() if members else per_unit.numel()
        mean = per_unit.mean(dims) if members else per_unit.mean()
        return mean, per_unit.new_full(mean.shape, float(n))
    m = mask.to(per_unit.dtype)
    count = m.sum(dims) if members else m.sum()
    total = (per_unit * m).sum(dims) if members else (per_unit * m).sum()
    return total / count.clamp(min=1), count


class Task(nn.Module):
    """Input encoder + output head + loss + metric names for one kind of problem.

    A task turns a batch into backbone inputs, turns backbone outputs into predictions and
    returns a loss averaged over its natural unit (token, frame, sequence) together with the
    number of units, so that the module can average exactly over a whole stage.

    Class attributes:
        name: Registry name used in configs (``task: lm``).
        causal: Next-step prediction: a bidirectional backbone would read the answer, so the
            module refuses one.
        streaming: Batches come from :class:`~rnnbench.data.TBPTTDataModule` (continuous
            streams, hidden state carried across batches).
        loss_name: What the stage-mean loss is called in the logs (``nll``, ``mse``, ``ce``).
        monitor: The validation metric studies and checkpoints track (without ``val/``).
        mode: ``"min"`` or ``"max"`` for ``monitor``.
    """

    name: ClassVar[str] = "task"
    causal: ClassVar[bool] = False
    streaming: ClassVar[bool] = False
    loss_name: ClassVar[str] = "loss"
    monitor: ClassVar[str] = "loss"
    mode: ClassVar[str] = "min"

    def build(self, backbone_output_size: int, bidirectional: bool) -> None:
        """Creates the output head once the backbone's output size is known."""
        raise NotImplementedError

    @property
    def input_size(self) -> int:
        """Features per step the backbone receives from :meth:`encode`."""
        raise NotImplementedError

    def unpack(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict]:
        """Reads ``(inputs, targets, mask or None, extras)`` from a batch's named fields."""
        return batch.inputs, batch.targets, batch.mask, {}

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Batch inputs -> backbone inputs ``(B, T, input_size)``."""
        return inputs

    def forward(
        self, y: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor | None
    ) -> torch.Tensor:
        """Backbone outputs ``(B, T, H * D)`` -> predictions."""
        raise NotImplementedError

    @property
    def output_dropout(self) -> float:
        """Dropout rate :meth:`forward` applies to the backbone's outputs before anything
        else (the task option ``dropout``; 0 for tasks without it). A task that has one
        overrides :meth:`logits`; a population then applies each member's rate itself and
        calls :meth:`logits`, so its members may differ in it."""
        return 0.0

    def logits(
        self, y: torch.Tensor, mask: torch.Tensor | None, lengths: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`forward` without the output dropout (the same for tasks without one)."""
        return self(y, mask, lengths)

    def loss(
        self, out: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mean loss over units, number of units)`` for one batch."""
        raise NotImplementedError

    def member_loss(
        self, out: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Optional: :meth:`loss` of K population members at once, every input with a
        leading ``(K,)`` dimension; returns ``(loss (K,), units (K,))``. Tasks without it are
        run under ``torch.func.vmap`` (exact, but ops without a batching rule cost more)."""
        raise NotImplementedError

    @property
    def has_member_loss(self) -> bool:
        """Whether this task overrides :meth:`member_loss`."""
        return type(self).member_loss is not Task.member_loss

    def summarize(self, mean_loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """Stage metrics derived from the stage-mean loss, e.g. perplexity."""
        return {self.loss_name: mean_loss}

    # Optional extra metrics (accuracy, anomaly scores): default none.
    def update_metrics(self, stage: str, out, targets, mask, extras) -> None:  # noqa: D401
        """Accumulates extra metrics of ``stage`` (default: none)."""

    def compute_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        """Extra metrics of ``stage`` accumulated since the last reset."""
        return {}

    def reset_metrics(self, stage: str) -> None:
        """Clears the extra metrics of ``stage``."""

    def units(self, targets: torch.Tensor, mask: torch.Tensor | None) -> int:
        """Tokens/frames in a batch, for throughput logging."""
        if mask is not None:
            return int(mask.numel())  # padded steps count: they cost time too
        return int(targets.shape[0] * targets.shape[1]) if targets.dim() > 1 else len(targets)


def last_valid(y: torch.Tensor, lengths: torch.Tensor | None, bidirectional: bool) -> torch.Tensor:
    """Summary of a sequence: forward output at its last valid step (+ backward at step 0).

    Args:
        y: Backbone outputs ``(B, T, H * D)``.
        lengths: ``(B,)`` valid lengths, or ``None`` for full-length rows.
        bidirectional: Whether the second half of the features is the reverse direction.

    Returns:
        ``(B, H * D)``.
    """
    batch, steps, feats = y.shape
    last = (lengths - 1) if lengths is not None else torch.full((batch,), steps - 1)  # (B,)
    last = last.to(y.device).clamp(min=0)  # (B,)
    fwd = y[torch.arange(batch, device=y.device), last]  # (B, H * D)
    if not bidirectional:
        return fwd
    half = feats // 2
    # The reverse direction has read the whole sequence by step 0.
    return torch.cat([fwd[:, :half], y[:, 0, half:]], dim=-1)  # (B, H * D)
