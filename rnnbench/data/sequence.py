"""Data module for sets of independent variable-length sequences, padded per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, default_collate

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


def _as_item(item: Any, index: int) -> tuple[Tensor, ...]:
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise TypeError(
            f"sequence {index} of the batch is a {type(item).__name__}; items must be (x, y) "
            "pairs (or (x, y, extra, ...) tuples)"
        )
    x = torch.as_tensor(item[0])
    if x.ndim == 0:
        raise ValueError(f"sequence {index}: x is a scalar; expected (L,) or (L, D)")
    return (x, *(torch.as_tensor(v) for v in item[1:]))


def pad_collate(batch: Sequence[Any], target: TargetKind = "auto") -> tuple[Tensor, ...]:
    """Pad a list of ``(x, y, *extra)`` items into a batch.

    Args:
        batch: Items; ``x`` is ``(L_i, D)`` float or ``(L_i,)`` long, ``y`` either a per-step
            target with leading length ``L_i`` or a per-sequence target (scalar or vector);
            extra fields (e.g. HAIWindows' labels) are stacked with ``default_collate``.
        target: ``"step"``, ``"sequence"``, or ``"auto"``: per-step when every ``y`` has at
            least one dimension and the same leading length as its ``x``. Pass it
            explicitly when a per-sequence vector can match the length by chance (e.g.
            windows of ``W`` steps and ``D == W`` features).

    Returns:
        ``(inputs (B, T, ...), targets (B, T, ...) or (B, ...), mask (B, T) bool, *extra)``
        with ``T`` the longest ``L_i``; padding is 0 and ``mask`` is True on real steps.
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    items = [_as_item(item, i) for i, item in enumerate(batch)]
    xs = [it[0] for it in items]
    ys = [it[1] for it in items]
    ref = xs[0]
    for i, x in enumerate(xs):
        if x.shape[1:] != ref.shape[1:] or x.dtype != ref.dtype:
            raise ValueError(
                f"sequence {i} has x of shape {tuple(x.shape)} ({x.dtype}) but sequence 0 has "
                f"{tuple(ref.shape)} ({ref.dtype}): all inputs need the same rank, feature "
                "size and dtype (only the length may differ)"
            )
    if len({len(it) for it in items}) != 1:
        raise ValueError("all items of a batch must have the same number of fields")
    lengths = torch.tensor([x.shape[0] for x in xs])  # (B,)
    B, T = len(xs), int(lengths.max())
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)

    inputs = ref.new_zeros((B, T, *ref.shape[1:]))  # (B, T, ...)
    for i, x in enumerate(xs):
        inputs[i, : x.shape[0]] = x

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
        targets = ys[0].new_zeros((B, T, *ys[0].shape[1:]))  # (B, T, ...)
        for i, y in enumerate(ys):
            targets[i, : y.shape[0]] = y
    else:
        shapes = {tuple(y.shape) for y in ys}
        if len(shapes) != 1:
            raise ValueError(
                f"per-sequence targets must all have one shape, got {sorted(shapes)}; if they "
                "are per-step targets, pass target='step'"
            )
        targets = torch.stack(ys)  # (B, ...)
    extras = [default_collate([it[k] for it in items]) for k in range(2, len(items[0]))]
    return (inputs, targets, mask, *extras)


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
    ``(inputs (B, T, ...), targets (B, T, ...) or (B, ...), mask (B, T) bool, *extra)``;
    see :func:`pad_collate`.

    Args:
        train: Indexable of ``(x, y)`` items (``x`` ``(L_i, D)`` float or ``(L_i,)`` long;
            ``y`` per-step with leading length ``L_i`` or per-sequence); items may carry
            extra fields after ``y``.
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

    def _collate(self, batch: Sequence[Any]) -> tuple[Tensor, ...]:
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
            lengths = [len(_as_item(data[i], i)[0]) for i in range(len(data))]
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
