"""What the contract checks share: sizes, the error type, building and stepping a cell."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from rnnbench.cells import RNNCell, get_cell

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
