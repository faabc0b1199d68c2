"""Whole-step CUDA graphs for stateful truncated BPTT.

A TBPTT training step always has the same shapes: a ``(B, T)`` window in, a carried
``(L, B, H)`` state in and out. At the batch sizes RNN papers use (B = 20) a GPU spends most
of such a step waiting for the host to launch its hundreds of small kernels, so the whole
step (forward, loss, backward, gradient clipping, optimiser step and the state carry) is
captured once as a CUDA graph and replayed for every later window.

:class:`StepGraph` owns the static buffers a graph needs: the batch is copied into static
input tensors, the hidden state lives in static tensors that the graph itself overwrites
with the window's final state (so the carry costs nothing), and the loss and gradient norm
come back as static device tensors, read by the host only when it logs them.

Changing an optimiser hyper-parameter (a scheduler's new learning rate) re-captures the
graph before the next step, since the captured kernels hold the old value. What cannot be
captured runs eagerly and is the caller's decision (see ``RNNModule``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

State = tuple[torch.Tensor, ...]
# body(static_inputs, static_state) -> (loss to report, loss to differentiate, new state)
Body = Callable[[tuple[torch.Tensor, ...], State], tuple[torch.Tensor, torch.Tensor, State]]


def cuda_graphs_available(device: torch.device | str | None) -> str | None:
    """Why whole-step CUDA graphs cannot run on ``device`` (``None`` when they can)."""
    device = torch.device(device) if device is not None else None
    if device is None or device.type != "cuda":
        return "the model is not on a CUDA device"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    return None


class StepGraph:
    """One training step captured as a CUDA graph, with static inputs, state and outputs.

    The first ``warmup`` calls run the step eagerly on a side stream (they are real training
    steps; they let lazy optimiser state, cuDNN workspaces and ``torch.compile`` settle);
    the next call captures the step and replays it; every later call copies its inputs
    into the static buffers and replays.

    Args:
        body: ``body(inputs, state) -> (loss, backward_loss, new_state)``: the forward pass
            and loss of one window. ``loss`` is what is reported, ``backward_loss`` what is
            differentiated (e.g. the loss summed over time). Called with the static
            buffers; it must not synchronise with the host.
        params: The parameters the optimiser updates (clipped together).
        optimizer: A ``torch.optim`` optimiser; Adam, AdamW and RMSprop need
            ``capturable=True``.
        clip: Max global gradient norm (``None`` or 0: no clipping; the norm is still
            returned).
        warmup: Eager steps before the capture.
        emulate: Run the captured body eagerly on the static buffers instead of capturing
            (no CUDA needed). Lets CPU tests exercise every piece of bookkeeping the
            graphed path has.
    """

    def __init__(
        self,
        body: Body,
        params: Sequence[torch.nn.Parameter],
        optimizer: torch.optim.Optimizer,
        clip: float | None,
        *,
        warmup: int = 3,
        emulate: bool = False,
    ) -> None:
        self.body = body
        self.params = list(params)
        self.optimizer = optimizer
        self.clip = float(clip) if clip else None
        self.warmup = max(int(warmup), 1)
        self.emulate = bool(emulate)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, ...] | None = None
        self.state: State | None = None
        self.loss: torch.Tensor | None = None
        self.grad_norm: torch.Tensor | None = None
        self.captures = 0
        self.replays = 0
        self._key: tuple | None = None
        self._hyper: list[dict[str, Any]] | None = None
        self._eager_left = self.warmup

    # ------------------------------------------------------------------ shapes
    @staticmethod
    def _signature(tensors: Sequence[torch.Tensor]) -> tuple:
        return tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)

    def accepts(self, inputs: Sequence[torch.Tensor]) -> bool:
        """Whether these input shapes match the buffers (always true before the first step)."""
        return self._key is None or self._key == self._signature(inputs)

    def _hyperparameters(self) -> list[dict[str, Any]]:
        out = []
        for group in self.optimizer.param_groups:
            out.append({
                k: (("tensor", id(v)) if isinstance(v, torch.Tensor) else v)
                for k, v in group.items() if k != "params"
            })
        return out

    # ------------------------------------------------------------------ the step
    def _run_body(self) -> tuple[torch.Tensor, torch.Tensor]:
        loss, backward_loss, new_state = self.body(self.inputs, self.state)
        backward_loss.backward()
        norm = self._clip_and_step()
        with torch.no_grad():
            for buf, new in zip(self.state, new_state):
                buf.copy_(new)  # the carry: next window starts from this window's end
        return loss.detach(), norm.detach()

    def _clip_and_step(self) -> torch.Tensor:
        """Clips the gradients, steps the optimiser; returns the norm before clipping."""
        norm = _clip(self.params, self.clip)
        self.optimizer.step()
        return norm

    def _setup(self, inputs: Sequence[torch.Tensor], state: State) -> None:
        self.inputs = tuple(torch.empty_like(x, memory_format=torch.contiguous_format)
                            for x in inputs)
        self.state = tuple(torch.zeros_like(s) for s in state)
        self._key = self._signature(inputs)
        self.graph = None
        self._eager_left = self.warmup

    def step(
        self,
        inputs: Sequence[torch.Tensor],
        state: State | None,
        init_state: Callable[[], State],
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Trains on one window.

        Args:
            inputs: The window's tensors (copied into the static buffers).
            state: The carried state, or ``None`` to start from zeros. Passing back the
                ``state`` this object returned costs nothing (it already holds it).
            init_state: Returns a zero state for these inputs; called only when the
                buffers are (re)made, i.e. on the first step or a change of input shapes.

        Returns:
            ``(loss, grad_norm, state)``: device tensors. ``loss`` and ``grad_norm`` are
            fresh copies; ``state`` is the static buffer, valid until the next step.
        """
        if not self.accepts(inputs) or self._key is None:
            self._setup(inputs, init_state())
        with torch.no_grad():
            for buf, x in zip(self.inputs, inputs):
                buf.copy_(x, non_blocking=True)
            if state is None:
                for buf in self.state:
                    buf.zero_()
            elif state[0] is not self.state[0]:
                for buf, s in zip(self.state, state):
                    buf.copy_(s)
        if self.emulate:
            loss, norm = self._eager_step()
            self.replays += 1
        elif self._eager_left > 0:
            loss, norm = self._side_stream_step()
            self._eager_left -= 1
        else:
            if self.graph is None or self._hyper != self._hyperparameters():
                self._capture()
            self.graph.replay()
            self.replays += 1
            loss, norm = self.loss, self.grad_norm
        return loss.clone(), norm.clone(), self.state

    def _eager_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        return self._run_body()

    def _side_stream_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self._eager_step()
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _capture(self) -> None:
        self.graph = None  # release the old graph's memory pool first
        self.loss = self.grad_norm = None
        self.optimizer.zero_grad(set_to_none=True)  # grads are allocated inside the graph
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.loss, self.grad_norm = self._run_body()
        self.graph = graph
        self._hyper = self._hyperparameters()
        self.captures += 1


def _clip(params: Sequence[torch.nn.Parameter], clip: float | None) -> torch.Tensor:
    """Global norm of the gradients of ``params`` (as a device tensor, no host sync), after
    scaling them to at most ``clip`` when given."""
    grads = [p for p in params if p.grad is not None]
    if clip:
        return torch.nn.utils.clip_grad_norm_(grads, clip)
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in grads]))


class _Optimizers:
    """Several optimisers stepped as one (what :class:`StepGraph` calls on its optimiser)."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        self.optimizers = list(optimizers)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()


class GroupedStepGraph(StepGraph):
    """Several models' training steps captured as one graph (a population's members).

    One body computes every model's loss (their sum is differentiated); then each group,
    a model's ``(parameters, optimiser, clip)``, is clipped on its own and stepped by its
    own optimiser, as that model would be alone. ``grad_norm`` is ``(G,)``, one norm per
    group, before clipping.
    """

    def __init__(
        self,
        body: Body,
        groups: Sequence[tuple[Sequence[torch.nn.Parameter], torch.optim.Optimizer,
                               float | None]],
        *,
        warmup: int = 3,
        emulate: bool = False,
    ) -> None:
        self.groups = [(list(params), opt, float(clip) if clip else None)
                       for params, opt, clip in groups]
        super().__init__(body, [p for params, _, _ in self.groups for p in params],
                         _Optimizers([opt for _, opt, _ in self.groups]), None,  # type: ignore[arg-type]
                         warmup=warmup, emulate=emulate)

    def _clip_and_step(self) -> torch.Tensor:
        norms = torch.stack([_clip(params, clip) for params, _, clip in self.groups])
        self.optimizer.step()
        return norms
