"""Coupled input-forget gate LSTM (CIFG): the input gate is one minus the forget gate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


@register_cell("cifg")
class CIFGCell(RNNCell):
    """LSTM with coupled input and forget gates (Greff, Srivastava, Koutnik, Steunebrink &
    Schmidhuber 2017, "LSTM: A search space odyssey", IEEE TNNLS 28(10), variant CIFG).

    The cell writes exactly as much as it forgets::

        f  = sigmoid(W_f x + U_f h + b_f [+ p_f * c])
        g  = tanh(W_g x + U_g h + b_g)
        c' = f * c + (1 - f) * g
        o  = sigmoid(W_o x + U_o h + b_o [+ p_o * c'])
        h' = o * tanh(c')

    Peephole weights (``weight_cf``, ``weight_co``), part of the paper's "vanilla" LSTM, are
    off by default so the cell compares with torch.nn's peephole-free LSTM.

    Parameters: ``weight_ih (3H, I)`` and ``weight_hh (3H, H)`` with row blocks ``f, g, o``,
    ``bias_ih (3H,)`` (one bias per gate), optionally ``weight_cf (H,)``, ``weight_co (H,)``.

    Args:
        input_size: Features per input step ``I``.
        hidden_size: Hidden units ``H``.
        bias: Whether to learn ``bias_ih``.
        peepholes: Whether the forget and output gates see the cell state.
        forget_bias: Initial forget-gate bias.
    """

    state_size = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        peepholes: bool = False,
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__(input_size, hidden_size)
        h = self.hidden_size
        self.forget_bias = float(forget_bias)
        self.weight_ih = nn.Parameter(torch.empty(3 * h, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * h, h))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(3 * h))
        else:
            self.register_parameter("bias_ih", None)
        if peepholes:
            self.weight_cf = nn.Parameter(torch.empty(h))
            self.weight_co = nn.Parameter(torch.empty(h))
        else:
            self.register_parameter("weight_cf", None)
            self.register_parameter("weight_co", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights and peepholes ~ U(+-1/sqrt(H)), biases zero but the forget gate's."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for w in (self.weight_ih, self.weight_hh, self.weight_cf, self.weight_co):
            if w is not None:
                nn.init.uniform_(w, -bound, bound)
        if self.bias_ih is not None:
            with torch.no_grad():
                self.bias_ih.zero_()
                self.bias_ih[: self.hidden_size] = self.forget_bias

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances one step; ``x_t (B, I)``, ``state = (h, c)``, each ``(B, H)``."""
        h, c = state
        gates = F.linear(x_t, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh)
        f, g, o = gates.chunk(3, dim=1)  # (B, H) each
        if self.weight_cf is not None:
            f = f + self.weight_cf * c
        f = torch.sigmoid(f)
        c = f * c + (1.0 - f) * torch.tanh(g)  # the input gate is 1 - f
        if self.weight_co is not None:
            o = o + self.weight_co * c
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)
