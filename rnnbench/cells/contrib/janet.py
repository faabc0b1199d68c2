"""JANET ("just another network"): a forget-gate-only LSTM with chrono initialisation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


@register_cell("janet")
class JANETCell(RNNCell):
    """JANET (van der Westhuizen & Lasenby 2018, "The unreasonable effectiveness of the
    forget gate", arXiv:1804.04849).

    An LSTM reduced to its forget gate, whose shifted complement acts as the input gate;
    the output is the cell state itself::

        s  = W_f x + U_f h + b_f
        c~ = tanh(W_c x + U_c h + b_c)
        h' = c' = sigmoid(s) * c + (1 - sigmoid(s - beta)) * c~

    The forget bias gets the chrono initialisation (Tallec & Ollivier 2018) the paper uses,
    ``b_f ~ log(U[1, t_max - 1])``, so units start with memory spans of 1 to ``t_max`` steps.

    Parameters: ``weight_ih (2H, I)`` and ``weight_hh (2H, H)`` with row blocks ``f, c``,
    ``bias_ih (2H,)``.

    Args:
        input_size: Features per input step ``I``.
        hidden_size: Hidden units ``H``.
        beta: Shift between the forget gate and the input gate (the paper uses 1).
        t_max: Longest dependency the chrono initialisation aims at (the paper sets it to
            the sequence length); ``None`` starts the forget bias at zero.
    """

    state_size = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        beta: float = 1.0,
        t_max: float | None = 100.0,
    ) -> None:
        super().__init__(input_size, hidden_size)
        if t_max is not None and t_max <= 2:
            raise ValueError(f"t_max must be above 2 for the chrono initialisation, got {t_max}")
        h = self.hidden_size
        self.beta = float(beta)
        self.t_max = None if t_max is None else float(t_max)
        self.weight_ih = nn.Parameter(torch.empty(2 * h, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(2 * h, h))
        self.bias_ih = nn.Parameter(torch.empty(2 * h))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight_ih`` ~ U(+-1/sqrt(H)), each ``weight_hh`` block orthogonal, chrono forget
        bias, zero candidate bias."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        for block in self.weight_hh.data.chunk(2, dim=0):
            nn.init.orthogonal_(block)
        with torch.no_grad():
            self.bias_ih.zero_()
            if self.t_max is not None:
                b_f = self.bias_ih[: self.hidden_size]
                b_f.uniform_(1.0, self.t_max - 1.0).log_()

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances one step; ``x_t (B, I)``, ``state = (h,)`` with ``h (B, H)``."""
        c = state[0]
        gates = F.linear(x_t, self.weight_ih, self.bias_ih) + F.linear(c, self.weight_hh)
        s, cand = gates.chunk(2, dim=1)  # (B, H) each
        c = torch.sigmoid(s) * c + (1.0 - torch.sigmoid(s - self.beta)) * torch.tanh(cand)
        return c, (c,)
