"""The RNNCell contract every built-in and plugin cell implements."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


class RNNCell(nn.Module):
    """One step of a recurrent layer: ``(x_t, state) -> (h_t, new_state)``.

    A cell knows nothing about depth, direction or dropout between layers: the
    :class:`~rnnbench.backbones.RecurrentBackbone` adds those to every cell.

    Subclasses set ``state_size`` (the number of state tensors; LSTM: 2), accept
    ``(input_size, hidden_size, **kwargs)`` and implement :meth:`forward`. The first state
    tensor is the output ``h`` by convention; every state tensor is ``(B, hidden_size)``.

    Optional hooks a cell may define for speed (the backbone uses them when present):

    * ``forward_sequence(x, state) -> (y, state)`` over a whole ``(B, T, I)`` window, for
      cells with a faster than step-by-step form (e.g. a parallel scan).

    Attributes:
        state_size: Number of state tensors the cell carries.
        fused_mode: For the built-in cells, the torch.nn mode (``"LSTM"``, ``"GRU"``,
            ``"RNN_TANH"``, ``"RNN_RELU"``) whose fused kernel computes the same function
            with the same parameter layout; ``None`` for cells without a fused kernel.
    """

    state_size: ClassVar[int] = 1
    fused_mode: ClassVar[str | None] = None

    def __init__(self, input_size: int, hidden_size: int, **kwargs) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected options {sorted(kwargs)}; "
                "remove them or use a cell that accepts them"
            )
        if int(input_size) <= 0 or int(hidden_size) <= 0:
            raise ValueError(
                f"{type(self).__name__} needs positive sizes, got input_size={input_size}, "
                f"hidden_size={hidden_size}"
            )
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advances the cell one step.

        Args:
            x_t: Input at this step, ``(B, input_size)``.
            state: Tuple of ``state_size`` tensors, each ``(B, hidden_size)``.

        Returns:
            ``(h_t, new_state)``: the output ``(B, hidden_size)`` and the new state tuple.
        """
        raise NotImplementedError

    def init_state(
        self,
        batch_size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> State:
        """Returns the zero state: ``state_size`` tensors of shape ``(B, hidden_size)``.

        Device and dtype default to those of the cell's first parameter, so the state
        follows the model wherever it is moved.
        """
        ref = next(self.parameters(), None)
        device = device if device is not None else (ref.device if ref is not None else None)
        dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
        return tuple(
            torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
            for _ in range(self.state_size)
        )

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
