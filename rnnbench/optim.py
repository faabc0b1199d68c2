"""Optimiser and scheduler tables: a config name to a ``torch.optim`` object, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

# name -> (factory(params, lr, momentum, weight_decay, extra)); ``extra`` carries
# ``capturable=True`` for the optimisers a CUDA graph may capture.
OptimizerFactory = Callable[..., torch.optim.Optimizer]

OPTIMIZER_TABLE: dict[str, OptimizerFactory] = {
    "sgd": lambda params, lr, momentum, weight_decay, extra: torch.optim.SGD(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay),
    "adam": lambda params, lr, momentum, weight_decay, extra: torch.optim.Adam(
        params, lr=lr, weight_decay=weight_decay, **extra),
    "adamw": lambda params, lr, momentum, weight_decay, extra: torch.optim.AdamW(
        params, lr=lr, weight_decay=weight_decay, **extra),
    "rmsprop": lambda params, lr, momentum, weight_decay, extra: torch.optim.RMSprop(
        params, lr=lr, momentum=momentum, weight_decay=weight_decay, **extra),
}
OPTIMIZERS = tuple(OPTIMIZER_TABLE)
# Optimisers that keep their step count on the device when built ``capturable``.
CAPTURABLE = ("adam", "adamw", "rmsprop")
# Optimisers with a fused CPU kernel: one call updates every tensor (the default, one
# tensor at a time, costs ~0.15 ms more a step for a 20K-parameter model on this CPU).
FUSED_ON_CPU = ("adam", "adamw")


def build_optimizer(name: str, params: Iterable[torch.nn.Parameter], *, lr: float,
                    momentum: float = 0.0, weight_decay: float = 0.0,
                    capturable: bool = False) -> torch.optim.Optimizer:
    """The optimiser a config names (``sgd``, ``adam``, ``adamw``, ``rmsprop``).

    Adam and AdamW on CPU parameters use torch's fused kernel (the same update; float
    rounding may differ from the per-tensor loop in the last bits).
    """
    params = list(params)
    extra: dict[str, Any] = {}
    if capturable and name in CAPTURABLE:
        extra["capturable"] = True
    elif name in FUSED_ON_CPU and params and all(p.device.type == "cpu" for p in params):
        extra["fused"] = True
    return OPTIMIZER_TABLE[name](params, lr, momentum, weight_decay, extra)


def _decay_after(opt, s: dict[str, Any], mode: str, max_epochs: int | None):
    # Zaremba et al.: keep the rate for start_epoch epochs, then multiply by factor each epoch.
    start, factor = int(s.get("start_epoch", 4)), float(s.get("factor", 0.5))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda epoch: factor ** max(0, epoch + 1 - start))


def _plateau(opt, s: dict[str, Any], mode: str, max_epochs: int | None):
    # "Deep Learning from Scratch 2": divide when validation does not improve.
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, factor=float(s.get("factor", 0.25)),
        patience=int(s.get("patience", 0)), threshold=0.0)


def _cosine(opt, s: dict[str, Any], mode: str, max_epochs: int | None):
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=int(s.get("t_max", max_epochs or 10)))


def _step(opt, s: dict[str, Any], mode: str, max_epochs: int | None):
    return torch.optim.lr_scheduler.StepLR(
        opt, step_size=int(s.get("step_size", 1)), gamma=float(s.get("factor", 0.5)))


SCHEDULER_TABLE: dict[str, Callable[..., Any]] = {
    "decay_after": _decay_after, "plateau": _plateau, "cosine": _cosine, "step": _step,
}
SCHEDULERS = ("none", *SCHEDULER_TABLE)


def build_scheduler(opt: torch.optim.Optimizer, scheduler: dict[str, Any] | None, *,
                    mode: str = "min", max_epochs: int | None = None) -> Any | None:
    """The per-epoch scheduler a config's ``optim.scheduler`` names, or ``None``."""
    options = dict(scheduler or {})
    name = options.pop("name", "none")
    if name == "none":
        return None
    return SCHEDULER_TABLE[name](opt, options, mode, max_epochs)
