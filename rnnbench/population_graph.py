"""A population's training step replayed as one CUDA graph (streaming tasks).

On a GPU a population of small models spends its step waiting for the host to launch
kernels, as a single small model does (``graphs.py``); the whole lockstep step (every
member's forward, loss, backward, its own clipping and its own optimiser step, and the
carried state) is captured once as a :class:`~rnnbench.graphs.GroupedStepGraph` and
replayed for every later window of the same shape.

What the eager step reads on the host every step (each member's loss, for its epoch mean,
and whether it is finite) is kept on the device instead and read every ``check_every``
steps, at the end of an epoch and before any step that runs eagerly: a member whose loss
turned NaN/inf is then dropped as the eager step would drop it (it keeps training on
garbage until that read, which costs only its own slice: members share no arithmetic).

Used as the single-model graphs are: streaming (TBPTT) tasks, windows of one shape with no
padding mask or document resets, no weight noise, capturable optimisers; ``emulate`` runs
the same bookkeeping eagerly on any device (what the CPU tests exercise). Everything else
takes the eager step, with one log line saying why.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from rnnbench.data.batch import Batch
from rnnbench.graphs import GroupedStepGraph, cuda_graphs_available
from rnnbench.optim import CAPTURABLE

_log = logging.getLogger(__name__)
State = tuple[torch.Tensor, ...]


def graphs_off_reason(mode: Any, members: list[Any], task: Any, device: torch.device
                      ) -> str | None:
    """Why a population with these members may not replay its steps as a CUDA graph
    (``None`` when it may). ``mode`` is the members' ``optim.cuda_graphs``."""
    if mode is False:
        return "turned off (optim.cuda_graphs: false)"
    if not task.streaming:
        return f"task {task.name!r} is not a streaming (TBPTT) task"
    if any(float(getattr(m.module.hparams, "weight_noise", 0.0) or 0.0) > 0.0 for m in members):
        return "weight_noise > 0 (the noisy forward/backward runs eagerly)"
    if mode == "emulate":
        return None
    reason = cuda_graphs_available(device)
    if reason is not None:
        return reason
    for m in members:
        name = m.module.hparams.optimizer
        if name not in CAPTURABLE and name != "sgd":
            return f"the optimiser {name!r} cannot be captured"
    return None


class PopulationGraphs:
    """The graphed training step of a :class:`~rnnbench.population.Population`.

    Args:
        population: The owner (its members, task, device and ``_forward``).
        mode: The members' ``optim.cuda_graphs`` (``auto``, ``True``, ``False``,
            ``emulate``).
        check_every: Steps between the host reads of the members' losses.
    """

    def __init__(self, population: Any, mode: Any, check_every: int = 100) -> None:
        self.pop = population
        self.emulate = mode == "emulate"
        self.check_every = max(int(check_every), 1)
        self.off = graphs_off_reason(mode, population.members, population.task,
                                     population.device)
        if self.off is not None:
            if mode is True or population.device.type == "cuda":
                _log.info("rnnbench: population CUDA graphs off: %s", self.off)
        elif not self.emulate:
            _log.info("rnnbench: population training steps run as one CUDA graph (after 3 "
                      "eager warm-up steps); set optim.cuda_graphs=false to turn them off")
        self.graph: GroupedStepGraph | None = None
        self._key: tuple[int, ...] | None = None
        self._count: torch.Tensor | None = None  # (K,) the body's last per-member counts
        self._pending: list[tuple[list[Any], torch.Tensor, torch.Tensor]] = []
        self._said: set[str] = set()

    @property
    def replays(self) -> int:
        return 0 if self.graph is None else self.graph.replays

    def wants(self, batches: list[Batch]) -> bool:
        """Whether these batches may take the graphed step."""
        if self.off is not None:
            return False
        for b in batches:
            if b.reset is not None:
                self._say("reset", "windows with document-boundary resets run eagerly")
                return False
            if b.mask is not None:
                self._say("mask", "windows with a padding mask run eagerly")
                return False
        return True

    def step(self, members: list[Any], inputs: torch.Tensor, targets: torch.Tensor,
             state: State | None) -> State | None | bool:
        """Trains every member on one window; returns the carried state (each
        ``(K, L * D, B, H)``), or ``False`` when this window must run eagerly (its shape
        differs from the captured one), having read what was pending first."""
        key = tuple(m.index for m in members)
        if self.graph is None or self._key != key:
            self.flush()
            self.graph, self._key = self._make(members), key
        graph = self.graph
        if not graph.accepts((inputs, targets)):
            self._say("shape", f"windows of shape {tuple(inputs.shape[1:])} differ from the "
                      f"captured {graph._key[0][0][1:]} and run eagerly (e.g. the short last "
                      "window of an epoch)")
            self.flush()
            return False
        pop = self.pop
        loss, _, new_state = graph.step(
            (inputs, targets), state,
            lambda: tuple(s.to(inputs.device) for s in pop._backbone(members).init_state(
                inputs.size(1))))
        self._pending.append((members, loss, self._count.clone()))
        if len(self._pending) >= self.check_every:
            self.flush()
        return new_state

    def flush(self) -> None:
        """Reads the pending steps' losses (one host sync): adds them to each member's
        epoch sums and drops a member whose loss was not finite."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        losses = torch.stack([loss for _, loss, _ in pending]).tolist()  # steps x K
        counts = torch.stack([count for _, _, count in pending]).tolist()
        for members, values, n in zip((p[0] for p in pending), losses, counts):
            for k, m in enumerate(members):
                if not m.active:
                    continue
                if not math.isfinite(values[k]):
                    self.pop._drop(m, "FAIL", "nonfinite", (
                        f"training loss became {values[k]} (cell {m.module.hparams.cell}, lr "
                        f"{m.module.hparams.lr}); lower the learning rate, clip gradients or "
                        "use a gated cell"))
                    continue
                if self.pop.record_losses:
                    m.result.losses.append(values[k])
                m.steps, m.loss_sum, m.units = (m.steps + 1, m.loss_sum + values[k] * n[k],
                                                m.units + n[k])

    def _make(self, members: list[Any]) -> GroupedStepGraph:
        pop = self.pop
        sum_time = members[0].module.hparams.loss_reduction == "sum_time"

        def body(inputs: tuple[torch.Tensor, ...], state: State):
            x, y = inputs
            _, loss, count, new_state = pop._forward(members, x, y, None, state)
            self._count = count.detach()  # the graph's own output once captured
            back = loss * y.shape[2] if sum_time else loss  # (K,)
            return loss, back.sum(), new_state

        groups = [(m.params, m.opt, m.module.hparams.clip) for m in members]
        return GroupedStepGraph(body, groups, emulate=self.emulate)

    def _say(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            _log.info("rnnbench: population: %s", message)


__all__ = ["PopulationGraphs", "graphs_off_reason"]
