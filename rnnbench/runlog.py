"""A run's folder (``runs/<name>/version_N``): resolved, resumed, logged to, cleaned up.

:class:`RunFolder` is what :func:`rnnbench.train.run` asks for its run: the folder
(a new ``version_N``, or the newest one holding ``checkpoints/last.ckpt`` on resume), the
checkpoint to resume from (read and checked safely before anything is written), the
loggers that continue that run's ``metrics.csv`` / TensorBoard history instead of replacing
it, its checkpoint callbacks and plugins, and the clean-up of a folder a failed run leaves
empty.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from rnnbench.atomic import write_atomic
from rnnbench.checkpointing import (
    LAST,
    PENDING,
    LastCheckpoint,
    SafeCheckpointIO,
    SignalAtStep,
    load_checkpoint,
    run_info,
)
from rnnbench.stopping import active_stop_request

# Every checkpoint load the package makes through Lightning: trainer.fit(..., **SAFE_LOAD).
SAFE_LOAD = {"weights_only": True}


class RunAlreadyFinished(Exception):
    """``--resume`` of a run whose ``last.ckpt`` is already at the end of training."""


# ---------------------------------------------------------------- metrics.csv
class _ContinuingWriter(ExperimentWriter):
    """Lightning's CSV writer, but it continues ``metrics.csv`` rather than deleting it.

    With ``keep_through_step`` (a resume), rows whose ``step`` is past it (logged after the
    checkpoint being resumed, before the run was stopped) are dropped; the resumed run logs
    them again. Rows are appended as they come; a new column rewrites the file atomically.
    """

    def __init__(self, log_dir: str, keep_through_step: int | None) -> None:
        self._keep = keep_through_step
        super().__init__(log_dir=log_dir)

    def _check_log_dir_exists(self) -> None:  # called by the base __init__
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self._keep is None:
            path.unlink()  # a new run in this folder (not a resume) starts a new file
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = list(reader.fieldnames or [])
        kept = [r for r in rows if _step(r) <= self._keep]
        self.metrics_keys = header
        if len(kept) < len(rows):
            _write_csv(path, header, kept)

    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        path = Path(self.metrics_file_path)
        if new_keys and path.is_file():
            with open(path, newline="") as f:
                old = list(csv.DictReader(f))
            _write_csv(path, self.metrics_keys, old + self.metrics)
        else:
            fresh = not path.is_file()
            with open(path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                if fresh:
                    writer.writeheader()
                writer.writerows(self.metrics)
        self.metrics = []

    def sync(self) -> None:
        path = Path(self.metrics_file_path)
        if path.is_file():
            with open(path, "rb+") as f:
                os.fsync(f.fileno())


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(header))
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write, durable=True)


class RunCSVLogger(CSVLogger):
    """``metrics.csv`` in the run folder, written row by row, continued on resume.

    Args:
        run_dir: The run folder.
        keep_through_step: On resume, the checkpoint's last logging step: later rows in the
            existing file are dropped (the resumed run logs them again). ``None``: a new run.
    """

    def __init__(self, run_dir: str | Path, keep_through_step: int | None = None) -> None:
        super().__init__(str(run_dir), name="", version="", flush_logs_every_n_steps=1)
        self._keep = keep_through_step

    @property
    def experiment(self) -> _ContinuingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(self.log_dir, self._keep)
        return self._experiment

    def sync(self) -> None:
        """fsync ``metrics.csv`` (a checkpoint that vouches for its rows comes next)."""
        if self._experiment is not None:
            self._experiment.sync()


# ---------------------------------------------------------------- the run folder
def _next_version(base: Path) -> Path:
    k = 0
    while (base / f"version_{k}").exists():
        k += 1
    return base / f"version_{k}"


def latest_run_dir(base: Path) -> Path | None:
    """The newest ``version_k`` folder under ``base`` that holds ``checkpoints/last.ckpt``."""
    versions = sorted(
        (p for p in base.glob("version_*") if (p / "checkpoints" / LAST).exists()),
        key=lambda p: int(p.name.split("_")[1]) if p.name.split("_")[1].isdigit() else -1,
    )
    return versions[-1] if versions else None


def training_finished(info: dict[str, Any], trainer_cfg: dict[str, Any]) -> bool:
    """Whether a checkpoint's run info is at the end of the training ``trainer_cfg`` asks for."""
    max_steps = trainer_cfg.get("max_steps")
    if max_steps is not None and max_steps >= 0 and info["global_step"] >= max_steps:
        return True
    max_epochs = trainer_cfg.get("max_epochs")
    if max_epochs is None and (max_steps is None or max_steps < 0):
        max_epochs = 1000  # Lightning's default when neither is set
    return max_epochs is not None and max_epochs >= 0 and info["epochs_done"] >= max_epochs


@dataclass
class RunFolder:
    """Where a run writes, and what it resumes from.

    Attributes:
        path: ``{logging.dir}/{name}/version_N``.
        ckpt_path: ``last.ckpt`` to resume from (``None``: a new run).
        info: That checkpoint's :func:`~rnnbench.checkpointing.run_info`.
        created: This run made the folder (so it may remove it if it fails empty-handed).
    """

    path: Path
    ckpt_path: str | None = None
    info: dict[str, Any] | None = None
    created: bool = False
    _best: Any = None
    _top: Path | None = None

    @classmethod
    def open(cls, cfg: dict[str, Any], *, run_dir: str | Path | None = None,
             resume: bool = False) -> RunFolder:
        """Resolves the folder of a run and, on resume, reads its checkpoint safely.

        Nothing is written when this raises.

        Raises:
            ValueError (a ConfigError): no checkpoint to resume, or a folder that cannot be
                written.
            rnnbench.checkpointing.CheckpointError: The checkpoint is unreadable or unsafe.
            RunAlreadyFinished: The checkpoint is at the end of training already.
        """
        from rnnbench.config import ConfigError

        base = Path(cfg["logging"].get("dir", "runs")) / str(cfg.get("name") or "run")
        ckpt: Path | None = None
        if run_dir is not None:
            path = Path(run_dir)
            if resume and (path / "checkpoints" / LAST).exists():
                ckpt = path / "checkpoints" / LAST
        elif resume:
            found = latest_run_dir(base)
            if found is None:
                raise ConfigError(
                    f"--resume: no run of {base} has checkpoints/last.ckpt to resume"
                )
            path, ckpt = found, found / "checkpoints" / LAST
        else:
            path = _next_version(base)
        folder = cls(path)
        if ckpt is not None:
            info = run_info(load_checkpoint(ckpt))
            if training_finished(info, cfg["trainer"]):
                raise RunAlreadyFinished(
                    f"run {path} already finished training (epoch {info['epochs_done']}, step "
                    f"{info['global_step']}); nothing to resume, nothing changed"
                )
            folder.ckpt_path, folder.info = str(ckpt), info
        folder._make_writable(ConfigError)
        if ckpt is not None:  # saves that a kill interrupted before they became last.ckpt
            (ckpt.parent / PENDING).unlink(missing_ok=True)
            for tmp in ckpt.parent.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        return folder

    def _make_writable(self, error: type[Exception]) -> None:
        top = self.path  # the outermost folder this call creates
        while not top.parent.exists() and top.parent != top.parent.parent:
            top = top.parent
        existed = self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write_probe"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise error(
                f"cannot write to {self.path} ({err.strerror}); set logging.dir to a writable "
                "folder"
            ) from None
        self.created = not existed
        self._top = top

    @property
    def log_step(self) -> int | None:
        """On resume, the last ``metrics.csv`` step the checkpoint vouches for."""
        return None if self.info is None else int(self.info["log_step"])

    def loggers(self, log_cfg: dict[str, Any]) -> list[Any]:
        """The CSV / TensorBoard loggers ``logging:`` asks for, continuing a resumed run."""
        out: list[Any] = []
        if log_cfg.get("csv", True):
            out.append(RunCSVLogger(self.path, keep_through_step=self.log_step))
        if log_cfg.get("tensorboard", False):
            from lightning.pytorch.loggers import TensorBoardLogger

            extra = {} if self.log_step is None else {"purge_step": self.log_step + 1}
            out.append(TensorBoardLogger(str(self.path), name="tb", version="", **extra))
        return out

    def checkpoint_callbacks(self, ckpt_cfg: dict[str, Any], monitor: str | None,
                             mode: str) -> list[Any]:
        """``best.ckpt`` by ``monitor`` (when there is one) and ``last.ckpt``; ``[]`` if off."""
        if not ckpt_cfg.get("enabled", True):
            return []
        from lightning.pytorch.callbacks import ModelCheckpoint

        dirpath = self.path / "checkpoints"
        if self.ckpt_path is not None:  # resuming: of course the folder holds checkpoints
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* not empty")
        out: list[Any] = []
        if monitor is not None:
            self._best = ModelCheckpoint(dirpath=str(dirpath), monitor=monitor, mode=mode,
                                         save_last=False, save_top_k=1, filename="best")
            out.append(self._best)
        if os.environ.get(SignalAtStep.ENV):  # test hook, see SignalAtStep
            out.append(SignalAtStep(os.environ[SignalAtStep.ENV]))
        out.append(LastCheckpoint(dirpath, ckpt_cfg.get("every_n_train_steps"),
                                  stop=active_stop_request()))
        return out

    @property
    def best_checkpoint(self) -> str | None:
        """``best.ckpt`` once a validation pass has written it, else ``None``."""
        return (self._best.best_model_path or None) if self._best is not None else None

    @staticmethod
    def plugins() -> list[Any]:
        """Trainer plugins: atomic, plain-data saves and ``weights_only`` loads."""
        return [SafeCheckpointIO()]

    @contextlib.contextmanager
    def removed_if_failed_empty(self) -> Iterator[RunFolder]:
        """Removes the folder this run made if the run fails with nothing worth keeping."""
        try:
            yield self
        except BaseException as err:
            if not self.created:
                raise
            if _has_results(self.path):
                err.rnnbench_run_dir = str(self.path)  # shown with the error (fit_outcome)
                raise
            shutil.rmtree(self.path, ignore_errors=True)
            folder = self.path.parent
            while self._top is not None and folder.is_relative_to(self._top):
                with contextlib.suppress(OSError):
                    folder.rmdir()  # the runs/<name>/ folders this run made, if empty
                folder = folder.parent
            raise


def _has_results(path: Path) -> bool:
    """A checkpoint or a ``metrics.csv`` row: something worth keeping.

    TensorBoard files alone do not count (they always hold a header and the hyper-parameters).
    """
    if any(path.glob("checkpoints/*.ckpt")):
        return True
    csv_path = path / "metrics.csv"
    if csv_path.is_file():
        with open(csv_path, newline="") as f:
            return sum(1 for _ in f) > 1
    return False


# ---------------------------------------------------------------- how a fit ended
def fit_outcome(err: BaseException, resume_command: str) -> tuple[int, str] | None:
    """Exit status and the one message of a ``fit`` that ended without a result.

    ``None`` for exceptions this module does not know (they stay errors). ``resume_command``
    is the command line that continues the run (shown after an interruption).
    """
    import signal

    from rnnbench.module import NonFiniteLossError
    from rnnbench.stopping import StopSignal, TrainingInterrupted

    if isinstance(err, TrainingInterrupted):
        if err.finished:
            return err.exit_code, (
                f"interrupted while testing; training had finished at step {err.step} "
                f"({err.checkpoint})"
            )
        return err.exit_code, f"interrupted at step {err.step}; continue with: {resume_command}"
    if isinstance(err, StopSignal):
        name = signal.Signals(err.signum).name
        return err.exit_code, f"interrupted by {name}; stopped at once, nothing new saved"
    if isinstance(err, RunAlreadyFinished):
        return 0, str(err)
    if isinstance(err, NonFiniteLossError):
        kept = getattr(err, "rnnbench_run_dir", None)
        return 3, f"rnnbench fit: error: {err}" + (f" (logs so far: {kept})" if kept else "")
    return None
