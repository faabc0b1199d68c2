"""Data module for sets of independent variable-length sequences, padded per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Sampler, default_collate

from rnnbench.data.batch import Batch

__all__ = ["SequenceDataModule", "next_step_pairs", "pad_collate"]

TargetKind = Literal["auto", "step", "sequence"]


def next_step_pairs(pieces: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    """Turn sequences into next-frame prediction pairs ``(piece[:-1], piece[1:])``.

    Args:
        pieces: Sequences, each ``(L_i, ...)`` with ``L_i >= 2``.

    Returns:
        ``[(x_i (L_i - 1, ...), y_i (L_i - 1, ...)), ...]`` (views, no copies).
    """
    pairs = []
    for i, piece in enumerate(pieces):
        piece = torch.as_tensor(piece)
        if piece.ndim == 0 or piece.shape[0] < 2:
            raise ValueError(
                f"piece {i} has shape {tuple(piece.shape)}: next-step prediction needs at "
                "least 2 steps"
            )
        pairs.append((piece[:-1], piece[1:]))
    return pairs


def _as_item(item: Any, index: int) -> Batch:
    if isinstance(item, Batch):
        fields = item
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        fields = Batch(*item)
    else:
        what = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else type(item).__name__
        raise TypeError(
            f"sequence {index} of the batch is {what}; items must be (x, y) pairs or "
            "rnnbench.data.Batch items with named extra fields (labels=..., reset=...)"
        )
    x = torch.as_tensor(fields.inputs)
    if x.ndim == 0:
        raise ValueError(f"sequence {index}: x is a scalar; expected (L,) or (L, D)")
    return fields._replace(
        inputs=x,
        **{k: torch.as_tensor(v) for k, v in fields._asdict().items()
           if k != "inputs" and v is not None},
    )


def _pad_steps(seqs: Sequence[Tensor], steps: int) -> Tensor:
    """Right-pads per-step tensors ``(L_i, ...)`` with zeros (False) to ``(B, steps, ...)``."""
    out = pad_sequence(list(seqs), batch_first=True)  # (B, max L_i, ...), one native call
    if out.shape[1] < steps:
        out = torch.cat([out, out.new_zeros((out.shape[0], steps - out.shape[1],
                                             *out.shape[2:]))], dim=1)  # (B, steps, ...)
    return out


def pad_collate(batch: Sequence[Any], target: TargetKind = "auto") -> Batch:
    """Pad a list of items into a :class:`~rnnbench.data.Batch`.

    Args:
        batch: Items, ``(x, y)`` pairs or :class:`~rnnbench.data.Batch` items without the
            batch dimension. ``x`` is ``(L_i, D)`` float or ``(L_i,)`` long, ``y`` either a
            per-step target with leading length ``L_i`` or a per-sequence target (scalar or
            vector). A ``Batch`` item may carry ``labels`` (stacked with
            ``default_collate``), ``reset`` ``(L_i,)`` (padded with False) and ``mask``
            ``(L_i,)`` (steps to ignore inside the sequence; combined with the padding).
        target: ``"step"``, ``"sequence"``, or ``"auto"``: per-step when every ``y`` has at
            least one dimension and the same leading length as its ``x``. Pass it
            explicitly when a per-sequence vector can match the length by chance (e.g.
            windows of ``W`` steps and ``D == W`` features).

    Returns:
        ``Batch(inputs (B, T, ...), targets (B, T, ...) or (B, ...), mask (B, T) bool,
        reset (B, T) or None, labels (B, ...) or None)`` with ``T`` the longest ``L_i``;
        padding is 0 and ``mask`` is True on real steps.
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    items = [_as_item(item, i) for i, item in enumerate(batch)]
    xs = [it.inputs for it in items]
    ys = [it.targets for it in items]
    ref = xs[0]
    for i, x in enumerate(xs):
        if x.shape[1:] != ref.shape[1:] or x.dtype != ref.dtype:
            raise ValueError(
                f"sequence {i} has x of shape {tuple(x.shape)} ({x.dtype}) but sequence 0 has "
                f"{tuple(ref.shape)} ({ref.dtype}): all inputs need the same rank, feature "
                "size and dtype (only the length may differ)"
            )
    for name in ("mask", "reset", "labels"):
        given = [getattr(it, name) is not None for it in items]
        if any(given) and not all(given):
            raise ValueError(f"some items of the batch carry {name} and others do not")
    lengths = torch.tensor([x.shape[0] for x in xs])  # (B,)
    T = int(lengths.max())
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    inputs = _pad_steps(xs, T)  # (B, T, ...)

    if target == "auto":
        per_step = all(
            y.ndim >= 1 and y.shape[0] == x.shape[0] for x, y in zip(xs, ys, strict=True)
        )
    elif target in ("step", "sequence"):
        per_step = target == "step"
    else:
        raise ValueError(f"target must be 'auto', 'step' or 'sequence', got {target!r}")
    if per_step:
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            if y.ndim == 0 or y.shape[0] != x.shape[0] or y.shape[1:] != ys[0].shape[1:]:
                raise ValueError(
                    f"sequence {i}: per-step target of shape {tuple(y.shape)} does not match "
                    f"its input of length {x.shape[0]} (or the other targets' trailing shape "
                    f"{tuple(ys[0].shape[1:])})"
                )
        targets = _pad_steps(ys, T)  # (B, T, ...)
    else:
        shapes = {tuple(y.shape) for y in ys}
        if len(shapes) != 1:
            raise ValueError(
                f"per-sequence targets must all have one shape, got {sorted(shapes)}; if they "
                "are per-step targets, pass target='step'"
            )
        targets = torch.stack(ys)  # (B, ...)
    steps = {}
    for name in ("mask", "reset"):
        if getattr(items[0], name) is None:
            continue
        seqs = [getattr(it, name).to(torch.bool) for it in items]
        for i, (x, v) in enumerate(zip(xs, seqs, strict=True)):
            if v.shape != x.shape[:1]:
                raise ValueError(
                    f"sequence {i}: {name} of shape {tuple(v.shape)} must be ({x.shape[0]},), "
                    "one flag per step"
                )
        steps[name] = _pad_steps(seqs, T)  # (B, T)
    if "mask" in steps:
        mask = mask & steps["mask"]  # (B, T)
    labels = None
    if items[0].labels is not None:
        labels = default_collate([it.labels for it in items])  # (B, ...)
    return Batch(inputs, targets, mask=mask, reset=steps.get("reset"), labels=labels)


class _BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length: shuffle, sort within pools of 50 batches, shuffle batches."""

    POOL_BATCHES = 50

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
    ):
        self.lengths = torch.as_tensor(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:  # longest first, a stable and deterministic order
            order = torch.sort(self.lengths, descending=True, stable=True).indices
            yield from (b.tolist() for b in order.split(self.batch_size))
            return
        perm = torch.randperm(n, generator=self.generator)
        batches = []
        for pool in perm.split(self.batch_size * self.POOL_BATCHES):
            pool = pool[torch.sort(self.lengths[pool], stable=True).indices]
            batches.extend(pool.split(self.batch_size))
        for j in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[j].tolist()


class SequenceDataModule(L.LightningDataModule):
    """Batches independent variable-length sequences (music pieces, windows, samples).

    Unlike the TBPTT stream module, every item is a sequence of its own, so batches are
    padded to their longest member and come with a mask. Batches are
    :class:`~rnnbench.data.Batch` ``(inputs (B, T, ...), targets (B, T, ...) or (B, ...),
    mask (B, T) bool, reset, labels)``; see :func:`pad_collate`.

    Args:
        train: Indexable of ``(x, y)`` items (``x`` ``(L_i, D)`` float or ``(L_i,)`` long;
            ``y`` per-step with leading length ``L_i`` or per-sequence), or
            :class:`~rnnbench.data.Batch` items that name extra fields (``labels``).
        val: Validation items, or ``None``.
        test: Test items, or ``None``.
        batch_size: Training batch size.
        eval_batch_size: Validation/test batch size (default: ``batch_size``).
        shuffle: Shuffle the training set each epoch, from a ``torch.Generator`` seeded with
            ``seed``: the same seed gives the same batches in every run. Validation and
            test are never shuffled.
        seed: Seed of the shuffling generator.
        num_workers: ``DataLoader`` worker processes.
        sort_by_length: Group sequences of similar length to cut padding: training
            batches are drawn from length-sorted pools of 50 batches (then shuffled);
            validation/test are ordered longest first, so their item order changes (keep
            it ``False`` when outputs must line up with the data set, as for anomaly
            scores).
        target: How to read ``y``: ``"auto"``, ``"step"`` or ``"sequence"`` (see
            :func:`pad_collate`).
    """

    def __init__(
        self,
        train: Sequence[Any],
        val: Sequence[Any] | None = None,
        test: Sequence[Any] | None = None,
        *,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_workers: int = 0,
        sort_by_length: bool = False,
        target: TargetKind = "auto",
    ):
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if value is not None and (
                isinstance(value, bool) or int(value) != value or value <= 0
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if int(num_workers) != num_workers or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if target not in ("auto", "step", "sequence"):
            raise ValueError(f"target must be 'auto', 'step' or 'sequence', got {target!r}")
        self.datasets = {"train": train, "val": val, "test": test}
        for stage, data in self.datasets.items():
            if data is None:
                continue
            if len(data) == 0:
                raise ValueError(f"the {stage} data set is empty")
            _as_item(data[0], 0)  # fail early on a malformed item
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.sort_by_length = sort_by_length
        self.target = target

    @property
    def train(self) -> Sequence[Any]:
        return self.datasets["train"]

    @property
    def val(self) -> Sequence[Any] | None:
        return self.datasets["val"]

    @property
    def test(self) -> Sequence[Any] | None:
        return self.datasets["test"]

    def _collate(self, batch: Sequence[Any]) -> Batch:
        return pad_collate(batch, self.target)

    def _loader(self, stage: str) -> DataLoader:
        data = self.datasets[stage]
        if data is None:
            raise RuntimeError(f"SequenceDataModule was built without {stage} data")
        training = stage == "train"
        batch_size = self.batch_size if training else self.eval_batch_size
        shuffle = training and self.shuffle
        # A fresh generator per loader: every fit starts from the same epoch-1 order, and
        # each epoch's iteration advances it, so epochs differ but runs repeat exactly.
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        common = dict(
            collate_fn=self._collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )
        if self.sort_by_length:
            lengths = [len(_as_item(data[i], i).inputs) for i in range(len(data))]
            sampler = _BucketBatchSampler(lengths, batch_size, shuffle, generator)
            return DataLoader(data, batch_sampler=sampler, **common)
        return DataLoader(
            data, batch_size=batch_size, shuffle=shuffle, generator=generator, **common
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        # No validation data: an empty list makes Lightning skip validation during fit.
        return [] if self.val is None else self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
