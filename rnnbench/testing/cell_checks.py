"""Contract checks of a single cell: shapes, state, gradients, long runs, detaching."""

from __future__ import annotations

from typing import Any

import torch

from rnnbench.cells import RNNCell
from rnnbench.testing._common import (
    _B,
    _H,
    _I,
    _T,
    _backbone,
    _build,
    _cell_class,
    _close,
    _fail,
    _realistic_state,
    _seeded,
    _step,
)


@_seeded()
def check_shapes(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """``forward(x_t (B, I), state)`` returns ``h_t (B, H)`` and a tuple of ``state_size``
    tensors ``(B, H)``, the first of which is ``h_t``."""
    cls = _cell_class(cell)
    name = "shapes"
    if not (isinstance(cls.state_size, int) and cls.state_size >= 1):
        raise _fail(
            cls,
            name,
            f"state_size is {cls.state_size!r}",
            "set the class attribute state_size to a positive int (1 for h, 2 for (h, c))",
        )
    rnn = _build(cls, name, cell_kwargs)
    if (rnn.input_size, rnn.hidden_size) != (_I, _H):
        raise _fail(
            cls,
            name,
            f"input_size/hidden_size are {rnn.input_size}/{rnn.hidden_size}, expected {_I}/{_H}",
            "call super().__init__(input_size, hidden_size) first",
        )
    state = rnn.init_state(_B)
    h, new_state = _step(rnn, name, torch.randn(_B, _I), state)
    if tuple(h.shape) != (_B, _H):
        raise _fail(
            cls,
            name,
            f"h_t has shape {tuple(h.shape)}, expected (B, H) = {(_B, _H)}",
            "return one (batch, hidden_size) output per step",
        )
    for k, s in enumerate(new_state):
        if not isinstance(s, torch.Tensor) or tuple(s.shape) != (_B, _H):
            shape = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
            raise _fail(
                cls,
                name,
                f"state[{k}] has shape {shape}, expected (B, H) = {(_B, _H)}",
                "every state tensor must be (batch, hidden_size); the backbone stacks them "
                "into (num_layers * num_directions, B, H)",
            )
    if not torch.equal(h, new_state[0]):
        raise _fail(
            cls,
            name,
            "h_t differs from state[0]",
            "by the RNNCell convention the first state tensor is the output h; put h first",
        )


@_seeded()
def check_init_state(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """``init_state(B)`` is a tuple of ``state_size`` zero tensors ``(B, H)`` on the cell's
    device and dtype, and honours explicit ``device``/``dtype``."""
    cls = _cell_class(cell)
    name = "init_state"
    rnn = _build(cls, name, cell_kwargs)
    ref = next(rnn.parameters(), None)
    for kwargs, dtype in (
        ({}, ref.dtype if ref is not None else None),
        ({"dtype": torch.float64}, torch.float64),
    ):
        state = rnn.init_state(_B, **kwargs)
        if not (isinstance(state, tuple) and len(state) == cls.state_size):
            raise _fail(
                cls,
                name,
                f"init_state returned {type(state).__name__} of length "
                f"{len(state)}, expected a tuple of {cls.state_size}",
                "inherit RNNCell.init_state, or return a tuple of state_size tensors",
            )
        for k, s in enumerate(state):
            problems = []
            if tuple(s.shape) != (_B, _H):
                problems.append(f"shape {tuple(s.shape)} != {(_B, _H)}")
            if dtype is not None and s.dtype != dtype:
                problems.append(f"dtype {s.dtype} != {dtype}")
            if ref is not None and s.device != ref.device:
                problems.append(f"device {s.device} != the parameters' {ref.device}")
            if not problems and torch.count_nonzero(s) != 0:
                problems.append("it is not all zeros")
            if problems:
                raise _fail(
                    cls,
                    name,
                    f"init_state({_B}, **{kwargs}) state[{k}]: " + "; ".join(problems),
                    "create the zero state with the parameters' device and dtype "
                    "(weight.new_zeros(B, H)), or inherit RNNCell.init_state",
                )


@_seeded()
def check_state_round_trip(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """Everything the next step needs travels in the returned state: feeding it back in later
    (after unrelated calls, as a copy) gives the same step, and the input state is not
    modified in place."""
    cls = _cell_class(cell)
    name = "state round trip"
    rnn = _build(cls, name, cell_kwargs).eval()
    s0 = _realistic_state(rnn, _B)
    x1, x2, x_other = torch.randn(3, _B, _I).unbind(0)
    with torch.no_grad():
        saved = tuple(s.clone() for s in s0)
        _, s1 = _step(rnn, name, x1, s0)
        if not all(torch.equal(a, b) for a, b in zip(s0, saved)):
            raise _fail(
                cls,
                name,
                "forward modified the state it was given in place",
                "compute new state tensors (c = f * c + ...) instead of c.mul_(...) / c[...] =",
            )
        h2, s2 = _step(rnn, name, x2, s1)
        # An unrelated call in between must not change what the saved state resumes to.
        _step(rnn, name, x_other, _realistic_state(rnn, _B))
        h2b, s2b = _step(rnn, name, x2, tuple(s.clone() for s in s1))
    if not (_close(h2, h2b) and all(_close(a, b) for a, b in zip(s2, s2b))):
        raise _fail(
            cls,
            name,
            "step t+1 from the state returned at step t gives a different result "
            "when other calls happen in between",
            "keep no hidden state on the module (self.h = ...); everything the next step needs "
            "must be in the returned state tuple",
        )


@_seeded()
def check_gradients(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """A loss on a few steps of a one-layer backbone gives every parameter (and the input) a
    finite, non-zero gradient."""
    cls = _cell_class(cell)
    name = "gradients"
    _build(cls, name, cell_kwargs)  # constructor errors with the clearer message
    bb = _backbone(cls, cell_kwargs, input_size=_I, hidden_size=_H)
    x = torch.randn(_B, _T, _I, requires_grad=True)
    y, state = bb(x)
    loss = (y * torch.randn_like(y)).sum() + sum((s * torch.randn_like(s)).sum() for s in state)
    loss.backward()
    for pname, p in bb.cells[0].named_parameters():
        if p.grad is None:
            raise _fail(
                cls,
                name,
                f"parameter {pname!r} gets no gradient",
                "use it in forward through differentiable ops (no .data, .detach(), .item()), "
                "or make it a buffer (register_buffer) if it is not meant to be trained",
            )
        if not torch.isfinite(p.grad).all():
            raise _fail(
                cls,
                name,
                f"parameter {pname!r} has a non-finite gradient",
                "avoid ops with infinite derivatives at the values you hit (sqrt(0), log(0)); "
                "with torch.where, make both branches finite",
            )
        if p.requires_grad and torch.count_nonzero(p.grad) == 0:
            raise _fail(
                cls,
                name,
                f"parameter {pname!r} gets an all-zero gradient over {_T} steps",
                "check that it reaches the output (a gate that is always saturated or a "
                "multiplication by zero at init blocks it); initialise it away from that point",
            )
    if x.grad is None or torch.count_nonzero(x.grad) == 0:
        raise _fail(
            cls,
            name,
            "the input gets no gradient",
            "compute h_t from x_t differentiably",
        )


@_seeded()
def check_finite_long_run(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """500 steps of N(0, 1) input with the default initialisation (hidden 32, batch 4) keep
    the output and state finite."""
    cls = _cell_class(cell)
    name = "finite over 500 steps"
    steps, batch, hidden, inputs = 500, 4, 32, 8
    rnn = _build(cls, name, cell_kwargs, inputs, hidden).eval()
    state = rnn.init_state(batch)
    xs = torch.randn(steps, batch, inputs)
    with torch.no_grad():
        for t in range(steps):
            h, state = rnn(xs[t], state)
            if not (torch.isfinite(h).all() and all(torch.isfinite(s).all() for s in state)):
                raise _fail(
                    cls,
                    name,
                    f"output or state became NaN/inf at step {t}",
                    "initialise the recurrent weights so the map is non-expanding (spectral "
                    "radius <= 1, e.g. orthogonal or U(+-1/sqrt(H))) and bound unbounded "
                    "activations (ReLU) or constrain their recurrent weights",
                )


@_seeded()
def check_detach_cuts_graph(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """Detaching the state between two steps leaves step 2 with no gradient path to step 1's
    input (what truncated BPTT relies on), while the undetached state has one."""
    cls = _cell_class(cell)
    name = "detach cuts the graph"
    rnn = _build(cls, name, cell_kwargs).eval()
    x1 = torch.randn(_B, _I, requires_grad=True)
    x2 = torch.randn(_B, _I, requires_grad=True)
    _, s1 = _step(rnn, name, x1, rnn.init_state(_B))
    h2, s2 = _step(rnn, name, x2, s1)
    loss = h2.sum() + sum(s.sum() for s in s2)
    (g,) = torch.autograd.grad(loss, x1, allow_unused=True, retain_graph=True)
    if g is None or torch.count_nonzero(g) == 0:
        raise _fail(
            cls,
            name,
            "step 2 does not depend on step 1's input even without detaching",
            "the returned state must carry information from one step to the next",
        )
    h2d, s2d = _step(rnn, name, x2, tuple(s.detach() for s in s1))
    loss = h2d.sum() + sum(s.sum() for s in s2d)
    g1, g2 = torch.autograd.grad(loss, (x1, x2), allow_unused=True)
    if g1 is not None:
        raise _fail(
            cls,
            name,
            "after detaching the state, step 2 still has a gradient path to step 1's input",
            "keep no tensors from earlier steps on the module; read the past only "
            "through the state argument",
        )
    if g2 is None:
        raise _fail(cls, name, "step 2 has no gradient to its own input", "use x_t in forward")
