"""Layer-normalised LSTM: LSTM whose gate inputs and cell state are layer-normalised."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


@register_cell("ln_lstm")
class LayerNormLSTMCell(RNNCell):
    """LSTM with layer normalisation (Ba, Kiros & Hinton 2016, "Layer normalization",
    arXiv:1607.06450, section 3.1 / eq. 20-22).

    The input and recurrent projections are normalised separately over all ``4H`` gate
    pre-activations, and the cell state is normalised before the output squashing::

        i, f, g, o = LN(W_ih x; a_ih) + LN(W_hh h; a_hh) + b
        c' = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h' = sigmoid(o) * tanh(LN(c'; a_c, b_c))

    The two gate normalisations carry gains only (``ln_ih.weight``, ``ln_hh.weight``): their
    shifts would duplicate ``bias_ih``. Gate order is torch.nn's ``i, f, g, o``.

    Parameters: ``weight_ih (4H, I)``, ``weight_hh (4H, H)``, ``bias_ih (4H,)``,
    ``ln_ih.weight (4H,)``, ``ln_hh.weight (4H,)``, ``ln_c.weight (H,)``, ``ln_c.bias (H,)``.

    Args:
        input_size: Features per input step ``I``.
        hidden_size: Hidden units ``H``.
        forget_bias: Initial forget-gate bias (1.0 keeps the memory open at the start).
        eps: Layer-norm epsilon.
    """

    state_size = 2

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        forget_bias: float = 1.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__(input_size, hidden_size)
        h = self.hidden_size
        self.forget_bias = float(forget_bias)
        self.weight_ih = nn.Parameter(torch.empty(4 * h, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * h, h))
        self.bias_ih = nn.Parameter(torch.empty(4 * h))
        self.ln_ih = nn.LayerNorm(4 * h, eps=eps, bias=False)
        self.ln_hh = nn.LayerNorm(4 * h, eps=eps, bias=False)
        self.ln_c = nn.LayerNorm(h, eps=eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights ~ U(+-1/sqrt(H)) (torch.nn's LSTM), unit gains, zero biases but the
        forget gate's ``forget_bias``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, -bound, bound)
        with torch.no_grad():
            self.bias_ih.zero_()
            self.bias_ih[self.hidden_size : 2 * self.hidden_size] = self.forget_bias
        self.ln_ih.reset_parameters()
        self.ln_hh.reset_parameters()
        self.ln_c.reset_parameters()

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances one step; ``x_t (B, I)``, ``state = (h, c)``, each ``(B, H)``."""
        h, c = state
        gates = (
            self.ln_ih(F.linear(x_t, self.weight_ih))  # (B, 4H)
            + self.ln_hh(F.linear(h, self.weight_hh))  # (B, 4H)
            + self.bias_ih
        )
        i, f, g, o = gates.chunk(4, dim=1)  # (B, H) each
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(self.ln_c(c))
        return h, (h, c)
