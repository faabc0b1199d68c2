"""A population's members: each one's module, data, optimiser and bookkeeping
(:class:`Member`), how it ended (:class:`MemberResult`), and the per-member wrappers that
``torch.func`` batches over the members (task head, loss, encoder). Used by
:mod:`rnnbench.population`, which re-exports the public names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rnnbench.tasks.base import Task

# What a member's per-epoch callback sees and returns: (epoch (1-based), metrics) -> None to
# go on, or the reason to stop it (pruned).
EpochCallback = Callable[[int, dict[str, float]], "str | None"]


@dataclass
class MemberResult:
    """How one member ended: ``state`` COMPLETE, PRUNED or FAIL (``fail_kind`` says why)."""

    index: int
    state: str = "COMPLETE"
    reason: str = ""
    fail_kind: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[int, float] = field(default_factory=dict)  # epoch -> monitored metric
    best_epoch: int | None = None
    best_value: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    losses: list[float] = field(default_factory=list)  # per training step (record_losses)
    log: list[dict[str, float]] = field(default_factory=list)  # per epoch, as metrics.csv
    num_parameters: int = 0
    hidden_size: int = 0
    wall_time_s: float = 0.0


class Member:
    """One member's module, data, optimiser and bookkeeping (plain object, no autograd)."""

    def __init__(self, index: int, cfg: dict[str, Any], module: Any, datamodule: Any,
                 callback: EpochCallback | None) -> None:
        hp = module.hparams
        self.index, self.cfg, self.module, self.dm, self.callback = (
            index, cfg, module, datamodule, callback)
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.build_optimizer(capturable=False)
        self.result = MemberResult(index, num_parameters=module.num_parameters(),
                                   hidden_size=int(hp.hidden_size))
        self.active = True
        self.steps, self.loss_sum, self.units = 0, 0.0, 0.0  # this epoch's: for the log

    def build_optimizer(self, capturable: bool) -> None:
        """(Re)builds the member's optimiser and scheduler from its hyper-parameters;
        ``capturable`` for a step a CUDA graph captures (state kept on the device)."""
        from rnnbench.optim import build_optimizer, build_scheduler

        hp = self.module.hparams
        self.opt = build_optimizer(hp.optimizer, self.params, lr=hp.lr, momentum=hp.momentum,
                                   weight_decay=hp.weight_decay, capturable=capturable)
        self.sched = build_scheduler(self.opt, hp.scheduler, mode=self.module.task.mode,
                                     max_epochs=self.cfg["trainer"].get("max_epochs"))


def task_options(module: Any) -> dict[str, Any]:
    """A member's task options, less the output dropout (``task.dropout``), which a
    population applies per member before :meth:`Task.logits`."""
    opts = dict(module.hparams.task_kwargs or {})
    if type(module.task).logits is not Task.logits:
        opts.pop("dropout", None)
    return opts


class Head(nn.Module):
    """Task head + loss of one member, as one module ``functional_call`` can batch."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, y, targets, mask, lengths):
        out = self.task.logits(y, mask, lengths)  # task outputs (output dropout applied)
        loss, count = self.task.loss(out, targets, mask)  # (), ()
        return out, loss, torch.as_tensor(count, dtype=loss.dtype, device=loss.device)


class Out(nn.Module):
    """Task head of one member (its outputs only; the loss is batched by the task)."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, y, mask, lengths):
        return self.task.logits(y, mask, lengths)  # task outputs (output dropout applied)


class Encode(nn.Module):
    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, inputs):
        return self.task.encode(inputs)  # (B, T, I)


# ---------------------------------------------------------------- the members' trainer config
def trainer_schedule(trainer: dict[str, Any]) -> tuple[int, int | None, int]:
    """``(max_epochs, max_steps or None, check_val_every_n_epoch)`` of a trainer config."""
    max_steps = trainer.get("max_steps")
    max_steps = None if max_steps is None or int(max_steps) < 0 else int(max_steps)
    return (int(trainer.get("max_epochs") or (10**9 if max_steps is not None else 1)),
            max_steps, int(trainer.get("check_val_every_n_epoch") or 1))


def limit_batches(limit: int | float | None, n: int) -> int:
    """Lightning's ``limit_*_batches``: an int is a count, a float a fraction."""
    if limit is None:
        return n
    if isinstance(limit, float) and limit <= 1.0:
        return int(n * limit)
    return min(int(limit), n)


def member_device(cfg: dict[str, Any]) -> torch.device:
    """The device a member's ``trainer.accelerator`` asks for (``auto``: CUDA when there)."""
    accel = str(cfg["trainer"].get("accelerator", "auto"))
    if accel in ("gpu", "cuda") or (accel == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


__all__ = ["Encode", "EpochCallback", "Head", "Member", "MemberResult", "Out", "limit_batches",
           "member_device", "task_options", "trainer_schedule"]
