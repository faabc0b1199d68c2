"""The one batch type every data module yields and every task reads by field name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import Tensor

__all__ = ["Batch", "as_batch"]


class Batch(NamedTuple):
    """A batch (or, unbatched, one item of a sequence set), with named fields.

    A NamedTuple, so Lightning's device transfer (``apply_to_collection``) rebuilds it field
    by field on the device, ``None`` fields included. Read it by name; its positions exist
    only because it is a tuple and never carry meaning.

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

