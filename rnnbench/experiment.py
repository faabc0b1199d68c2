"""One training run from a config: compose YAML, build data + module + trainer, fit, test."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("data", "model", "optim", "trainer", "logging", "checkpoint", "task")
TOP_LEVEL = (*SECTIONS, "seed", "name", "defaults", "description", "study", "quick")
MODEL_KEYS = {
    "cell", "hidden_size", "num_layers", "bidirectional", "dropout", "impl", "cell_kwargs",
    "init", "tbptt", "param_budget",
}
OPTIM_KEYS = {
    "optimizer", "lr", "momentum", "weight_decay", "clip", "scheduler", "loss_reduction",
    "cuda_graphs", "check_finite_every",
}
TASK_KEYS_FROM_MODEL = {"tie_weights", "embedding_dropout", "embedding_size"}

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {"dataset": "ptb"},
    "model": {"cell": "lstm", "hidden_size": 200, "num_layers": 1},
    "optim": {"optimizer": "sgd", "lr": 1.0, "clip": 5.0},
    "trainer": {"max_epochs": 1, "accelerator": "auto", "devices": 1},
    "logging": {"dir": "runs", "csv": True, "tensorboard": False, "wandb": False,
                "progress_bar": True},
    "checkpoint": {"enabled": True, "every_n_train_steps": None},
    "task": {},
}


class ConfigError(ValueError):
    """A config file or override is wrong; the message says what to fix."""


# ---------------------------------------------------------------- config composition
def config_root() -> Path:
    """The ``configs/`` folder of this checkout (or the one next to the working directory)."""
    here = Path(__file__).resolve().parent.parent / "configs"
    return here if here.is_dir() else Path.cwd() / "configs"


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merges ``over`` into a copy of ``base`` (``over`` wins)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """``"model.hidden_size=650"`` -> ``{"model": {"hidden_size": 650}}`` (YAML-typed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    root: Path | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Composes a run config: built-in defaults < ``defaults:`` groups < file < overrides.

    With ``quick``, the file's own ``quick:`` mapping (a smaller version of the same run)
    is merged over the file before the overrides.

    A file may name config groups to start from, one concern per file::

        defaults: {model: lstm_small, data: ptb, trainer: cpu}

    which reads ``configs/model/lstm_small.yaml`` into ``model:`` and so on.

    Raises:
        ConfigError: Missing file, bad YAML, unknown section or group file.
    """
    root = root or config_root()
    cfg = copy.deepcopy(DEFAULTS)
    file_cfg: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        file_cfg = _read_yaml(path)
        cfg["name"] = path.stem
    for group, name in (file_cfg.get("defaults") or {}).items():
        if group not in SECTIONS:
            raise ConfigError(f"defaults names unknown group {group!r}; groups: {SECTIONS}")
        group_file = root / group / f"{name}.yaml"
        if not group_file.exists():
            known = sorted(p.stem for p in (root / group).glob("*.yaml"))
            raise ConfigError(
                f"defaults: {group}: {name} has no file {group_file}; "
                f"known {group} configs: {', '.join(known) or 'none'}"
            )
        cfg[group] = deep_merge(cfg.get(group, {}), _read_yaml(group_file))
    quick_cfg = file_cfg.get("quick")
    file_cfg = {k: v for k, v in file_cfg.items() if k not in ("defaults", "quick")}
    cfg = deep_merge(cfg, file_cfg)
    if quick:
        if not isinstance(quick_cfg, dict):
            raise ConfigError(
                f"--quick: {path} has no quick: section (a mapping of overrides that makes a "
                "short version of the run); run it without --quick"
            )
        cfg = deep_merge(cfg, quick_cfg)
    for text in overrides:
        cfg = deep_merge(cfg, parse_override(text))
    validate_config(cfg)
    return cfg


def validate_config(cfg: dict[str, Any]) -> None:
    """Raises :class:`ConfigError` for unknown keys and malformed values."""
    unknown = set(cfg) - set(TOP_LEVEL)
    if unknown:
        raise ConfigError(
            f"unknown top-level config key(s) {sorted(unknown)}; allowed: {', '.join(TOP_LEVEL)}"
        )
    for section in SECTIONS:
        if not isinstance(cfg.get(section, {}), dict):
            raise ConfigError(f"config section {section!r} must be a mapping")
    bad = set(cfg["model"]) - MODEL_KEYS - TASK_KEYS_FROM_MODEL
    if bad:
        raise ConfigError(
            f"unknown model option(s) {sorted(bad)}; allowed: "
            f"{', '.join(sorted(MODEL_KEYS | TASK_KEYS_FROM_MODEL))}"
        )
    bad = set(cfg["optim"]) - OPTIM_KEYS
    if bad:
        raise ConfigError(
            f"unknown optim option(s) {sorted(bad)}; allowed: {', '.join(sorted(OPTIM_KEYS))}"
        )
    every = cfg["logging"].get("progress_every")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
        raise ConfigError(f"logging.progress_every must be a positive integer, got {every!r}")
    graphs = cfg["optim"].get("cuda_graphs", "auto")
    if graphs not in ("auto", True, False, "emulate"):
        raise ConfigError(
            f"optim.cuda_graphs must be auto, true or false, got {graphs!r} (false runs every "
            "training step eagerly)"
        )
    every = cfg["optim"].get("check_finite_every")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 0):
        raise ConfigError(
            f"optim.check_finite_every must be a non-negative integer or null, got {every!r} "
            "(null: every step on CPU, every logging step on a GPU; 0: never)"
        )
    for key in ("batch_size", "bptt", "eval_batch_size"):
        value = cfg["data"].get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------- building
def build_module(cfg: dict[str, Any], bundle: Any, *, device: Any = None):
    """The :class:`~rnnbench.module.RNNModule` a config describes for a data bundle.

    Resolves ``model.param_budget`` into a hidden size and moves the task options found
    under ``model:`` (``tie_weights``, ``embedding_dropout``, ``embedding_size``) to the
    task. ``device="meta"`` builds it without allocating weights (to count parameters).
    """
    import contextlib

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
        return RNNModule(task=bundle.task, task_kwargs=task_kwargs, **model, **cfg["optim"])


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
    wall_time_s: float
    run_dir: str | None
    best_checkpoint: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    monitor: str = ""
    mode: str = "min"


def trainer_kwargs(cfg: dict[str, Any], streaming: bool = True) -> dict[str, Any]:
    """Lightning Trainer arguments from ``cfg['trainer']`` plus the framework's fixed ones.

    Streams lay out their rows per rank themselves (a DistributedSampler would shuffle
    them), so ``use_distributed_sampler`` is off for streaming tasks and on for sets of
    independent sequences, which each rank should split.
    """
    kw = dict(cfg["trainer"])
    if "gradient_clip_val" in kw:
        raise ConfigError("set gradient clipping with optim.clip, not trainer.gradient_clip_val")
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

    from rnnbench.runlog import SAFE_LOAD, RunFolder

    log = cfg["logging"]
    folder = RunFolder.open(cfg, run_dir=run_dir, resume=resume)  # reads a resumed ckpt safely
    with folder.removed_if_failed_empty():
        module, datamodule, bundle = build(cfg)
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
        trainer = L.Trainer(
            **trainer_kwargs(cfg, streaming=module.task.streaming),
            callbacks=[*cbs, *ckpt_cbs],
            logger=all_loggers or False,
            enable_checkpointing=bool(ckpt_cbs),
            plugins=folder.plugins(),
            default_root_dir=str(folder.path),
        )
        t0 = time.perf_counter()
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
    )


def _scalar(v: Any) -> bool:
    try:
        return math.isfinite(float(v)) or True
    except (TypeError, ValueError):
        return False
