"""Independently recurrent neural network (IndRNN): one recurrent weight per unit."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rnnbench.cells.base import RNNCell, State
from rnnbench.cells.registry import register_cell


@register_cell("indrnn")
class IndRNNCell(RNNCell):
    """IndRNN (Li, Li, Cook, Zhu & Gao 2018, "Independently recurrent neural network
    (IndRNN): building a longer and deeper RNN", CVPR).

    Each unit only sees its own past: ``h' = relu(W x + u * h + b)`` with a recurrent
    weight *vector* ``u``. The paper keeps gradients over ``T`` steps from exploding by
    constraining ``|u_n| <= gamma ** (1 / T)`` (:meth:`recurrent_bound`); pass that bound as
    ``recurrent_max`` to clip ``u`` in the forward pass (the gradient stops at the bound) and
    call :meth:`constrain_` after an optimiser step to clip it in place, as the paper does.

    Parameters: ``weight_ih (H, I)``, ``weight_hh (H,)`` (the vector ``u``), ``bias_ih (H,)``.

    Args:
        input_size: Features per input step ``I``.
        hidden_size: Hidden units ``H``.
        bias: Whether to learn ``bias_ih``.
        recurrent_max: Bound on ``|u|``; ``None`` leaves ``u`` unconstrained.
        recurrent_init: Range ``(low, high)`` of the uniform init of ``u``; defaults to
            ``(0, min(1, recurrent_max))``, which starts every unit non-expanding.
        nonlinearity: ``"relu"`` (the paper) or ``"tanh"``.
    """

    state_size = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        recurrent_max: float | None = None,
        recurrent_init: tuple[float, float] | None = None,
        nonlinearity: str = "relu",
    ) -> None:
        super().__init__(input_size, hidden_size)
        if nonlinearity not in ("relu", "tanh"):
            raise ValueError(f"nonlinearity must be 'relu' or 'tanh', got {nonlinearity!r}")
        if recurrent_max is not None and recurrent_max <= 0:
            raise ValueError(f"recurrent_max must be positive, got {recurrent_max}")
        self.nonlinearity = nonlinearity
        self.recurrent_max = None if recurrent_max is None else float(recurrent_max)
        top = 1.0 if recurrent_max is None else min(1.0, float(recurrent_max))
        self.recurrent_init = tuple(recurrent_init) if recurrent_init else (0.0, top)
        self.weight_ih = nn.Parameter(torch.empty(self.hidden_size, self.input_size))
        self.weight_hh = nn.Parameter(torch.empty(self.hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(self.hidden_size))
        else:
            self.register_parameter("bias_ih", None)
        self.reset_parameters()

    @staticmethod
    def recurrent_bound(seq_len: int, gamma: float = 2.0) -> float:
        """The paper's bound ``gamma ** (1 / T)`` on ``|u|`` for sequences of ``T`` steps.

        With ReLU, a unit's gradient over ``T`` steps scales at most like ``|u| ** T``, so
        this bound keeps it under ``gamma``.
        """
        return float(gamma) ** (1.0 / int(seq_len))

    def reset_parameters(self) -> None:
        """``weight_ih`` ~ U(+-1/sqrt(I)), ``u`` ~ U(recurrent_init), bias zero."""
        bound = 1.0 / math.sqrt(self.input_size)
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.uniform_(self.weight_hh, *self.recurrent_init)
        if self.bias_ih is not None:
            nn.init.zeros_(self.bias_ih)
        self.constrain_()

    @torch.no_grad()
    def constrain_(self) -> None:
        """Clips ``|u|`` to ``recurrent_max`` in place (call after each optimiser step)."""
        if self.recurrent_max is not None:
            self.weight_hh.clamp_(-self.recurrent_max, self.recurrent_max)

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances one step; ``x_t (B, I)``, ``state = (h,)`` with ``h (B, H)``."""
        u = self.weight_hh  # (H,)
        if self.recurrent_max is not None:
            u = u.clamp(-self.recurrent_max, self.recurrent_max)
        pre = F.linear(x_t, self.weight_ih, self.bias_ih) + u * state[0]  # (B, H)
        h = torch.relu(pre) if self.nonlinearity == "relu" else torch.tanh(pre)
        return h, (h,)

    def extra_repr(self) -> str:
        extra = "" if self.recurrent_max is None else f", recurrent_max={self.recurrent_max:g}"
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity}{extra}"
