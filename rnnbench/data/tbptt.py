"""Stateful truncated-BPTT streams: B continuous rows, each batch continuing the last."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import lightning as L
import torch

from rnnbench.data.batch import Batch

MAX_DEVICE_STREAM_BYTES = 2 * 1024**3


class StreamLayoutError(ValueError):
    """A stream cannot be laid out with the requested batch size and window length."""


class StreamBatches:
    """The batches of one stream: rows laid out once, windows cut per epoch.

    Row ``i`` of every batch continues row ``i`` of the previous batch; row ``i`` starts
    at offset ``i * ((N - 1) // B)`` of the stream. Batch ``k`` holds steps
    ``[k * bptt, (k + 1) * bptt)`` of every row (after the epoch's shift, if any); targets
    are the inputs one step later. Never shuffled.

    Iterating yields :class:`~rnnbench.data.Batch` ``(inputs, targets)`` and, when document
    boundaries are given, ``reset (B, T)`` true where a new document starts.

    The object is stateful in Lightning's sense (``state_dict`` / ``load_state_dict``): after
    a checkpoint is restored mid-epoch, the next iteration resumes at the first window the
    interrupted run had not trained on.

    Args:
        stream: ``(N,)`` token ids or ``(N, D)`` frames.
        batch_size: Rows ``B`` of the single-process layout.
        bptt: Window length ``T``.
        rows: The rows this process owns (DDP); default all.
        drop_last: Drop the short last window of each epoch.
        random_shift: Start the window grid at a random offset in ``[0, bptt)`` every epoch
            (the skipped first steps differ per epoch); deterministic under ``seed``.
        variable_bptt: AWD-LSTM's variable window length: ``bptt`` with probability 0.95
            else ``bptt / 2``, jittered by N(0, 5) and kept >= 5.
        boundaries: Optional ``(N,)`` bool mask, true at the first token of each document.
        seed: Seed of the per-epoch randomness.
        progress: Callable returning how many windows of the current epoch were already
            consumed (the data module wires Lightning's batch progress here on resume).
        name: Stage name for error messages.
    """

    def __init__(
        self,
        stream: torch.Tensor,
        batch_size: int,
        bptt: int,
        *,
        rows: tuple[int, int] | None = None,
        drop_last: bool = False,
        random_shift: bool = False,
        variable_bptt: bool = False,
        boundaries: torch.Tensor | None = None,
        seed: int = 0,
        name: str = "train",
    ) -> None:
        stream = torch.as_tensor(stream)
        if stream.dim() not in (1, 2):
            raise StreamLayoutError(
                f"the {name} stream must be (N,) token ids or (N, D) frames, "
                f"got shape {tuple(stream.shape)}"
            )
        check_layout(len(stream), batch_size, bptt, name)
        self.batch_size = int(batch_size)
        self.bptt = int(bptt)
        self.row_len = (len(stream) - 1) // self.batch_size
        n_used = self.batch_size * self.row_len
        lo, hi = rows if rows is not None else (0, self.batch_size)
        # Row i = stream[i * L : (i + 1) * L]; targets are the same positions plus one.
        self.inputs = stream[:n_used].view(self.batch_size, self.row_len, *stream.shape[1:])[lo:hi]
        self.targets = stream[1 : n_used + 1].reshape(
            self.batch_size, self.row_len, *stream.shape[1:]
        )[lo:hi]
        self.resets = None
        if boundaries is not None:
            boundaries = torch.as_tensor(boundaries, dtype=torch.bool)
            if boundaries.shape != stream.shape[:1]:
                raise StreamLayoutError(
                    f"the {name} boundary mask must have one entry per token "
                    f"({len(stream)}), got shape {tuple(boundaries.shape)}"
                )
            self.resets = boundaries[:n_used].view(self.batch_size, self.row_len)[lo:hi]
        self.rows = (lo, hi)
        self.drop_last = drop_last
        self.random_shift = random_shift
        self.variable_bptt = variable_bptt
        self.seed = int(seed)
        self.name = name
        self.epoch = 0
        self._skip_next = 0
        self.progress_fn = None  # set by the data module: windows already consumed on resume
        self.epoch_fn = None  # set by the data module: the trainer's current epoch

    def windows(self, epoch: int) -> list[tuple[int, int]]:
        """The ``[start, stop)`` step ranges of every window of ``epoch``."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        start = int(torch.randint(self.bptt, (1,), generator=gen)) if self.random_shift else 0
        out = []
        while start < self.row_len:
            length = self.bptt
            if self.variable_bptt:
                base = self.bptt if float(torch.rand((), generator=gen)) < 0.95 else self.bptt / 2
                length = max(5, int(base + 5 * float(torch.randn((), generator=gen))))
            stop = min(start + length, self.row_len)
            if stop - start < length and self.drop_last:
                break
            out.append((start, stop))
            start = stop
        return out

    def __len__(self) -> int:
        if self.variable_bptt:
            return len(self.windows(self.epoch))
        full, rest = divmod(self.row_len, self.bptt)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[Batch]:
        if self.epoch_fn is not None:
            self.epoch = self.epoch_fn()
        windows = self.windows(self.epoch)
        skip = self._skip_next
        if skip and self.progress_fn is not None:
            # Resume: Lightning's own count of windows trained on this epoch is exact,
            # whatever the loader had prefetched when the checkpoint was written.
            skip = self.progress_fn()
        self._skip_next = 0
        for start, stop in windows[skip:]:
            reset = None if self.resets is None else self.resets[:, start:stop]  # (B, T)
            yield Batch(self.inputs[:, start:stop], self.targets[:, start:stop], reset=reset)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "stage": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", self.epoch))
        self._skip_next = 1  # marker: this is a resume; the count comes from progress_fn


def check_layout(n: int, batch_size: int, bptt: int, name: str = "train") -> None:
    """Raises :class:`StreamLayoutError` unless a stream of ``n`` steps fits one window per row."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise StreamLayoutError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not isinstance(bptt, int) or isinstance(bptt, bool) or bptt <= 0:
        raise StreamLayoutError(f"bptt must be a positive integer, got {bptt!r}")
    if n - 1 < batch_size * bptt:
        raise StreamLayoutError(
            f"the {name} stream has {n} steps, too short for batch_size={batch_size} rows of "
            f"at least one bptt={bptt} window each (needs batch_size * bptt + 1 = "
            f"{batch_size * bptt + 1}); lower batch_size or bptt, or use more data"
        )


class TBPTTDataModule(L.LightningDataModule):
    """Continuous streams for stateful truncated BPTT (train, val and test).

    Every stage is streamed and stateful: the module carries each stage's hidden state
    from batch to batch. Under DDP rank ``r`` of ``W`` owns rows
    ``[r * B / W, (r + 1) * B / W)`` of the single-process layout, so the ranks together
    see exactly the one-process batches (Lightning's distributed sampler is not used).

    Args:
        train: ``(N,)`` or ``(N, D)`` training stream.
        val: Validation stream, or ``None``.
        test: Test stream, or ``None``.
        batch_size: Rows ``B`` (across all ranks).
        bptt: Window length ``T``.
        eval_batch_size: Rows for val/test (default ``batch_size``).
        eval_bptt: Window length for val/test (default ``bptt``).
        drop_last: Drop the short last training window (default keep).
        random_shift: Random per-epoch shift of the training window grid.
        variable_bptt: AWD-LSTM variable window length (the module rescales the learning
            rate by ``T / bptt`` for each window).
        boundaries: Optional dict stage -> ``(N,)`` bool mask of document starts.
        seed: Seed of the per-epoch randomness.
    """

    def __init__(
        self,
        train: torch.Tensor,
        val: torch.Tensor | None = None,
        test: torch.Tensor | None = None,
        *,
        batch_size: int = 20,
        bptt: int = 35,
        eval_batch_size: int | None = None,
        eval_bptt: int | None = None,
        drop_last: bool = False,
        random_shift: bool = False,
        variable_bptt: bool = False,
        boundaries: dict[str, torch.Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.streams = {"train": train, "val": val, "test": test}
        self.batch_size = batch_size
        self.bptt = bptt
        self.eval_batch_size = eval_batch_size or batch_size
        self.eval_bptt = eval_bptt or bptt
        self.drop_last = drop_last
        self.random_shift = random_shift
        self.variable_bptt = variable_bptt
        self.boundaries = boundaries or {}
        self.seed = seed
        self._on_device: dict[tuple[str, str], torch.Tensor] = {}
        # Validate every layout up front: bad sizes fail before any training.
        check_layout(len(train), batch_size, bptt, "train")
        for stage in ("val", "test"):
            if self.streams[stage] is not None:
                check_layout(len(self.streams[stage]), self.eval_batch_size, self.eval_bptt, stage)

    def rank_rows(self, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
        """Rows ``[lo, hi)`` of the single-process layout that ``rank`` owns."""
        if batch_size % world_size:
            raise StreamLayoutError(
                f"batch_size={batch_size} is not divisible by the world size {world_size}: "
                "every rank must own the same number of continuous rows; choose a batch size "
                f"that is a multiple of {world_size}"
            )
        per = batch_size // world_size
        return rank * per, (rank + 1) * per

    def _world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _device(self) -> torch.device | None:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        device = trainer.strategy.root_device
        return device if device.type == "cuda" else None

    def _stream_on_device(self, stage: str) -> torch.Tensor:
        """The stage's stream, moved once to the trainer's GPU when there is one.

        Windows are then views of a device tensor: no host-to-device copy per batch, and no
        copy that would make the host wait for the GPU (pageable copies synchronise), which
        matters when steps are replayed as CUDA graphs. Streams above 2 GiB stay on the host.
        """
        stream = torch.as_tensor(self.streams[stage])
        device = self._device()
        if device is None or stream.numel() * stream.element_size() > MAX_DEVICE_STREAM_BYTES:
            return stream
        key = (stage, str(device))
        if key not in self._on_device:
            self._on_device[key] = stream.to(device)
        return self._on_device[key]

    def _make(self, stage: str) -> StreamBatches | None:
        if self.streams[stage] is None:
            return None
        stream = self._stream_on_device(stage)
        bounds = self.boundaries.get(stage)
        if bounds is not None:
            bounds = torch.as_tensor(bounds).to(stream.device)
        rank, world = self._world()
        train = stage == "train"
        b = self.batch_size if train else self.eval_batch_size
        loader = StreamBatches(
            stream,
            b,
            self.bptt if train else self.eval_bptt,
            rows=self.rank_rows(b, rank, world),
            drop_last=self.drop_last and train,
            random_shift=self.random_shift and train,
            variable_bptt=self.variable_bptt and train,
            boundaries=bounds,
            seed=self.seed,
            name=stage,
        )
        if train:
            loader.progress_fn = self._consumed_windows
            loader.epoch_fn = self._current_epoch
        return loader

    def _consumed_windows(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.ready

    def _current_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return 0 if trainer is None else trainer.current_epoch

    def train_dataloader(self) -> StreamBatches:
        return self._make("train")

    def val_dataloader(self) -> StreamBatches | list:
        return self._make("val") or []

    def test_dataloader(self) -> StreamBatches | list:
        return self._make("test") or []

    def tokens_per_batch(self, stage: str = "train") -> int:
        return (self.batch_size if stage == "train" else self.eval_batch_size) * (
            self.bptt if stage == "train" else self.eval_bptt
        )

    def steps_per_epoch(self) -> int:
        return math.ceil(((len(self.streams["train"]) - 1) // self.batch_size) / self.bptt)
