"""Minimal gated unit (MGU): a GRU whose reset and update gates are one forget gate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


@register_cell("mgu")
class MGUCell(RNNCell):
    """Minimal gated unit (Zhou, Wu, Zhang & Zhou 2016, "Minimal gated unit for recurrent
    neural networks", IJAC 13(3)).

    One forget gate ``f`` plays both GRU roles, reset and update::

        f  = sigmoid(W_f x + U_f h + b_f)
        h~ = tanh(W_h x + U_h (f * h) + b_h)
        h' = (1 - f) * h + f * h~

    Parameters: ``weight_ih (2H, I)`` and ``weight_hh (2H, H)`` with row blocks ``f, h~``,
    and one bias per gate in ``bias_ih (2H,)`` (no redundant ``bias_hh``).

    Args:
        input_size: Features per input step ``I``.
        hidden_size: Hidden units ``H``.
        bias: Whether to learn ``bias_ih``.
    """

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        h = self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(2 * h, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(2 * h, h))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(2 * h))
        else:
            self.register_parameter("bias_ih", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight_ih`` ~ U(+-1/sqrt(H)), each ``weight_hh`` block orthogonal, bias zero."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        for block in self.weight_hh.data.chunk(2, dim=0):
            nn.init.orthogonal_(block)
        if self.bias_ih is not None:
            nn.init.zeros_(self.bias_ih)

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances one step; ``x_t (B, I)``, ``state = (h,)`` with ``h (B, H)``."""
        h = state[0]
        gi_f, gi_h = F.linear(x_t, self.weight_ih, self.bias_ih).chunk(2, dim=1)  # (B, H) each
        w_f, w_h = self.weight_hh.chunk(2, dim=0)  # (H, H) each
        f = torch.sigmoid(gi_f + F.linear(h, w_f))  # (B, H)
        cand = torch.tanh(gi_h + F.linear(f * h, w_h))  # (B, H)
        h = h + f * (cand - h)  # == (1 - f) * h + f * cand
        return h, (h,)
