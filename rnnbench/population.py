"""Populations: K runs of one variant trained in lockstep as one batched model, each its own.

Each member is built exactly as a solo run builds it (:func:`rnnbench.train.build` with its
own config and seed), so it starts from the same weights, reads its own data order (or the
first member's, with ``shared_order``), and keeps its own optimiser, hyper-parameters,
clipping, scheduler, metrics and best state. Only the forward and backward passes are
shared: :class:`~rnnbench.backbones.population.PopulationBackbone` runs the time loop once
for all members, and the task head and loss run under ``torch.func.vmap``. Every member's
per-step loss equals its solo run's (tests/test_population.py). A member whose loss turns
NaN/inf is dropped (the others go on); a member its callback prunes stops costing compute.

Shapes: K members, B rows, T steps, I features, H units.

The members themselves (module, data, optimiser, result) are in
:mod:`rnnbench.population_member`, the graphed step in :mod:`rnnbench.population_graph`
and the memory sizing of ``study.population: auto`` in :mod:`rnnbench.population_memory`
(the public names re-exported here).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from rnnbench.backbones.population import (
    PopulationBackbone,
    member_dropout,
    same_shapes,
    stack_parameters,
)
from rnnbench.data.batch import Batch, as_batch, stack_batches
from rnnbench.population_graph import PopulationGraphs
from rnnbench.population_member import (
    Encode,
    EpochCallback,
    Head,
    Member,
    MemberResult,
    Out,
    limit_batches,
    member_device,
    task_options,
    trainer_schedule,
)
from rnnbench.population_memory import member_bytes, memory_budget

_log = logging.getLogger(__name__)


class PopulationUnsupported(ValueError):
    """These configs cannot train as one population (run them solo); the message says why."""


class Population:
    """K members of one variant trained in lockstep (see the module docstring).

    Args:
        cfgs: One composed run config per member (same data set, cell and shapes; seeds,
            optimisers, learning rates, weight decay, clip and dropout may differ).
        callbacks: Per member, ``None`` or ``f(epoch, metrics) -> None | reason``, called
            after each validation; a returned reason prunes that member.
        shared_order: Every member reads the first member's batches (one data order).
        path: The backbone path (``auto``, ``batched``, ``vmap``, ``loop``).
        compile_step: Fuse the batched path's gate step with ``torch.compile``.
        keep_best: Keep each member's state dict at its best validation epoch.
        record_losses: Keep every member's per-step training loss (tests, benchmarks).
        device: Where to train (default: CUDA when the configs ask for a GPU, else CPU).
        cuda_graphs: Replay the training step as one CUDA graph (streaming tasks; see
            :mod:`rnnbench.population_graph`): ``auto``, ``True``, ``False`` or ``emulate``;
            default: the members' ``optim.cuda_graphs``.
    """

    def __init__(self, cfgs: Sequence[dict[str, Any]], *,
                 callbacks: Sequence[EpochCallback | None] | None = None,
                 shared_order: bool = False, path: str = "auto", compile_step: bool = False,
                 keep_best: bool = False, record_losses: bool = False,
                 device: str | torch.device | None = None,
                 cuda_graphs: bool | str | None = None) -> None:
        from rnnbench.train import build

        if not cfgs:
            raise PopulationUnsupported("a population needs at least one member config")
        callbacks = list(callbacks or [None] * len(cfgs))
        self.members: list[Member] = []
        for k, cfg in enumerate(cfgs):
            module, dm, _ = build(cfg)  # seeds exactly as a solo run does
            module._noise.bind_seed(torch.initial_seed())  # the member's own noise stream
            self.members.append(Member(k, cfg, module, dm, callbacks[k]))
        self._check(cfgs)
        self.device = torch.device(device) if device is not None else member_device(cfgs[0])
        for m in self.members:
            m.module.to(self.device)
        self.shared_order, self.path, self.compile_step = shared_order, path, compile_step
        self.keep_best, self.record_losses = keep_best, record_losses
        self.task = self.members[0].module.task
        self.monitor = self.members[0].module.monitor
        self.mode = self.task.mode
        self._vmap_ok = {"encoder": True, "task head": True}  # False after vmap fails
        if cuda_graphs not in (None, "auto", True, False, "emulate"):
            raise ValueError("cuda_graphs must be None (the members' optim.cuda_graphs), "
                             f"'auto', True, False or 'emulate'; got {cuda_graphs!r}")
        mode = self.members[0].module.hparams.cuda_graphs if cuda_graphs is None else cuda_graphs
        self._graphs = PopulationGraphs(self, mode)
        if self._graphs.off is None and self.device.type == "cuda":
            for m in self.members:  # a captured optimiser step keeps its state on the device
                m.build_optimizer(capturable=True)

    def _check(self, cfgs: Sequence[dict[str, Any]]) -> None:
        modules = [m.module for m in self.members]
        why = same_shapes(modules)
        if why is not None:
            raise PopulationUnsupported(f"members must share one shape: {why}")
        first = modules[0]
        if first.hparams.tbptt and not first.task.streaming:
            raise PopulationUnsupported("windowed sequences (model.tbptt) train solo")
        if any(getattr(m.dm, "variable_bptt", False) for m in self.members):
            raise PopulationUnsupported("variable-length BPTT windows (data.variable_bptt) "
                                        "scale each window's lr; they train solo")
        for m in modules[1:]:
            if (m.hparams.task, m.hparams.cell, m.hparams.loss_reduction) != (
                    first.hparams.task, first.hparams.cell, first.hparams.loss_reduction):
                raise PopulationUnsupported("members must share task, cell and loss_reduction")
            if task_options(m) != task_options(first):
                # The head and encoder run as member 0's module under vmap: a task option
                # that is not a weight would be member 0's for all (the output dropout is
                # applied per member before the head, so members may differ in it).
                raise PopulationUnsupported(
                    "members must share their task options (task: / model.embedding_dropout); "
                    f"got {dict(first.hparams.task_kwargs or {})} and "
                    f"{dict(m.hparams.task_kwargs or {})}")
        for cfg in cfgs:
            extra = set(cfg["trainer"]) - {"max_epochs", "max_steps", "accelerator",
                                            "devices", "log_every_n_steps",
                                            "limit_train_batches", "limit_val_batches",
                                            "limit_test_batches", "check_val_every_n_epoch",
                                            "enable_model_summary"}
            if extra:
                raise PopulationUnsupported(
                    f"trainer option(s) {sorted(extra)} are not supported in populations")
        budgets = {trainer_schedule(cfg["trainer"]) for cfg in cfgs}
        if len(budgets) > 1:
            raise PopulationUnsupported("members must share max_epochs, max_steps and "
                                        f"check_val_every_n_epoch; got {sorted(budgets)}")
        if trainer_schedule(cfgs[0]["trainer"])[2] > 1 and any(
                isinstance(m.sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
                for m in self.members):
            # Lightning steps it every epoch on the last validation's (stale) value
            raise PopulationUnsupported("a plateau scheduler with check_val_every_n_epoch > 1 "
                                        "trains solo")

    # ------------------------------------------------------------------ fit
    def fit(self) -> list[MemberResult]:
        """Trains every member for ``trainer.max_epochs`` epochs or ``max_steps`` steps (or
        until it is dropped), validating every ``check_val_every_n_epoch`` epochs, as
        Lightning does: an epoch that ``max_steps`` cuts short is not validated."""
        t0 = self._t0 = time.perf_counter()
        trainer = self.members[0].cfg["trainer"]
        max_epochs, max_steps, every = trainer_schedule(trainer)
        for m in self.members:
            m.dm.setup("fit")
            m.train_loader = m.dm.train_dataloader()
            m.val_loader = m.dm.val_dataloader()
            m.module.train()
        steps = 0  # the members step in lockstep
        for epoch in range(1, max_epochs + 1):
            if not self._active() or (max_steps is not None and steps >= max_steps):
                break
            start, size = time.perf_counter(), len(self._active())
            budget = None if max_steps is None else max_steps - steps
            taken, whole = self._train_epoch(trainer.get("limit_train_batches"), budget)
            steps += taken
            validate = whole and epoch % every == 0
            metrics = self.evaluate("val", trainer.get("limit_val_batches")) if validate else {}
            share = (time.perf_counter() - start) / size  # each member's part of the epoch
            for m in self._active():
                self._log_epoch(m, epoch, share, metrics.get(m.index, {}))
                self._end_epoch(m, epoch, metrics.get(m.index, {}), validated=validate)
        wall = time.perf_counter() - t0
        for m in self.members:
            m.result.wall_time_s = wall
            if m.active and m.result.best_value is None and m.result.state == "COMPLETE":
                m.result.state, m.result.fail_kind = "FAIL", "error"
                m.result.reason = f"{self.monitor} was never logged as a finite number"
        return [m.result for m in self.members]

    def test(self, limit: int | float | None = None) -> None:
        """Scores the test split with each finished member's best-validation weights (kept
        with ``keep_best``), as a solo run tests its best checkpoint, and adds the
        ``test/...`` metrics to its result; the weights stay at the best epoch's."""
        members = self._active()
        if not members:
            return
        for m in members:
            if m.result.best_state is not None:
                m.module.load_state_dict(m.result.best_state)
            m.dm.setup("test")
            m.test_loader = m.dm.test_dataloader()
        for index, metrics in self.evaluate("test", limit).items():
            res = self.members[index].result
            res.metrics.update(metrics)
            res.log.append({"epoch": (res.best_epoch or 1) - 1,
                            "step": self.members[index].steps, **metrics})
        wall = time.perf_counter() - self._t0
        for m in self.members:
            m.result.wall_time_s = wall

    def save_best(self, index: int, path: str | Path) -> None:
        """Writes member ``index`` at its best epoch as a checkpoint that ``rnnbench
        evaluate``, ``generate``, ``export`` and :func:`rnnbench.inference.load_model` read
        (weights and hyper-parameters)."""
        from lightning import __version__ as lightning_version

        from rnnbench.checkpointing import atomic_save, to_plain

        m = self.members[index]
        state = m.result.best_state or m.module.state_dict()
        atomic_save(to_plain({
            "state_dict": {k: v.detach().cpu() for k, v in state.items()},
            "hyper_parameters": dict(m.module.hparams),
            "epoch": (m.result.best_epoch or 1) - 1,  # Lightning counts epochs from 0
            "pytorch-lightning_version": lightning_version,
        }), path)

    def _active(self) -> list[Member]:
        return [m for m in self.members if m.active]

    @staticmethod
    def _log_epoch(m: Member, epoch: int, share: float, metrics: dict[str, float]) -> None:
        """The member's row of its epoch: what a solo run's ``metrics.csv`` holds then. Its
        throughput is over its share of the population's time (time / members)."""
        units = max(m.units, 1.0)
        m.result.log.append({"epoch": epoch - 1, "step": m.steps,
                             "train/loss_epoch": m.loss_sum / units,
                             "train/tokens_per_s": m.units / share if share > 0 else math.nan,
                             **metrics})
        m.loss_sum, m.units = 0.0, 0.0

    def _backbone(self, members: list[Member]) -> PopulationBackbone:
        key = tuple(m.index for m in members)
        cached = getattr(self, "_pop", None)
        if cached is None or cached[0] != key:
            pop = PopulationBackbone([m.module.backbone for m in members], path=self.path,
                                     compile_step=self.compile_step)
            self._pop = (key, pop)
        return self._pop[1]

    def _batches(self, members: list[Member], loaders: dict[int, Any]) -> list[Batch] | None:
        try:
            if self.shared_order:
                shared = as_batch(next(loaders[members[0].index]))
                return [shared] * len(members)
            return [as_batch(next(loaders[m.index])) for m in members]
        except StopIteration:
            return None

    def _train_epoch(self, limit: int | float | None, budget: int | None = None
                     ) -> tuple[int, bool]:
        """One epoch of training steps, at most ``budget``; returns the steps taken and
        whether the epoch reached its last batch (Lightning validates only then)."""
        members = self._active()
        lead = members[0]
        loaders = {m.index: iter(m.train_loader)
                   for m in (members[:1] if self.shared_order else members)}
        if self.shared_order:
            loaders = {m.index: loaders[lead.index] for m in members}
        n_batches = limit_batches(limit, len(lead.train_loader))
        todo = n_batches if budget is None else min(n_batches, budget)
        state, taken = None, 0  # carried (streaming) state, each (K, L * D, B, H)
        for _ in range(todo):
            members = self._active()
            if not members:
                break
            batches = self._batches(members, loaders)
            if batches is None:
                n_batches = taken  # the loader ran out: that was the last batch
                break
            state = self._train_step(members, batches, state)
            taken += 1
        self._graphs.flush()
        return taken, taken == n_batches

    def _train_step(self, members: list[Member], batches: list[Batch], state):
        inputs, targets, mask = stack_batches(batches, self.device)
        if any(b.reset is not None for b in batches):
            raise PopulationUnsupported("document-boundary resets are not supported")
        graphs = self._graphs
        if graphs.wants(batches):
            new = graphs.step(members, inputs, targets, state)
            if new is not False:
                return _kept(members, new)
        graphs.flush()  # what the graph trained is read before an eager step
        keep = [k for k, m in enumerate(members) if m.active]
        if len(keep) < len(members):  # that read dropped a member
            if not keep:
                return None
            state = _kept(members, state, keep)
            members, batches = [members[k] for k in keep], [batches[k] for k in keep]
            inputs, targets, mask = stack_batches(batches, self.device)
        for m in members:
            m.module._noise.perturb(m.params)  # weight noise: this update's forward and backward
        try:
            out, loss, count, state = self._forward(members, inputs, targets, mask, state)
            for m in members:
                m.opt.zero_grad(set_to_none=True)
            total = loss
            if self.task.streaming and members[0].module.hparams.loss_reduction == "sum_time":
                total = loss * targets.shape[2]  # sum over the window's steps, mean over rows
            finite = torch.isfinite(loss.detach()).tolist()  # one host sync, as solo on CPU
            total.sum().backward()
            values, counts = loss.detach().tolist(), count.tolist()
        finally:
            for m in members:
                m.module._noise.restore()  # updates (and a failed step) leave clean weights
        for k, m in enumerate(members):
            if not finite[k]:
                self._drop(m, "FAIL", "nonfinite", (
                    f"training loss became {values[k]} (cell {m.module.hparams.cell}, lr "
                    f"{m.module.hparams.lr}); lower the learning rate, clip gradients or use "
                    "a gated cell"))
                continue
            if self.record_losses:
                m.result.losses.append(values[k])
            m.steps, m.loss_sum, m.units = (m.steps + 1, m.loss_sum + values[k] * counts[k],
                                            m.units + counts[k])
            params = [p for p in m.params if p.grad is not None]
            clip = m.module.hparams.clip
            if clip:
                torch.nn.utils.clip_grad_norm_(params, float(clip))
            m.opt.step()
        if state is None or not self.task.streaming:
            return None
        keep = [k for k, m in enumerate(members) if m.active]
        return tuple(s.detach()[keep] for s in state)  # each (K', L * D, B, H)

    def _forward(self, members: list[Member], inputs, targets, mask, state):
        """``(out, loss (K,), count (K,), state)`` of one batch for the active members."""
        pop = self._backbone(members)
        pop.train(members[0].module.training)
        x = self._encode(members, inputs)  # (K, B, T, I)
        lengths = None if mask is None else mask.sum(-1)  # (K, B)
        y, state = pop(x, state, lengths=lengths)  # (K, B, T, H * D)
        if pop.training:  # each member's own task.dropout (tasks apply it before the head)
            y = member_dropout(y, [m.module.task.output_dropout for m in members])
        out, loss, count = self._head(members, y, targets, mask, lengths)
        return out, loss, count, state

    def _encode(self, members: list[Member], inputs: torch.Tensor) -> torch.Tensor:
        tasks = [m.module.task for m in members]
        if self._vmap_ok["encoder"] and any(True for _ in tasks[0].parameters()):
            got = self._vmapped("encoder", [Encode(t) for t in tasks], (inputs,), (0,))
            if got is not None:
                return got
        # No weights (music, forecasting frames): nothing to batch.
        return torch.stack([t.encode(inputs[k]) for k, t in enumerate(tasks)])

    def _head(self, members: list[Member], y, targets, mask, lengths):
        task = members[0].module.task
        if task.has_member_loss and self._vmap_ok["task head"]:
            # The head under vmap, the loss on all members' outputs at once: ops without a
            # batching rule (binary_cross_entropy_with_logits) cost 3x under vmap.
            out = self._vmapped("task head", [Out(m.module.task) for m in members],
                                (y, mask, lengths),
                                (0, None if mask is None else 0, None if lengths is None else 0))
            if out is not None:
                loss, count = task.member_loss(out, targets, mask)  # (K,), (K,)
                return out, loss, count
        heads = [Head(m.module.task) for m in members]
        if self._vmap_ok["task head"]:
            dims = (0, 0, None if mask is None else 0, None if lengths is None else 0)
            got = self._vmapped("task head", heads, (y, targets, mask, lengths), dims)
            if got is not None:
                return got
        outs = [h(y[k], targets[k], None if mask is None else mask[k],
                  None if lengths is None else lengths[k]) for k, h in enumerate(heads)]
        return tuple(torch.stack(o) for o in zip(*outs))

    def _vmapped(self, part: str, modules: list[nn.Module], args: tuple, dims: tuple):
        """``modules[k](*args[k])`` for every member under vmap, or None where vmap fails
        (``part`` then runs one member at a time from now on, said in one log line)."""
        params = stack_parameters(modules)
        try:
            return vmap(lambda p, *a: functional_call(modules[0], p, a),
                        in_dims=(0, *dims), randomness="different")(params, *args)
        except Exception as err:  # noqa: BLE001 - fall back to one member at a time
            self._vmap_ok[part] = False
            _log.warning("population %s runs one member at a time: vmap failed (%s)", part,
                         err)
            return None

    def _drop(self, m: Member, state: str, kind: str, reason: str) -> None:
        m.active = False
        m.result.state, m.result.fail_kind, m.result.reason = state, kind, reason
        for p in m.params:
            p.grad = None

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, stage: str = "val", limit: int | float | None = None
                 ) -> dict[int, dict[str, float]]:
        """Every active member's ``stage/...`` metrics (member index -> metrics)."""
        members = self._active()
        if not members or not getattr(members[0], f"{stage}_loader", None):
            return {}
        for m in members:
            m.module.eval()
        loaders = {m.index: iter(getattr(m, f"{stage}_loader")) for m in members}
        if self.shared_order:
            loaders = {m.index: loaders[members[0].index] for m in members}
        state = None
        n_batches = limit_batches(limit, len(getattr(members[0], f"{stage}_loader")))
        for _ in range(n_batches):
            batches = self._batches(members, loaders)
            if batches is None:
                break
            inputs, targets, mask = stack_batches(batches, self.device)
            out, loss, count, state = self._forward(members, inputs, targets, mask, state)
            state = state if self.task.streaming else None
            for k, m in enumerate(members):
                m.module._loss_means[stage + "_"].update(loss[k], count[k])
                m.module.task.update_metrics(stage, out[k], targets[k],
                                             None if mask is None else mask[k], {})
        metrics = {}
        for m in members:
            meter, task = m.module._loss_means[stage + "_"], m.module.task
            if meter.update_count:
                values = {**task.summarize(meter.compute()), **task.compute_metrics(stage)}
                metrics[m.index] = {f"{stage}/{k}": float(v) for k, v in values.items()}
            meter.reset()
            task.reset_metrics(stage)
            m.module.train()
        return metrics

    def _end_epoch(self, m: Member, epoch: int, metrics: dict[str, float],
                   validated: bool = True) -> None:
        """Scheduler, best state and the member's callback (on validated epochs, as
        Lightning's validation-end hooks) after one epoch."""
        res = m.result
        res.metrics.update(metrics)
        value = metrics.get(self.monitor)
        if value is not None:
            if not math.isfinite(value):
                self._drop(m, "FAIL", "nonfinite", f"{self.monitor} became {value} at epoch "
                           f"{epoch}")
                return
            res.history[epoch] = value
            sign = 1.0 if self.mode == "min" else -1.0
            if res.best_value is None or sign * value < sign * res.best_value:
                res.best_value, res.best_epoch = value, epoch
                if self.keep_best:
                    res.best_state = {k: v.detach().cpu().clone()
                                      for k, v in m.module.state_dict().items()}
        if m.sched is not None:
            if isinstance(m.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                if value is not None:
                    m.sched.step(value)
            else:
                m.sched.step()
        if m.callback is None or not validated:
            return
        try:
            reason = m.callback(epoch, dict(res.metrics))
        except Exception as err:  # noqa: BLE001 - one member's trouble stops that member only
            self._drop(m, "FAIL", "error", f"{type(err).__name__}: {err}")
            return
        if reason:
            self._drop(m, "PRUNED", "", str(reason))


def _kept(members: list[Member], state, keep: list[int] | None = None):
    """The carried state of the members still active (``keep``: their rows)."""
    if keep is None:
        keep = [k for k, m in enumerate(members) if m.active]
        if len(keep) == len(members):
            return state
    return None if state is None else tuple(s[keep] for s in state)


__all__ = ["EpochCallback", "MemberResult", "Population", "PopulationUnsupported", "member_bytes",
           "memory_budget"]
