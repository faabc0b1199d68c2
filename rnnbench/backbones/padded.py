"""Right-padded rows through torch's fused RNN kernels without packing, and the time reversal.

Shapes: B rows, T steps, F features, H units, L layers stacked in one kernel call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

State = tuple[torch.Tensor, ...]


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, T)`` gather index that reverses each row within its length; padding stays put."""
    t = torch.arange(steps, device=lengths.device)  # (T,)
    rev = lengths[:, None] - 1 - t[None, :]  # (B, T)
    return torch.where(rev >= 0, rev, t[None, :])  # (B, T)


def reverse(x: torch.Tensor, rev_index: torch.Tensor | None) -> torch.Tensor:
    """Reverses ``x`` ``(B, T, F)`` in time, each row within its length when given an index."""
    if rev_index is None:
        return x.flip(1)  # (B, T, F)
    return x.gather(1, rev_index[:, :, None].expand_as(x))  # (B, T, F)


def zero_padding(y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Zeroes outputs ``y`` ``(B, T, F)`` where ``valid`` ``(B, T)`` is false (padding)."""
    return y.masked_fill(~valid[:, :, None], 0.0)  # (B, T, F)


def fused_segments(
    kernel: Callable[..., tuple[torch.Tensor, ...]],
    x: torch.Tensor,
    state: State,
    lengths: torch.Tensor,
    ends: list[int],
    *,
    weights: list[torch.Tensor],
    has_bias: bool,
    num_layers: int,
    dropout: float,
    training: bool,
    lstm: bool,
) -> tuple[torch.Tensor, State]:
    """A unidirectional fused run over right-padded rows, each row's final state at its end.

    The kernel returns the state after its last step only, so the window is cut at every
    distinct length: after the cut at ``e`` the rows of length ``e`` hold their final state.
    As many kernel calls as distinct lengths, together ``max(lengths)`` steps (padding after
    the longest row is never run).

    Args:
        kernel: ``torch._VF.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu``.
        x: ``(B, T, F)`` rows, real steps first.
        state: Initial state, each ``(L, B, H)``.
        lengths: ``(B,)`` real steps per row, on ``x``'s device.
        ends: The distinct values of ``lengths``, ascending (Python ints).
        weights: The kernel's flat weight list for ``L`` layers of one direction.
        has_bias: Whether ``weights`` holds biases.
        num_layers: ``L``.
        dropout: Dropout between the stacked layers.
        training: Whether dropout is active.
        lstm: The state is ``(h, c)`` rather than ``h``.

    Returns:
        ``(y, state)``: ``(B, T, H)`` outputs (unspecified past each length) and the state of
        each row at its length (the initial state for length 0), each ``(L, B, H)``.
    """
    batch, steps = x.shape[:2]
    args = (weights, has_bias, num_layers, dropout, training, False, True)
    row_end = lengths[None, :, None]  # (1, B, 1)
    final = state  # each (L, B, H); rows of length 0 keep it
    outs, t0 = [], 0
    for end in ends:
        if end > t0:
            hx = state if lstm else state[0]  # (h, c) or h, each (L, B, H)
            out = kernel(x[:, t0:end], hx, *args)  # ((B, end - t0, H), *state)
            outs.append(out[0])
            state = tuple(out[1:])  # each (L, B, H)
            t0 = end
        final = tuple(torch.where(row_end == end, s, f) for s, f in zip(state, final))
    hidden = state[0].size(-1)
    if len(outs) == 1:
        y = outs[0]  # (B, max len, H): one segment, no copy
    else:
        y = torch.cat(outs, dim=1) if outs else x.new_zeros(batch, 0, hidden)  # (B, max len, H)
    if y.size(1) < steps:
        y = F.pad(y, (0, 0, 0, steps - y.size(1)))  # (B, T, H)
    return y, final  # (B, T, H), each (L, B, H)
