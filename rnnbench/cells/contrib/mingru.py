"""minGRU: a GRU whose gates ignore the past, so a whole sequence is one parallel scan."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


def _g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation: ``x + 0.5`` for ``x >= 0``, ``sigmoid(x)`` below."""
    return torch.where(x >= 0, F.relu(x) + 0.5, torch.sigmoid(x))


def _log_g(x: torch.Tensor) -> torch.Tensor:
    """``log(g(x))`` without forming ``g``; both branches are finite everywhere, so
    ``torch.where`` passes no NaN gradient."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


@register_cell("mingru")
class MinGRUCell(RNNCell):
    """minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs all we needed?",
    arXiv:2410.01201), in the paper's log-space form with the positive candidate ``g``::

        z  = sigmoid(W_z x + b_z)
        h~ = g(W_h x + b_h)
        h' = (1 - z) * h + z * h~

    Neither ``z`` nor ``h~`` reads ``h``, so ``h_t = a_t * h_0 + sum_k (a_t / a_k) z_k h~_k``
    with ``a_t = prod_{j<=t} (1 - z_j)``. :meth:`forward_sequence` evaluates that sum in log
    space with ``logcumsumexp`` (every term is positive), chunk by chunk so the log-magnitudes
    stay small; the initial state enters linearly, so it may have any sign.

    Parameters: ``weight_ih (2H, I)`` with row blocks ``z, h~`` and ``bias_ih (2H,)``; there
    is no ``weight_hh``.

    Args:
        input_size: Features per input step ``I``.
        hidden_size: Hidden units ``H``.
        bias: Whether to learn ``bias_ih``.
        chunk_size: Steps per log-space scan chunk in :meth:`forward_sequence`.
    """

    state_size = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        chunk_size: int = 128,
    ) -> None:
        super().__init__(input_size, hidden_size)
        if int(chunk_size) <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = int(chunk_size)
        self.weight_ih = nn.Parameter(torch.empty(2 * self.hidden_size, self.input_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(2 * self.hidden_size))
        else:
            self.register_parameter("bias_ih", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight_ih`` ~ U(+-1/sqrt(I)) (torch.nn.Linear's range), bias zero."""
        bound = 1.0 / math.sqrt(self.input_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        if self.bias_ih is not None:
            nn.init.zeros_(self.bias_ih)

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances one step; ``x_t (B, I)``, ``state = (h,)`` with ``h (B, H)``."""
        k, pre = F.linear(x_t, self.weight_ih, self.bias_ih).chunk(2, dim=1)  # (B, H) each
        z = torch.sigmoid(k)
        h = (1.0 - z) * state[0] + z * _g(pre)  # (B, H)
        return h, (h,)

    def forward_sequence(
        self, x: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        """Runs a whole window as a parallel scan; equal to stepping :meth:`forward`.

        Args:
            x: Inputs ``(B, T, I)``.
            state: ``(h_0,)`` with ``h_0 (B, H)``; zeros when ``None``.

        Returns:
            ``(y, (h_T,))``: outputs ``(B, T, H)`` and the final state.
        """
        h = self.init_state(x.shape[0], x.device, x.dtype)[0] if state is None else state[0]
        k, pre = F.linear(x, self.weight_ih, self.bias_ih).chunk(2, dim=-1)  # (B, T, H) each
        log_keep = -F.softplus(k)  # log(1 - z)
        log_write = -F.softplus(-k) + _log_g(pre)  # log(z * h~)
        ys = []
        for start in range(0, x.shape[1], self.chunk_size):
            stop = start + self.chunk_size
            log_a = log_keep[:, start:stop].cumsum(dim=1)  # (B, C, H) log a_t within the chunk
            acc = torch.logcumsumexp(log_write[:, start:stop] - log_a, dim=1)  # (B, C, H)
            y = torch.exp(log_a) * h.unsqueeze(1) + torch.exp(log_a + acc)  # (B, C, H)
            h = y[:, -1]
            ys.append(y)
        y = torch.cat(ys, dim=1) if ys else x.new_zeros(x.shape[0], 0, self.hidden_size)
        return y, (h,)
