"""A trained model back from a run folder or a bare ``.ckpt``, read with ``weights_only=True``."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnbench.checkpointing import load_checkpoint

CHECKPOINTS = ("best", "last")


class InferenceError(ValueError):
    """A user mistake in using a trained model (wrong path, flag or data): one paragraph."""


@dataclass
class LoadedModel:
    """A trained :class:`~rnnbench.module.RNNModule` and where it came from.

    Attributes:
        module: The model in eval mode, on the CPU, with the checkpoint's weights.
        checkpoint: The ``.ckpt`` file read.
        run_dir: The run folder (``None`` for a bare checkpoint outside one).
        cfg: The run's composed ``config.yaml`` (``None`` without a run folder).
    """

    module: Any
    checkpoint: Path
    run_dir: Path | None = None
    cfg: dict[str, Any] | None = None

    @property
    def task_name(self) -> str:
        """The registered task name (``lm``, ``music``, ...)."""
        return str(self.module.hparams.task)

    @property
    def task_kwargs(self) -> dict[str, Any]:
        """The task options the model was trained with (``vocab_size``, ``level``, ...)."""
        return dict(self.module.hparams.task_kwargs or {})

    def describe(self) -> str:
        """One line: cell, size and checkpoint, for the commands' headers."""
        hp = self.module.hparams
        return (f"{hp.cell} {hp.num_layers}x{hp.hidden_size} on task {hp.task}, "
                f"{self.module.num_parameters():,} parameters, from {self.checkpoint}")


_WHAT = ("give a run folder (runs/NAME/version_K, holding config.yaml and checkpoints/), the "
         "runs/NAME folder above it (its newest version is used) or a .ckpt file")


def resolve_checkpoint(run: str | Path, which: str | None = None) -> tuple[Path, Path | None]:
    """The checkpoint file and run folder that ``run`` names.

    Args:
        run: A run folder (``config.yaml`` + ``checkpoints/``), a ``runs/NAME`` folder whose
            newest ``version_K`` holding a checkpoint is taken, or a ``.ckpt`` file.
        which: ``"best"`` or ``"last"``; ``None``: ``best.ckpt`` when the run has one (the
            checkpoint with the best validation metric), else ``last.ckpt``.

    Returns:
        ``(checkpoint, run_dir or None)``.

    Raises:
        InferenceError: ``run`` names nothing usable (the message says what to give).
    """
    if which is not None and which not in CHECKPOINTS:
        raise InferenceError(f"--checkpoint must be best or last, got {which!r}")
    path = Path(run)
    if not path.exists():
        raise InferenceError(f"{path} does not exist; {_WHAT}")
    if path.is_file():
        if which is not None:
            raise InferenceError(f"--checkpoint {which} picks a file of a run folder; {path} "
                                 "is a checkpoint file already: drop --checkpoint")
        folder = path.parent.parent
        in_run = path.parent.name == "checkpoints" and (folder / "config.yaml").is_file()
        return path, folder if in_run else None
    if not (path / "config.yaml").is_file() and not (path / "checkpoints").is_dir():
        versions = sorted(
            (p for p in path.glob("version_*") if any((p / "checkpoints").glob("*.ckpt"))),
            key=lambda p: int(p.name[8:]) if p.name[8:].isdigit() else -1,
        )
        if not versions:
            raise InferenceError(f"{path} is not a run folder (no config.yaml, no checkpoints/ "
                                 f"and no version_K folder with a checkpoint); {_WHAT}")
        path = versions[-1]
    ckpts = path / "checkpoints"
    names = [which] if which else list(CHECKPOINTS)
    for name in names:
        if (ckpts / f"{name}.ckpt").is_file():
            return ckpts / f"{name}.ckpt", path
    found = sorted(p.name for p in ckpts.glob("*.ckpt")) if ckpts.is_dir() else []
    raise InferenceError(
        f"run folder {path} has no checkpoints/{' or '.join(f'{n}.ckpt' for n in names)}"
        + (f" (it has {', '.join(found)})" if found else "")
        + "; train it first with rnnbench fit, or name a .ckpt file"
    )


def load_model(run: str | Path, which: str | None = None) -> LoadedModel:
    """Loads a trained model from a run folder or a checkpoint file.

    The checkpoint is read with ``weights_only=True`` (see :mod:`rnnbench.checkpointing`):
    the model is rebuilt from the hyper-parameters saved in it, then given its weights.

    Args:
        run: See :func:`resolve_checkpoint`.
        which: ``"best"``, ``"last"`` or ``None`` (best if there is one).

    Raises:
        InferenceError: Nothing usable at ``run``, or a checkpoint rnnbench did not write.
        rnnbench.checkpointing.CheckpointError: The file is unreadable or carries code.
    """
    from rnnbench.module import RNNModule

    ckpt_path, run_dir = resolve_checkpoint(run, which)
    ckpt = load_checkpoint(ckpt_path)
    hp = ckpt.get("hyper_parameters")
    if not isinstance(hp, dict) or "task" not in hp:
        raise InferenceError(
            f"{ckpt_path} holds weights but no rnnbench hyper-parameters (task, cell, sizes), "
            "so the model cannot be rebuilt; use a checkpoint written by rnnbench fit"
        )
    hp = {**hp, "cuda_graphs": False}  # inference never trains
    module = RNNModule(**hp)
    missing, unexpected = module.load_state_dict(ckpt["state_dict"], strict=False)
    if missing or unexpected:
        raise InferenceError(
            f"{ckpt_path} does not fit the model its hyper-parameters describe (missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); was it edited?"
        )
    module.eval()
    cfg = None
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        from rnnbench.config import load_config

        cfg = load_config(run_dir / "config.yaml")
    return LoadedModel(module, ckpt_path, run_dir, cfg)


def default_data(loaded: LoadedModel) -> dict[str, Any] | None:
    """The run's ``data:`` section; for a bare language-model checkpoint, PTB at its level."""
    if loaded.cfg is not None:
        return copy.deepcopy(loaded.cfg["data"])
    if loaded.task_name == "lm":
        level = loaded.task_kwargs.get("level", "word")
        return {"dataset": "ptb_char" if level == "char" else "ptb"}
    return None


__all__ = ["CHECKPOINTS", "InferenceError", "LoadedModel", "default_data",
           "load_model", "resolve_checkpoint"]
