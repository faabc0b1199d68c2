"""Contract checks of a cell inside a backbone, in float64, on other devices, in sequence form."""

from __future__ import annotations

import copy
from typing import Any

import torch

from rnnbench.cells import RNNCell
from rnnbench.testing._common import (
    _B,
    _H,
    _I,
    _T,
    CellContractError,
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
