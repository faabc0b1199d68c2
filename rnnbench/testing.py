"""Contract checks every RNNCell must pass; run them on your own cell before publishing it.

A cell plugin is usable everywhere in rnnbench (any depth, direction, TBPTT, float64, any
device) only if it keeps a few promises. Each promise is one public ``check_*`` function;
:func:`check_cell` runs them all and raises one :class:`CellContractError` (an
``AssertionError``) listing every broken promise with what to change. The checks use plain
``torch`` and ``assert``-style errors, so they run under pytest, unittest or a script::

    from rnnbench.testing import check_cell

    check_cell("my_cell")                 # a registry name (entry point or @register_cell)
    check_cell(MyCell, window=4)          # or the class; options go to its constructor

With pytest, subclass :class:`CellContract` to get one test per check::

    from rnnbench.testing import CellContract

    class TestMyCell(CellContract):
        cell = "my_cell"
        cell_kwargs = {"window": 4}

The checks seed their own random numbers and leave the caller's global generator as it was.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import torch

from rnnbench.cells import RNNCell, get_cell

__all__ = [
    "CHECKS",
    "CellContract",
    "CellContractError",
    "check_backbone",
    "check_batch_size_one",
    "check_cell",
    "check_detach_cuts_graph",
    "check_device_move",
    "check_finite_long_run",
    "check_float64",
    "check_forward_sequence",
    "check_gradients",
    "check_init_state",
    "check_shapes",
    "check_state_round_trip",
]

# Small, pairwise different sizes so a transposed or mixed-up dimension cannot pass.
_B, _T, _I, _H = 3, 6, 5, 7


class CellContractError(AssertionError):
    """A cell broke the RNNCell contract; the message says which property and how to fix it."""


def _fail(cls: type, check: str, problem: str, fix: str) -> CellContractError:
    return CellContractError(f"{cls.__qualname__} failed '{check}': {problem}\n    fix: {fix}")


def _cell_class(cell: str | type[RNNCell]) -> type[RNNCell]:
    if isinstance(cell, RNNCell):
        raise TypeError(
            "pass the cell's registry name or class (with its options as keyword arguments), "
            f"not an instance: check_cell({type(cell).__name__}, ...)"
        )
    cls = get_cell(cell)
    if not (isinstance(cls, type) and issubclass(cls, RNNCell)):
        raise TypeError(f"{cell!r} is not an rnnbench.cells.RNNCell subclass")
    return cls


@contextlib.contextmanager
def _seeded() -> Iterator[None]:
    """Fixes the seed inside a check and restores the caller's random state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _build(
    cls: type[RNNCell],
    check: str,
    cell_kwargs: dict[str, Any],
    input_size: int = _I,
    hidden_size: int = _H,
) -> RNNCell:
    try:
        cell = cls(input_size, hidden_size, **cell_kwargs)
    except Exception as err:
        raise _fail(
            cls,
            check,
            f"{cls.__qualname__}({input_size}, {hidden_size}, **{cell_kwargs!r}) raised "
            f"{type(err).__name__}: {err}",
            "the constructor must accept (input_size, hidden_size, **options) with defaults "
            "for every option",
        ) from err
    return cell


def _step(cell: RNNCell, check: str, x_t: torch.Tensor, state: tuple) -> tuple:
    """One step with the result's form checked: ``(h (B, H), state tuple)``."""
    cls = type(cell)
    out = cell(x_t, state)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise _fail(
            cls,
            check,
            f"forward returned {type(out).__name__}, not a pair (h_t, new_state)",
            "return `h, (h, ...)` from forward",
        )
    h, new_state = out
    if not isinstance(new_state, tuple):
        raise _fail(
            cls,
            check,
            f"the new state is a {type(new_state).__name__}, not a tuple",
            "return the state as a tuple, e.g. `return h, (h,)` or `return h, (h, c)`; "
            "backbones and TBPTT index and detach it as a tuple",
        )
    if len(new_state) != cls.state_size:
        raise _fail(
            cls,
            check,
            f"the new state has {len(new_state)} tensor(s) but state_size = {cls.state_size}",
            "set the class attribute state_size to the number of state tensors forward returns",
        )
    return h, new_state


def _realistic_state(cell: RNNCell, batch: int, steps: int = 3) -> tuple:
    """A state reached by running the cell from zeros, so every cell accepts it."""
    with torch.no_grad():
        ref = next(cell.parameters(), None)
        dtype = ref.dtype if ref is not None else torch.get_default_dtype()
        state = cell.init_state(batch)
        for _ in range(steps):
            _, state = cell(torch.randn(batch, cell.input_size, dtype=dtype), state)
    return tuple(s.clone() for s in state)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-6, atol: float = 1e-6) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)


def _backbone(cls: type[RNNCell], cell_kwargs: dict[str, Any], **kwargs: Any) -> torch.nn.Module:
    from rnnbench.backbones import RecurrentBackbone  # cells must not import backbones

    return RecurrentBackbone(cell=cls, impl="reference", **kwargs, **cell_kwargs)


# --------------------------------------------------------------------------- the checks
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


@_seeded()
def check_backbone(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """A 3-layer backbone, unidirectional and bidirectional with dropout, on the reference
    path: forward shapes, the state fed back in, and backward to every parameter."""
    cls = _cell_class(cell)
    name = "stacked/bidirectional backbone"
    _build(cls, name, cell_kwargs)
    for bidirectional in (False, True):
        nd = 2 if bidirectional else 1
        bb = _backbone(
            cls,
            cell_kwargs,
            input_size=_I,
            hidden_size=_H,
            num_layers=3,
            bidirectional=bidirectional,
            dropout=0.1,
        ).train()
        x = torch.randn(_B, _T, _I, requires_grad=True)
        where = f"num_layers=3, bidirectional={bidirectional}"
        y, state = bb(x)
        if tuple(y.shape) != (_B, _T, _H * nd):
            raise _fail(
                cls,
                name,
                f"{where}: output shape {tuple(y.shape)}, expected {(_B, _T, _H * nd)}",
                "the cell's h_t must be (B, hidden_size)",
            )
        shapes = [tuple(s.shape) for s in state]
        if shapes != [(3 * nd, _B, _H)] * cls.state_size:
            raise _fail(
                cls,
                name,
                f"{where}: final state shapes {shapes}, expected "
                f"{cls.state_size} x {(3 * nd, _B, _H)}",
                "return state_size tensors of (B, hidden_size) from forward",
            )
        y2, _ = bb(x, state)  # TBPTT continues from the returned state
        (y.sum() + y2.sum()).backward()
        missing = [n for n, p in bb.named_parameters() if p.requires_grad and p.grad is None]
        if missing or x.grad is None:
            raise _fail(
                cls,
                name,
                f"{where}: no gradient for {missing or ['the input']}",
                "every parameter must be used differentiably in forward",
            )


@_seeded()
def check_batch_size_one(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """Batch size 1 works (cell and backbone), and each row of a batch is computed as if it
    were alone (no mixing across the batch)."""
    cls = _cell_class(cell)
    name = "batch size 1"
    rnn = _build(cls, name, cell_kwargs).eval()
    x = torch.randn(_B, _I)
    state = _realistic_state(rnn, _B)
    with torch.no_grad():
        h, new_state = _step(rnn, name, x, state)
        h1, new_state1 = _step(rnn, name, x[:1], tuple(s[:1] for s in state))
    if tuple(h1.shape) != (1, _H) or any(tuple(s.shape) != (1, _H) for s in new_state1):
        raise _fail(
            cls,
            name,
            f"with B=1, h_t is {tuple(h1.shape)}",
            "do not squeeze the batch dimension",
        )
    if not (
        _close(h1, h[:1], 1e-5, 1e-6)
        and all(_close(a, b[:1], 1e-5, 1e-6) for a, b in zip(new_state1, new_state))
    ):
        raise _fail(
            cls,
            name,
            "row 0 of a batch differs from the same row run alone",
            "normalise over features, never over the batch (LayerNorm, not BatchNorm)",
        )
    bb = _backbone(
        cls, cell_kwargs, input_size=_I, hidden_size=_H, num_layers=2, bidirectional=True
    )
    y, state = bb(torch.randn(1, _T, _I))
    if tuple(y.shape) != (1, _T, 2 * _H) or any(tuple(s.shape) != (4, 1, _H) for s in state):
        raise _fail(
            cls,
            name,
            f"backbone with B=1 gave output {tuple(y.shape)}",
            "keep the batch dimension in every tensor the cell returns",
        )


@_seeded()
def check_float64(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """``.double()`` turns every parameter and the zero state to float64, and float64 inputs
    give float64 outputs and states (cell and backbone)."""
    cls = _cell_class(cell)
    name = "float64"
    rnn = _build(cls, name, cell_kwargs).double()
    bad = [n for n, p in rnn.named_parameters() if p.dtype != torch.float64]
    bad += [
        n for n, b in rnn.named_buffers() if b.is_floating_point() and b.dtype != torch.float64
    ]
    if bad:
        raise _fail(
            cls,
            name,
            f"after .double(), {bad} are not float64",
            "register tensors as nn.Parameter or buffers (register_buffer) so .to() moves them",
        )
    x = torch.randn(_B, _I, dtype=torch.float64)
    h, state = _step(rnn, name, x, rnn.init_state(_B))
    dtypes = {str(t.dtype) for t in (h, *state)}
    if dtypes != {"torch.float64"}:
        raise _fail(
            cls,
            name,
            f"float64 in, {sorted(dtypes)} out",
            "create constants with the input's dtype (x.new_tensor / torch.full(..., "
            "dtype=x.dtype)) and avoid hard-coded .float()",
        )
    bb = _backbone(cls, cell_kwargs, input_size=_I, hidden_size=_H).double()
    y, state = bb(torch.randn(_B, _T, _I, dtype=torch.float64))
    if y.dtype != torch.float64 or any(s.dtype != torch.float64 for s in state):
        raise _fail(cls, name, f"float64 backbone returned {y.dtype}", "see above")


@_seeded()
def check_device_move(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """The cell survives ``state_dict`` round trips and moves between devices: to CUDA (same
    numbers as on CPU) when a GPU is present, else to the ``meta`` device (right shapes)."""
    cls = _cell_class(cell)
    name = "device move"
    rnn = _build(cls, name, cell_kwargs).eval()
    x = torch.randn(_B, _I)
    state = _realistic_state(rnn, _B)
    with torch.no_grad():
        h, new_state = _step(rnn, name, x, state)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            fresh = _build(cls, name, cell_kwargs).eval()
        try:
            fresh.load_state_dict(rnn.state_dict())
        except RuntimeError as err:
            raise _fail(
                cls,
                name,
                f"load_state_dict(state_dict()) failed: {err}",
                "keep the parameter set fixed for given constructor options",
            ) from err
        h_fresh, _ = _step(fresh, name, x, state)
        if not torch.equal(h, h_fresh):
            raise _fail(
                cls,
                name,
                "a fresh cell loaded with state_dict() computes something else",
                "keep every tensor the cell depends on in parameters or persistent buffers, "
                "so checkpoints restore it",
            )
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("meta")
        moved = copy.deepcopy(rnn).to(device)
        off = [
            n
            for n, t in (*moved.named_parameters(), *moved.named_buffers())
            if t.device.type != device.type
        ]
        if off:
            raise _fail(
                cls,
                name,
                f"after .to({device.type!r}), {off} stayed behind",
                "register tensors as nn.Parameter or buffers so .to() moves them",
            )
        init = moved.init_state(_B)
        if any(s.device.type != device.type for s in init):
            raise _fail(
                cls,
                name,
                f"init_state() on a {device.type} cell is not on {device.type}",
                "create the zero state on the parameters' device (weight.new_zeros)",
            )
        try:
            h_dev, state_dev = _step(moved, name, x.to(device), tuple(s.to(device) for s in state))
        except CellContractError:
            raise
        except Exception as err:
            raise _fail(
                cls,
                name,
                f"forward on {device.type} raised {type(err).__name__}: {err}",
                "create new tensors on the input's device (x.new_zeros, torch.zeros(..., "
                "device=x.device)) and do not read tensor values on the host (.item(), "
                "Python `if` on a tensor)",
            ) from err
        outs = (h_dev, *state_dev)
        if any(t.device.type != device.type for t in outs):
            raise _fail(
                cls,
                name,
                f"forward on {device.type} returned tensors elsewhere",
                "create new tensors on the input's device",
            )
        if device.type == "cuda" and not (
            _close(h_dev.cpu(), h, 1e-4, 1e-5)
            and all(_close(a.cpu(), b, 1e-4, 1e-5) for a, b in zip(state_dev, new_state))
        ):
            raise _fail(
                cls,
                name,
                "CUDA and CPU results differ beyond 1e-4",
                "avoid device-dependent code paths",
            )


@_seeded()
def check_forward_sequence(cell: str | type[RNNCell], **cell_kwargs: Any) -> None:
    """If the cell defines ``forward_sequence``, it equals stepping ``forward`` over the
    window: outputs, final state and gradients, in float64 to 1e-9. Skipped otherwise."""
    cls = _cell_class(cell)
    name = "forward_sequence == step loop"
    if not callable(getattr(cls, "forward_sequence", None)):
        return
    rnn = _build(cls, name, cell_kwargs).double().eval()
    for steps in (1, 40):
        x = torch.randn(_B, steps, _I, dtype=torch.float64)
        for label, s0 in (("zero", rnn.init_state(_B)), ("non-zero", _realistic_state(rnn, _B))):
            where = f"T={steps}, {label} initial state"
            state, outs = s0, []
            for t in range(steps):
                h, state = _step(rnn, name, x[:, t], state)
                outs.append(h)
            y_ref, s_ref = torch.stack(outs, dim=1), state  # (B, T, H)
            y, s = rnn.forward_sequence(x, s0)
            if not isinstance(s, tuple) or len(s) != cls.state_size:
                raise _fail(
                    cls,
                    name,
                    f"{where}: forward_sequence returned a state of type {type(s).__name__}",
                    "return (y, state tuple) like forward",
                )
            if not (
                _close(y, y_ref, 1e-9, 1e-9)
                and all(_close(a, b, 1e-9, 1e-9) for a, b in zip(s, s_ref))
            ):
                err = (y - y_ref).abs().max().item() if y.shape == y_ref.shape else y.shape
                raise _fail(
                    cls,
                    name,
                    f"{where}: forward_sequence differs from the step loop (max |diff| {err})",
                    "the sequence form must compute exactly the function of forward",
                )
    # Gradients of both forms agree too (w.r.t. input, initial state and parameters).
    x = torch.randn(_B, 9, _I, dtype=torch.float64, requires_grad=True)
    s0 = tuple(s.requires_grad_() for s in _realistic_state(rnn, _B))
    wrt = [x, *s0, *rnn.parameters()]
    w = torch.randn(_B, 9, _H, dtype=torch.float64)
    state, outs = s0, []
    for t in range(x.shape[1]):
        h, state = rnn(x[:, t], state)
        outs.append(h)
    g_ref = torch.autograd.grad((torch.stack(outs, 1) * w).sum(), wrt, allow_unused=True)
    g_seq = torch.autograd.grad((rnn.forward_sequence(x, s0)[0] * w).sum(), wrt, allow_unused=True)
    for a, b in zip(g_ref, g_seq):
        if (a is None) != (b is None) or (a is not None and not _close(a, b, 1e-7, 1e-9)):
            raise _fail(
                cls,
                name,
                "gradients of forward_sequence differ from the step loop's",
                "avoid detach/clamp tricks in the sequence form that the step form lacks",
            )


CHECKS: dict[str, Callable[..., None]] = {
    "shapes": check_shapes,
    "init_state": check_init_state,
    "state_round_trip": check_state_round_trip,
    "gradients": check_gradients,
    "finite_long_run": check_finite_long_run,
    "detach_cuts_graph": check_detach_cuts_graph,
    "backbone": check_backbone,
    "batch_size_one": check_batch_size_one,
    "float64": check_float64,
    "device_move": check_device_move,
    "forward_sequence": check_forward_sequence,
}
"""Every contract check by short name, in the order :func:`check_cell` runs them."""


def check_cell(cell: str | type[RNNCell], **cell_kwargs: Any) -> list[str]:
    """Runs every contract check on a cell and reports all failures at once.

    Args:
        cell: Registry name or ``RNNCell`` subclass.
        **cell_kwargs: Options passed to the cell's constructor.

    Returns:
        The names of the checks run (all passed).

    Raises:
        CellContractError: One or more checks failed; the message has one paragraph per
            failure, each saying what broke and how to fix it.
    """
    cls = _cell_class(cell)
    failures = []
    for check_name, check in CHECKS.items():
        try:
            check(cls, **cell_kwargs)
        except CellContractError as err:
            failures.append(str(err))
        except Exception as err:  # noqa: BLE001 - a crash in the cell is a failed check too
            failures.append(
                f"{cls.__qualname__} failed '{check_name}': raised {type(err).__name__}: {err}"
            )
    if failures:
        raise CellContractError(
            f"{len(failures)} of {len(CHECKS)} contract checks failed for "
            f"{cls.__qualname__}:\n" + "\n".join(failures)
        )
    return list(CHECKS)


class CellContract:
    """pytest mixin: one ``test_*`` method per contract check.

    Subclass it in a ``Test*`` class and set ``cell`` (registry name or class) and,
    optionally, ``cell_kwargs``::

        class TestMyCell(CellContract):
            cell = "my_cell"
            cell_kwargs = {"window": 4}
    """

    cell: ClassVar[str | type[RNNCell] | None] = None
    cell_kwargs: ClassVar[dict[str, Any]] = {}

    def _check(self, name: str) -> None:
        if self.cell is None:
            raise TypeError(f"{type(self).__name__} must set `cell = '<registry name>'`")
        CHECKS[name](self.cell, **self.cell_kwargs)

    def test_shapes(self) -> None:
        self._check("shapes")

    def test_init_state(self) -> None:
        self._check("init_state")

    def test_state_round_trip(self) -> None:
        self._check("state_round_trip")

    def test_gradients(self) -> None:
        self._check("gradients")

    def test_finite_long_run(self) -> None:
        self._check("finite_long_run")

    def test_detach_cuts_graph(self) -> None:
        self._check("detach_cuts_graph")

    def test_backbone(self) -> None:
        self._check("backbone")

    def test_batch_size_one(self) -> None:
        self._check("batch_size_one")

    def test_float64(self) -> None:
        self._check("float64")

    def test_device_move(self) -> None:
        self._check("device_move")

    def test_forward_sequence(self) -> None:
        self._check("forward_sequence")
