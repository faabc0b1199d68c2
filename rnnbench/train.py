"""One training run: build data + module + trainer from a composed config, fit, test."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.config import ConfigError, save_config


# ---------------------------------------------------------------- building
def build_module(cfg: dict[str, Any], bundle: Any, *, device: Any = None):
    """The :class:`~rnnbench.module.RNNModule` a config describes for a data bundle.

    Resolves ``model.param_budget`` into a hidden size and moves the task options found
    under ``model:`` (``tie_weights``, ``embedding_dropout``, ``embedding_size``) to the
    task. ``device="meta"`` builds it without allocating weights (to count parameters).
    """

    import torch

    from rnnbench.module import RNNModule

    model = dict(cfg["model"])
    task_kwargs = {**bundle.task_kwargs, **cfg.get("task", {})}
    for key, target in (("tie_weights", "tie_weights"), ("embedding_dropout", "dropout"),
                        ("embedding_size", "embedding_size")):
        if key in model:
            task_kwargs[target] = model.pop(key)
    budget = model.pop("param_budget", None)
    if budget:
        from rnnbench.sizing import hidden_for_budget

        model["hidden_size"] = hidden_for_budget(
            int(budget), bundle.task, task_kwargs,
            {k: v for k, v in model.items() if k != "hidden_size"},
        )
    ctx = torch.device(device) if device is not None else contextlib.nullcontext()
    with ctx:
        try:
            return RNNModule(task=bundle.task, task_kwargs=task_kwargs, **model, **cfg["optim"])
        except TypeError as err:  # a cell or task given an option it does not take
            if "unexpected keyword" not in str(err):
                raise
            raise ConfigError(
                f"model.cell_kwargs / task: {err}; cell {model.get('cell')!r} or task "
                f"{bundle.task!r} does not take that option: remove it") from None


def build(cfg: dict[str, Any]):
    """Builds ``(module, datamodule, bundle)`` from a composed config."""
    import lightning as L

    from rnnbench.data.catalog import build_data

    L.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    bundle = build_data(cfg["data"], seed=int(cfg.get("seed", 0)))
    module = build_module(cfg, bundle)
    return module, bundle.datamodule, bundle


@dataclass
class RunResult:
    """What a run produced: final metrics, size, time and where its files are."""

    metrics: dict[str, float]
    num_parameters: int
    hidden_size: int
    wall_time_s: float  # fitting and testing (what throughput is computed from)
    run_dir: str | None
    best_checkpoint: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    monitor: str = ""
    mode: str = "min"
    setup_time_s: float = 0.0  # before fitting: data, model, loggers, trainer


def trainer_kwargs(cfg: dict[str, Any], streaming: bool = True) -> dict[str, Any]:
    """Lightning Trainer arguments from ``cfg['trainer']`` plus the framework's fixed ones.

    Streams lay out their rows per rank themselves (a DistributedSampler would shuffle
    them), so ``use_distributed_sampler`` is off for streaming tasks and on for sets of
    independent sequences, which each rank should split.
    """
    kw = dict(cfg["trainer"])
    kw.setdefault("enable_model_summary", False)
    kw["enable_progress_bar"] = bool(cfg["logging"].get("progress_bar", True))
    kw["use_distributed_sampler"] = not streaming
    return kw


def progress_refresh_rate(cfg: dict[str, Any]) -> int:
    """Batches between progress-bar refreshes: ``logging.progress_every``, else 1 on CPU and
    25 on a GPU (every refresh reads the loss, which makes the host wait for the GPU)."""
    every = cfg["logging"].get("progress_every")
    if every is not None:
        return int(every)
    accel = str(cfg["trainer"].get("accelerator", "auto"))
    if accel in ("gpu", "cuda"):
        return 25
    if accel == "auto":
        import torch

        return 25 if torch.cuda.is_available() else 1
    return 1


def run(
    cfg: dict[str, Any],
    *,
    callbacks: Sequence[Any] = (),
    loggers: Sequence[Any] = (),
    resume: bool = False,
    test: bool = True,
    run_dir: str | Path | None = None,
) -> RunResult:
    """Trains (and tests) one model as ``cfg`` says; returns its metrics.

    Args:
        cfg: Composed config (see :func:`load_config`).
        callbacks: Extra Lightning callbacks (e.g. a pruning callback).
        loggers: Extra Lightning loggers (e.g. W&B); CSV/TensorBoard come from the config.
        resume: Continue the newest run of this config from its ``last.ckpt``.
        test: Evaluate the best checkpoint on the test split after fitting.
        run_dir: Where to write logs and checkpoints (default
            ``{logging.dir}/{name}/version_k``).
    """
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from rnnbench.runlog import SAFE_LOAD, RunFolder

    t_setup = time.perf_counter()
    log = cfg["logging"]
    folder = RunFolder.open(cfg, run_dir=run_dir, resume=resume)  # reads a resumed ckpt safely
    with folder.removed_if_failed_empty():
        module, datamodule, bundle = build(cfg)
        # The composed config: `rnnbench fit <run folder>/config.yaml` runs it again.
        save_config(cfg, folder.path, only_if_changed=True)
        all_loggers = [*loggers, *folder.loggers(log)]  # continues metrics.csv / TB on resume
        cbs = list(callbacks)
        if log.get("progress_bar", True):
            from rnnbench.callbacks import LossProgressBar

            cbs.append(LossProgressBar(refresh_rate=progress_refresh_rate(cfg)))
        # Without a validation pass there is nothing to rank checkpoints by: keep the last.
        validates = cfg["trainer"].get("limit_val_batches", 1) != 0 and bool(
            datamodule.val_dataloader()
        )
        ckpt_cbs = folder.checkpoint_callbacks(
            cfg.get("checkpoint", {}), module.monitor if validates else None, module.monitor_mode
        )
        kwargs = trainer_kwargs(cfg, streaming=module.task.streaming)
        _cap_log_interval(kwargs, datamodule)
        try:
            trainer = L.Trainer(
                **kwargs,
                callbacks=[*cbs, *ckpt_cbs],
                logger=all_loggers or False,
                enable_checkpointing=bool(ckpt_cbs),
                plugins=folder.plugins(),
                default_root_dir=str(folder.path),
            )
        except (MisconfigurationException, ValueError, TypeError, ImportError) as err:
            # Lightning refuses a trainer: value (devices=abc, max_time=xyz, an accelerator
            # whose package is missing) before anything ran: a config mistake, not a crash.
            raise ConfigError(f"the trainer: section was refused by lightning.Trainer: "
                              f"{str(err).strip().rstrip('.')}; fix that trainer option") from None
        t0 = time.perf_counter()
        setup = t0 - t_setup
        with flushed_denormals(bool(cfg.get("flush_denormal", False))):
            trainer.fit(module, datamodule=datamodule, ckpt_path=folder.ckpt_path, **SAFE_LOAD)
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if _scalar(v)}
            best = folder.best_checkpoint
            if test and datamodule.test_dataloader():
                out = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False,
                                   **SAFE_LOAD)
                for row in out:
                    metrics.update({k: float(v) for k, v in row.items()})
        wall = time.perf_counter() - t0
    return RunResult(
        metrics=metrics,
        num_parameters=module.num_parameters(),
        hidden_size=module.hparams.hidden_size,
        wall_time_s=wall,
        run_dir=str(folder.path),
        best_checkpoint=best,
        monitor=module.monitor,
        mode=module.monitor_mode,
        setup_time_s=setup,
    )


def _cap_log_interval(kwargs: dict[str, Any], datamodule: Any) -> None:
    """Logs at least once an epoch: ``log_every_n_steps`` is cut to the epoch's batches (a
    small data set would otherwise log no training step, and Lightning warns about it)."""
    try:
        batches = len(datamodule.train_dataloader())
    except Exception:  # noqa: BLE001 - a loader without a length: leave it to Lightning
        return
    limit = kwargs.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        batches = min(batches, limit)
    elif isinstance(limit, float) and 0 < limit < 1:
        batches = max(1, int(batches * limit))
    every = int(kwargs.get("log_every_n_steps", 50) or 50)
    if 0 < batches < every:
        kwargs["log_every_n_steps"] = batches


@contextlib.contextmanager
def flushed_denormals(on: bool):
    """Flushes subnormal floats to zero on the CPU while the block runs (``flush_denormal``).

    Off by default: on the main job (JSB, tanh RNN, 5 epochs) it measured no gain and left
    the validation NLL unchanged (docs/benchmarks.md, "Denormals"). The setting belongs to
    the process, so it is switched back off afterwards (Python starts with it off).
    """
    import torch

    if not on:
        yield
        return
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _scalar(v: Any) -> bool:
    """Whether a logged value reads as one number (NaN and inf included)."""
    try:
        float(v)
    except (TypeError, ValueError, RuntimeError):
        return False
    return True
