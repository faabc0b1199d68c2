"""The one batch type every data module yields and every task reads by field name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

__all__ = ["Batch", "as_batch", "stack_batches"]


class Batch(NamedTuple):
    """A batch (or, unbatched, one item of a sequence set), with named fields.

    Lightning moves it to the device with its :meth:`to` (one call per field, rather than its
    generic walk over collections). Read it by name; its positions exist only because it is
    a tuple and never carry meaning.

    Attributes:
        inputs: ``(B, T)`` token ids or ``(B, T, D)`` frames.
        targets: Per-step ``(B, T, ...)`` (next token, next frame) or per-sequence
            ``(B, ...)`` (class, value to regress).
        mask: ``(B, T)`` bool, true on real steps of right-padded sequences; ``None`` when
            every step is real.
        reset: ``(B, T)`` bool, true where a new document starts in a row: the row's hidden
            state is zeroed just before that step; ``None`` when no boundaries are marked.
        labels: Per-sequence labels that are not the training target (``(B,)``; e.g. the
            attack flag of an anomaly-detection window).
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor | None = None
    reset: Tensor | None = None
    labels: Tensor | None = None

    @property
    def lengths(self) -> Tensor | None:
        """``(B,)`` valid steps per row, or ``None`` when every step is real."""
        return None if self.mask is None else self.mask.sum(1)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with every tensor field on ``device`` (a field already there is kept)."""
        return Batch(*(None if t is None else t.to(device, non_blocking=non_blocking)
                       for t in self))


def as_batch(batch: Any) -> Batch:
    """``batch`` as a :class:`Batch`: a ``Batch`` as is, an ``(inputs, targets)`` pair wrapped.

    A longer plain tuple is refused: its third element could be a mask, reset flags or
    labels, and guessing which is how a reset mask once reached ``pack_padded_sequence``.

    Raises:
        TypeError: ``batch`` is neither a ``Batch`` nor a two-element sequence.
    """
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) == 2:
        inputs, targets = batch
        if isinstance(inputs, Tensor) and isinstance(targets, Tensor):
            return Batch(inputs, targets)
    what = f"a {len(batch)}-tuple" if isinstance(batch, tuple) else type(batch).__name__
    raise TypeError(
        f"expected an rnnbench.data.Batch or an (inputs, targets) pair of tensors, got {what}; "
        "name the other fields: Batch(inputs, targets, mask=..., reset=..., labels=...)"
    )


def stack_batches(batches: Sequence[Batch], device: torch.device | str = "cpu"
                  ) -> tuple[Tensor, Tensor, Tensor | None]:
    """K batches -> ``(inputs, targets, mask)`` stacked ``(K, B, T, ...)``, padded alike.

    Batches of different sizes (another data order per member) are padded to the largest
    rows and steps; padding is masked out of the loss, so each member's loss is its own.
    """
    rows = max(b.inputs.shape[0] for b in batches)
    steps = max(b.inputs.shape[1] for b in batches)
    ragged = any(b.inputs.shape[:2] != (rows, steps) for b in batches)
    if not ragged:
        masks = [b.mask for b in batches]
        mask = None if masks[0] is None else torch.stack(masks)  # (K, B, T)
        return (torch.stack([b.inputs for b in batches]).to(device),
                torch.stack([b.targets for b in batches]).to(device),
                None if mask is None else mask.to(device))
    ins, tgs, mks = [], [], []
    for b in batches:
        r, t = b.inputs.shape[:2]
        m = b.mask if b.mask is not None else torch.ones(r, t, dtype=torch.bool)
        ins.append(_pad(b.inputs, rows, steps))
        per_step = b.targets.dim() > 1 and b.targets.shape[1] == t
        tgs.append(_pad(b.targets, rows, steps if per_step else None))
        mks.append(_pad(m, rows, steps))
    return (torch.stack(ins).to(device), torch.stack(tgs).to(device),
            torch.stack(mks).to(device))


def _pad(x: Tensor, rows: int, steps: int | None) -> Tensor:
    """Zero-pads ``(B, T, ...)`` to ``(rows, steps, ...)`` (``(B, ...)`` to ``(rows, ...)``)."""
    if steps is None:
        out = x.new_zeros((rows, *x.shape[1:]))
        out[: x.shape[0]] = x
        return out
    out = x.new_zeros((rows, steps, *x.shape[2:]))
    out[: x.shape[0], : x.shape[1]] = x
    return out
