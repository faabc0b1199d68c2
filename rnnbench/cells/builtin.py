"""Built-in cells: per-step reference implementations in torch.nn's parameter layout.

Each cell holds ``weight_ih (G*H, I)``, ``weight_hh (G*H, H)``, ``bias_ih (G*H,)`` and
``bias_hh (G*H,)`` with torch.nn's gate order (LSTM: i, f, g, o; GRU: r, z, n), so the same
weights give the same function here, in torch.nn's cells and in the fused (cuDNN) kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


class _GatedCell(RNNCell):
    """Shared parameter layout of the built-in cells: ``gates`` blocks of ``hidden_size`` rows."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        g = self.gates * self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, self.hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    @property
    def bias(self) -> bool:
        return self.bias_ih is not None

    def reset_parameters(self) -> None:
        """torch.nn's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _gates(self, x_t: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gi = F.linear(x_t, self.weight_ih, self.bias_ih)  # (B, G*H)
        gh = F.linear(h, self.weight_hh, self.bias_hh)  # (B, G*H)
        return gi, gh


@register_cell("rnn_tanh", source="built-in")
class TanhRNNCell(_GatedCell):
    """Elman RNN: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``."""

    fused_mode = "RNN_TANH"

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        gi, gh = self._gates(x_t, state[0])
        h = torch.tanh(gi + gh)  # (B, H)
        return h, (h,)


@register_cell("rnn_relu", source="built-in")
class ReLURNNCell(_GatedCell):
    """Elman RNN with ReLU: ``h' = relu(W_ih x + b_ih + W_hh h + b_hh)``."""

    fused_mode = "RNN_RELU"

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        gi, gh = self._gates(x_t, state[0])
        h = torch.relu(gi + gh)  # (B, H)
        return h, (h,)


@register_cell("lstm", source="built-in")
class LSTMCell(_GatedCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate of Gers et al. 2000).

    State ``(h, c)``; gates in torch.nn order i, f, g, o.
    """

    gates = 4
    state_size = 2
    fused_mode = "LSTM"

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        gi, gh = self._gates(x_t, h)
        i, f, g, o = (gi + gh).chunk(4, dim=1)  # each (B, H)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


@register_cell("gru", source="built-in")
class GRUCell(_GatedCell):
    """Gated recurrent unit (Cho et al. 2014) in torch.nn's form.

    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``;
    gates in torch.nn order r, z, n.
    """

    gates = 3
    fused_mode = "GRU"

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h = state[0]
        gi, gh = self._gates(x_t, h)
        i_r, i_z, i_n = gi.chunk(3, dim=1)  # each (B, H)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = n + z * (h - n)  # == (1 - z) * n + z * h
        return h, (h,)


BUILTIN_CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
