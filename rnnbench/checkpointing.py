"""Checkpoints that survive kills and load safely: atomic writes, ``last.ckpt``, safe loads.

Three rules, each enforced in one place:

- Every load is ``torch.load(..., weights_only=True)`` (:func:`load_checkpoint`, and
  :class:`SafeCheckpointIO` for the loads Lightning makes): a checkpoint holds tensors,
  dicts, lists, numbers and strings, never pickled code, and one that carries code is
  refused before anything runs.
- Every save is atomic (:func:`atomic_save`): written to a temporary file in the same
  folder, flushed to disk, then renamed over the old file, so a kill during the write
  leaves the previous checkpoint whole. What is saved is made plain first
  (:func:`to_plain`): numpy scalars become numbers, paths strings, dataclasses dicts.
- ``last.ckpt`` (:class:`LastCheckpoint`) is written every ``every_n_train_steps``
  optimiser steps from the first one on (no validation needed) and at the end of every
  epoch, and only becomes ``last.ckpt`` once the rows it vouches for are in the run's logs
  (see :class:`LastCheckpoint`), so a resumed run neither loses nor repeats a row.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import os
import pickle
import pickletools
import random
import re
import signal
import uuid
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback, Checkpoint

from rnnbench.atomic import fsync_dir, write_atomic
from rnnbench.stopping import StopRequest, TrainingInterrupted

RUN_KEY = "rnnbench_run"  # our bookkeeping inside a checkpoint (see LastCheckpoint)
LAST = "last.ckpt"
PENDING = "last.ckpt.pending"  # written, not yet vouched for by the logs


class CheckpointError(ValueError):
    """A checkpoint cannot be used: unreadable, or not a plain-data checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint carries pickled Python objects (code) that a safe load refuses."""


# ---------------------------------------------------------------- loading
def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Reads a checkpoint with ``weights_only=True`` and checks it is a Lightning checkpoint.

    Raises:
        UnsafeCheckpointError: The file holds pickled objects other than plain data (one
            line naming the file and the object; nothing of it is run).
        CheckpointError: The file is missing, empty, truncated or not a checkpoint (one
            paragraph naming the file).
    """
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, UnpicklingError...
        found = _unsafe_global(err, path)
        if found:
            raise UnsafeCheckpointError(
                f"refusing checkpoint {path}: it carries pickled Python code ({found}), which "
                "rnnbench never loads; nothing was run"
            ) from None
        raise CheckpointError(_unreadable(path, err)) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(_unreadable(path, None))
    return ckpt


def _unreadable(path: Path, err: BaseException | None) -> str:
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        why = "the file is empty"
    elif zipfile.is_zipfile(path) or _starts_with(path, b"PK"):
        why = "the file is truncated or corrupted"
    elif err is None:
        why = "it holds no model weights (no state_dict)"
    else:
        why = "it is not a PyTorch checkpoint"
    return (
        f"checkpoint {path} is unreadable: {why} (e.g. the process was stopped while writing "
        "it, or it was copied incompletely). Nothing was run and nothing was written. Put back "
        "a good copy of the file, or start the run afresh without --resume (a new version_N "
        "folder is made)."
    )


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


def _unsafe_global(err: BaseException, path: Path) -> str | None:
    """The pickled global (``module.name``) that made a safe load fail, if that was why."""
    match = re.search(r"GLOBAL ([\w.]+)", str(err))
    if match:
        return match.group(1)
    if not isinstance(err, pickle.UnpicklingError):
        return None
    # Torch's message names the global for zip checkpoints; for a bare pickle, read the
    # opcodes (reading them runs nothing).
    try:
        data = path.read_bytes()
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        strings: list[str] = []
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings.append(str(arg))
            elif op.name == "GLOBAL":
                return str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
    except Exception:
        return None
    return None


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic, plain-data saves and ``weights_only`` loads.

    Passed to the Trainer as a plugin, it covers every file Lightning writes or reads
    (``last.ckpt``, ``best.ckpt``, resuming, testing the best checkpoint).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO.save_checkpoint takes no storage_options")
        atomic_save(to_plain(checkpoint), path)

    def load_checkpoint(self, path: Any, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        # weights_only is True whatever the caller asked for.
        return load_checkpoint(path, map_location if map_location is not None else "cpu")


# ---------------------------------------------------------------- saving
def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

    write_atomic(path, write, durable=True)


def temp_path(path: Path) -> Path:
    """A fresh name next to ``path`` for writing it atomically (created with the umask)."""
    return path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def atomic_rename(src: str | Path, dst: str | Path) -> None:
    """Renames ``src`` over ``dst`` (same folder) and makes the rename durable."""
    os.replace(src, dst)
    fsync_dir(Path(dst).parent)


_LEAVES = (str, int, float, bool, type(None), bytes, torch.Tensor, torch.dtype, torch.device,
           torch.Size)


def to_plain(obj: Any, where: str = "checkpoint") -> Any:
    """A copy of ``obj`` made of what ``torch.load(weights_only=True)`` reads back.

    Containers are copied, tensors shared. numpy scalars become Python numbers, numpy
    arrays tensors, paths strings, enums their values, dataclasses dicts, other mappings
    dicts and sets sorted lists.

    Raises:
        CheckpointError: Something else (a function, a task object...), naming where it is.
    """
    if isinstance(obj, _LEAVES):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value, where)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, OrderedDict):
        # Module state dicts: keep the type and the per-module versions (``_metadata``) that
        # load_state_dict passes to each module.
        out = OrderedDict((k, to_plain(v, f"{where}.{k}")) for k, v in obj.items())
        metadata = getattr(obj, "_metadata", None)
        if metadata is not None:
            out._metadata = to_plain(metadata, f"{where}._metadata")
        return out
    if isinstance(obj, Mapping):
        return {k: to_plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (set, frozenset)):
        return sorted(to_plain(v, where) for v in obj)
    raise CheckpointError(
        f"{where} holds a {type(obj).__module__}.{type(obj).__qualname__}, which a safe "
        "checkpoint cannot hold; save plain numbers, strings, lists, dicts or tensors instead"
    )


# ---------------------------------------------------------------- last.ckpt
def run_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint says about its run: ``global_step``, ``epochs_done``, ``log_step``.

    ``log_step`` is the last logging step (the ``step`` column of ``metrics.csv``) whose rows
    belong to the checkpoint. Checkpoints written by Lightning's own ``ModelCheckpoint``
    (before :class:`LastCheckpoint`) lack our record; their loop state stands in for it.
    """
    info = ckpt.get(RUN_KEY)
    if isinstance(info, Mapping):
        return dict(info)
    loops = ckpt.get("loops") or {}
    epoch_loop = (loops.get("fit_loop") or {}).get("epoch_loop.state_dict") or {}
    return {
        "global_step": int(ckpt.get("global_step", 0)),
        "epochs_done": int(ckpt.get("epoch", 0)),
        "log_step": int(epoch_loop.get("_batches_that_stepped", 0)),
    }


def _batches_that_stepped(trainer: Any) -> int:
    # The ``step`` Lightning gives rows of metrics.csv: batches trained so far. Lightning
    # keeps it in a private attribute of the epoch loop and saves it in every checkpoint;
    # tests/test_checkpointing.py fails if the attribute disappears.
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"],
                             s["has_gauss"], s["gauss"]))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class SignalAtStep(Callback):
    """Test hook: sends this process a signal when training step ``step`` has run.

    Set by the environment variable ``RNNBENCH_TEST_SIGNAL_AT_STEP="STEP:SIGNAME"`` (e.g.
    ``"7:SIGKILL"``, ``"5:SIGTERM"``), read by :meth:`rnnbench.runlog.RunFolder.
    checkpoint_callbacks`; tests use it to stop a real ``rnnbench fit`` at a known step.
    It fires in ``on_train_batch_end`` before :class:`LastCheckpoint` does (Lightning puts
    checkpoint callbacks last), so a SIGKILL there loses the step's own save.
    """

    ENV = "RNNBENCH_TEST_SIGNAL_AT_STEP"

    def __init__(self, spec: str) -> None:
        step, _, name = spec.partition(":")
        self.step, self.signum = int(step), int(getattr(signal, name or "SIGKILL"))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class LastCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` every ``every_n_train_steps`` steps and at the end of every epoch.

    A step save does not wait for a monitored metric (Lightning's ``ModelCheckpoint`` would
    postpone it until the first validation); ``best.ckpt`` stays with ``ModelCheckpoint``.

    Why the save is in two parts: the rows of a step reach the loggers just *after* the
    ``on_train_batch_end`` hook that saves the checkpoint (and an epoch's ``*_epoch`` row
    after ``on_train_epoch_end``), and a run resumed from that checkpoint does not log them
    again. So the checkpoint is written to ``last.ckpt.pending`` and renamed to ``last.ckpt``
    at the next batch start (or the end of training), once the loggers hold and have flushed
    every row up to it. A kill in between leaves the previous ``last.ckpt``, whose rows
    are all on disk; rows logged after a checkpoint's ``log_step`` are dropped on resume
    (:class:`rnnbench.runlog.RunCSVLogger`).

    A step that ends an epoch is saved at the epoch's end instead (after validation and the
    epoch's hooks): resuming from the middle of an epoch's end would skip what remains of it.

    With a :class:`~rnnbench.stopping.StopRequest`, a SIGINT/SIGTERM lets the current step
    finish, saves it and raises :class:`~rnnbench.stopping.TrainingInterrupted` once
    ``last.ckpt`` holds it.

    Args:
        dirpath: The run's ``checkpoints/`` folder.
        every_n_train_steps: Save every this many optimiser steps (``None``: epoch ends only).
        stop: Stop request fed by signal handlers (``rnnbench fit`` only).
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = None,
                 stop: StopRequest | None = None) -> None:
        if every_n_train_steps is not None and (
            not isinstance(every_n_train_steps, int) or isinstance(every_n_train_steps, bool)
            or every_n_train_steps < 1
        ):
            raise ValueError(
                "checkpoint.every_n_train_steps must be a positive integer or null, got "
                f"{every_n_train_steps!r}"
            )
        self.dirpath = Path(dirpath)
        self.every = every_n_train_steps
        self.stop = stop
        self.last_model_path = ""
        self._saved_step = 0  # global step of the newest save (pending or committed)
        self._pending: dict[str, Any] | None = None  # run info of last.ckpt.pending
        self._saving: dict[str, Any] | None = None
        self._stop_now = False

    # -- when to save
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self.stop is not None:
            self.stop.arm()  # from now on a signal stops at the next step boundary

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        if self.stop is not None:
            self.stop.arm()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        due = self.every is not None and step // self.every > self._saved_step // self.every
        stopping = self.stop is not None and self.stop.signum is not None
        if not (due or stopping) or self._ends_epoch(trainer, batch_idx):
            return
        self._save(trainer, log_step=_batches_that_stepped(trainer),
                   epochs_done=trainer.current_epoch)
        self._stop_now = stopping

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        # Runs after the module's own epoch end (scheduler step, epoch sums reset); the
        # epoch's rows are logged with the step of its last batch.
        self._save(trainer, log_step=_batches_that_stepped(trainer) - 1,
                   epochs_done=trainer.current_epoch + 1)
        self._stop_now = self.stop is not None and self.stop.signum is not None

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        if self._pending is not None:
            self._commit(trainer)
        if self._stop_now:
            raise TrainingInterrupted(self.stop.signum, self._saved_step,
                                      str(self.dirpath / LAST))

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._pending is not None:
            self._commit(trainer)
        self._stop_now = False  # training is over: nothing left to stop

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                            dataloader_idx: int = 0) -> None:
        if self.stop is not None and self.stop.signum is not None:
            raise TrainingInterrupted(self.stop.signum, self._saved_step,
                                      str(self.dirpath / LAST), finished=True)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        # A pending save's rows may not all be logged: keep the last committed checkpoint.
        if self._pending is not None and trainer.is_global_zero:
            (self.dirpath / PENDING).unlink(missing_ok=True)
        self._pending = None

    @staticmethod
    def _ends_epoch(trainer: Any, batch_idx: int) -> bool:
        loop = trainer.fit_loop.epoch_loop
        max_steps = trainer.max_steps
        return bool(
            loop.batch_progress.is_last_batch
            or batch_idx + 1 >= trainer.num_training_batches
            or (max_steps is not None and max_steps >= 0 and trainer.global_step >= max_steps)
        )

    # -- saving and committing
    def _save(self, trainer: Any, *, log_step: int, epochs_done: int) -> None:
        info = {"global_step": int(trainer.global_step), "epochs_done": int(epochs_done),
                "log_step": int(log_step)}
        self._saving = info
        try:
            trainer.save_checkpoint(self.dirpath / PENDING, weights_only=False)
        finally:
            self._saving = None
        self._pending = info
        self._saved_step = info["global_step"]

    def _commit(self, trainer: Any) -> None:
        for logger in trainer.loggers:
            logger.save()
            sync = getattr(logger, "sync", None)
            if callable(sync):
                sync()  # the rows this checkpoint vouches for are on disk before it is
        if trainer.is_global_zero:
            atomic_rename(self.dirpath / PENDING, self.dirpath / LAST)
        self.last_model_path = str(self.dirpath / LAST)
        self._pending = None

    # -- what travels in the checkpoint
    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        if self._saving is not None:
            checkpoint[RUN_KEY] = {**self._saving, "rng": _rng_state()}

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        info = run_info(checkpoint)
        self._saved_step = int(info.get("global_step", 0))
        if isinstance(info.get("rng"), Mapping):
            _set_rng_state(info["rng"])  # dropout masks continue as if never stopped

    def state_dict(self) -> dict[str, Any]:
        return {"dirpath": str(self.dirpath), "every_n_train_steps": self.every}
