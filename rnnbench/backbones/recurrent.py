"""RecurrentBackbone: depth, direction and inter-layer dropout around any registered cell.

The paths that must compute one function (fused, packed, reference, compiled) sit side by
side in one class; padded-row helpers live in ``padded.py``, ``torch.nn`` conversions in
``interop.py``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnbench.backbones.padded import fused_segments, reverse, reverse_index, zero_padding
from rnnbench.cells import RNNCell, get_cell

# Shapes: B rows, T steps, I input features, H units, L layers, D directions (1 or 2).
State = tuple[torch.Tensor, ...]
IMPLS = ("auto", "fused", "reference", "compiled")
PADDINGS = ("mask", "pack")

_TORCH_MODES = {"rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU", "lstm": "LSTM", "gru": "GRU"}
_VF_FUNCS = {
    "RNN_TANH": torch._VF.rnn_tanh,
    "RNN_RELU": torch._VF.rnn_relu,
    "LSTM": torch._VF.lstm,
    "GRU": torch._VF.gru,
}


class RecurrentBackbone(nn.Module):
    """A stack of recurrent layers built from any registered cell.

    Layer ``l``, direction ``d`` is ``self.cells[l * num_directions + d]``, torch.nn's order,
    so states and weights line up with ``torch.nn.RNN/LSTM/GRU``.

    Args:
        cell: Registry name (``"lstm"``, ``"gru"``, ``"rnn_tanh"``, a plugin's name) or an
            ``RNNCell`` subclass.
        input_size: Features per input step ``I``.
        hidden_size: Units per layer and direction ``H``.
        num_layers: Stacked layers; layer ``l > 0`` reads layer ``l - 1``'s output.
        bidirectional: Add a reversed-time direction to every layer; outputs concatenate.
        dropout: Dropout on the outputs of every layer but the last (torch.nn semantics).
        impl: ``"fused"`` (torch.nn / cuDNN kernels; built-in cells only), ``"reference"``
            (the cell's per-step ``forward`` in a Python loop), ``"compiled"`` (the reference
            loop under ``torch.compile``; falls back to reference with one warning where
            compile is unavailable) or ``"auto"`` (fused when the cell has a fused kernel, else
            the cell's ``forward_sequence`` hook when it has one, else reference).
        padding: How the fused path runs right-padded rows (``lengths`` given): ``"mask"``
            (the default) runs the padded tensor through the fused kernel, split at the
            distinct lengths so each row's final state is read where it ends, and zeroes
            the outputs past each length; a bidirectional stack runs layer by layer, the
            reverse direction over each row reversed within its length. ``"pack"`` goes
            through ``pack_padded_sequence`` (the reference; several times slower on CPU).
            Both compute the same function. Other paths mask per step and ignore it.
        **cell_kwargs: Passed to the cell's constructor.
    """

    def __init__(
        self,
        cell: str | type[RNNCell] = "lstm",
        input_size: int = 1,
        hidden_size: int = 1,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "auto",
        padding: str = "mask",
        **cell_kwargs,
    ) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.cell_cls = get_cell(cell)
        self.cell_name = cell if isinstance(cell, str) else self.cell_cls.__name__
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dropout = float(dropout)
        self.cell_kwargs = dict(cell_kwargs)
        self.state_size = self.cell_cls.state_size
        fused_mode = self.cell_cls.fused_mode
        if impl == "fused" and fused_mode is None:
            raise ValueError(
                f"cell {self.cell_name!r} has no fused kernel; use impl='reference', "
                "'compiled' or 'auto'"
            )
        self.impl = impl
        self.padding = padding
        self.cells = nn.ModuleList(
            self.cell_cls(
                self.input_size if layer == 0 else self.hidden_size * self.num_directions,
                self.hidden_size,
                **cell_kwargs,
            )
            for layer in range(self.num_layers)
            for _ in range(self.num_directions)
        )
        self._compiled = None
        self._compile_failed = False

    # ----------------------------------------------------------------- properties
    @property
    def output_size(self) -> int:
        """Features per output step: ``hidden_size * num_directions``."""
        return self.hidden_size * self.num_directions

    @property
    def effective_impl(self) -> str:
        """The path ``forward`` takes: ``fused``, ``sequence``, ``reference`` or ``compiled``."""
        if self.impl == "fused" or (self.impl == "auto" and self.cell_cls.fused_mode):
            return "fused"
        if self.impl == "compiled":
            return "reference" if self._compile_failed else "compiled"
        if self.impl == "auto" and hasattr(self.cell_cls, "forward_sequence"):
            return "sequence"
        return "reference"

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of parameters (trainable ones by default)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def init_state(
        self, batch_size: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> State:
        """Zero state: ``state_size`` tensors of ``(num_layers * num_directions, B, H)``."""
        ref = next(self.parameters())
        return tuple(
            torch.zeros(  # (L * D, B, H)
                self.num_layers * self.num_directions,
                batch_size,
                self.hidden_size,
                device=device or ref.device,
                dtype=dtype or ref.dtype,
            )
            for _ in range(self.state_size)
        )

    # ----------------------------------------------------------------- forward
    def forward(
        self,
        x: torch.Tensor,
        state: State | torch.Tensor | None = None,
        *,
        lengths: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        final_state: bool = True,
    ) -> tuple[torch.Tensor, State]:
        """Runs the stack over a batch-first window.

        Args:
            x: Inputs ``(B, T, I)``.
            state: ``None`` (zeros) or a tuple of ``state_size`` tensors, each
                ``(num_layers * num_directions, B, H)``; a bare tensor is accepted for
                single-tensor states.
            lengths: Optional ``(B,)`` valid lengths of right-padded sequences. Outputs past a
                sequence's length are zero and its final state is the state at its last
                valid step; the reverse direction starts at each sequence's own end.
            reset: Optional ``(B, T)`` bool mask: the state of row b is zeroed just before
                step t where ``reset[b, t]`` (document boundaries in a continuous stream).
                Unidirectional backbones only.
            final_state: ``False`` when the caller discards the returned state (whole
                sequences, nothing carried). With ``lengths``, the fused path then runs the
                padded rows in one kernel call instead of one per distinct length; the
                outputs are the same, but the returned state is not each row's state at its
                length and must not be used.

        Returns:
            ``(y, state)``: outputs ``(B, T, H * num_directions)`` and the final state tuple.
        """
        if x.dim() != 3:
            raise ValueError(f"expected batch-first input (B, T, I), got shape {tuple(x.shape)}")
        if x.size(-1) != self.input_size:
            raise ValueError(f"expected {self.input_size} input features, got {x.size(-1)}")
        batch = x.size(0)
        if state is None:
            state = self.init_state(batch, x.device, x.dtype)  # each (L * D, B, H)
        elif isinstance(state, torch.Tensor):
            state = (state,)  # ((L * D, B, H),)
        state = tuple(state)  # each (L * D, B, H)
        if len(state) != self.state_size:
            raise ValueError(
                f"cell {self.cell_name!r} carries {self.state_size} state tensor(s), "
                f"got {len(state)}"
            )
        if reset is not None:
            return self._forward_with_reset(x, state, reset, lengths)
        return self._forward(x, state, lengths, final_state)

    def _forward(
        self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
        final_state: bool = True,
    ) -> tuple[torch.Tensor, State]:
        path = self.effective_impl
        if path == "fused":
            return self._forward_fused(x, state, lengths, final_state)
        if path == "compiled":
            return self._forward_compiled(x, state, lengths)
        return self._forward_reference(x, state, lengths, use_sequence=path == "sequence")

    def _forward_with_reset(
        self,
        x: torch.Tensor,
        state: State,
        reset: torch.Tensor,
        lengths: torch.Tensor | None,
    ) -> tuple[torch.Tensor, State]:
        if self.bidirectional:
            raise ValueError("reset masks (document boundaries) need a unidirectional backbone")
        if reset.shape != x.shape[:2]:
            raise ValueError(f"reset mask must be (B, T) = {tuple(x.shape[:2])}")
        # Split the window at every column where some row starts a new document; zero those
        # rows' state there. One host sync per window: only used where boundaries are marked.
        cols = torch.nonzero(reset.any(dim=0)).flatten().tolist()  # columns with a reset
        bounds = sorted(set([0, *cols, x.size(1)]))
        outs = []
        for t0, t1 in zip(bounds[:-1], bounds[1:]):
            keep = (~reset[:, t0]).to(x.dtype)[None, :, None]  # (1, B, 1)
            state = tuple(s * keep for s in state)  # each (L * D, B, H)
            seg_len = None
            if lengths is not None:
                seg_len = (lengths - t0).clamp(0, t1 - t0)  # (B,)
            y, state = self._forward(x[:, t0:t1], state, seg_len)  # (B, t1 - t0, H * D)
            outs.append(y)
        return torch.cat(outs, dim=1), state  # (B, T, H * D)

    # -- fused: torch.nn's kernels (cuDNN on GPU) over the cells' own parameters
    def flatten_parameters(self) -> None:
        """Puts the fused path's weights in one contiguous buffer, as cuDNN wants them.

        Without this cuDNN copies every weight into such a buffer on every call (and back
        for the gradients), as torch.nn does for an RNN whose weights were moved apart. A
        no-op off CUDA, for cells without a fused kernel and for other paths; called after
        every ``.to()`` / ``.cuda()``, like ``torch.nn.RNNBase.flatten_parameters``.
        """
        mode = self.cell_cls.fused_mode
        if mode is None or self.effective_impl != "fused":
            return
        weights = self._flat_weights()
        first = weights[0]
        if any(
            w.dtype != first.dtype or not w.is_cuda or not torch.backends.cudnn.is_acceptable(w)
            for w in weights
        ):
            return
        if len({w.data_ptr() for w in weights}) != len(weights):
            return  # aliased weights: keep the copying path
        import torch.backends.cudnn.rnn as cudnn_rnn

        with torch.cuda.device_of(first), torch.no_grad():
            if torch._use_cudnn_rnn_flatten_weight():
                torch._cudnn_rnn_flatten_weight(
                    weights,
                    4 if self.cells[0].bias_ih is not None else 2,
                    self.input_size,
                    cudnn_rnn.get_cudnn_mode(mode),
                    self.hidden_size,
                    0,
                    self.num_layers,
                    True,
                    self.bidirectional,
                )

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self.flatten_parameters()
        return out

    def _flat_weights(self, cells: Sequence[RNNCell] | None = None) -> list[torch.Tensor]:
        weights = []
        for cell in self.cells if cells is None else cells:
            weights += [cell.weight_ih, cell.weight_hh]
            if cell.bias_ih is not None:
                weights += [cell.bias_ih, cell.bias_hh]
        return weights

    def _forward_fused(
        self, x: torch.Tensor, state: State, lengths: torch.Tensor | None,
        final_state: bool = True,
    ) -> tuple[torch.Tensor, State]:
        if lengths is not None and self.padding == "mask":
            # One host sync, as packing has: the split points are Python numbers.
            ends = sorted(set(lengths.tolist()))
            if ends[0] < 0 or ends[-1] > x.size(1):
                raise ValueError(
                    f"lengths must lie in [0, {x.size(1)}] (the window's steps), got "
                    f"{ends[0]}..{ends[-1]}"
                )
            if ends != [x.size(1)]:
                # Without a state to read, one call to the longest row gives the outputs.
                return self._forward_fused_masked(
                    x, state, lengths, ends if final_state else ends[-1:])
            lengths = None  # every row is full: the plain call is exact
        mode = self.cell_cls.fused_mode
        func = _VF_FUNCS[mode]
        hx = state if mode == "LSTM" else state[0]  # (h, c) or h, each (L * D, B, H)
        has_bias = self.cells[0].bias_ih is not None
        args = (self._flat_weights(), has_bias, self.num_layers, self.dropout, self.training)
        if lengths is None:
            out = func(x, hx, *args, self.bidirectional, True)
            y, new_state = out[0], tuple(out[1:])  # (B, T, H * D), each (L * D, B, H)
            return y, new_state
        packed = pack_padded_sequence(  # data (sum of lengths, I), rows sorted by length
            x, lengths.detach().cpu(), batch_first=True, enforce_sorted=False
        )
        order, unorder = packed.sorted_indices, packed.unsorted_indices  # (B,), (B,)
        hx = tuple(s.index_select(1, order) for s in state)  # each (L * D, B, H), longest first
        out = func(  # (packed y (sum of lengths, H * D), *state)
            packed.data,
            packed.batch_sizes,
            hx if mode == "LSTM" else hx[0],
            *args,
            self.bidirectional,
        )
        packed_y = torch.nn.utils.rnn.PackedSequence(out[0], packed.batch_sizes, order, unorder)
        y, _ = pad_packed_sequence(  # (B, T, H * D), zeros past each length
            packed_y, batch_first=True, total_length=x.size(1)
        )
        return y, tuple(s.index_select(1, unorder) for s in out[1:])  # each (L * D, B, H)

    def _forward_fused_masked(
        self, x: torch.Tensor, state: State, lengths: torch.Tensor, ends: list[int]
    ) -> tuple[torch.Tensor, State]:
        """Right-padded rows through the fused kernel without packing (``padding="mask"``).

        Unidirectional: the whole stack runs over the padded steps; outputs past a row's
        length only follow its last real step, so they are zeroed and nothing reads them.
        Bidirectional: each layer's reverse direction must start at each row's own end and
        read the previous layer's outputs reversed within that length, so the stack runs
        layer by layer, one direction at a time.
        """
        steps = x.size(1)
        lengths = lengths.to(x.device)  # (B,)
        valid = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        if not self.bidirectional:
            y, final = self._segments(x, state, self.cells, lengths, ends)
            return zero_padding(y, valid), final  # (B, T, H), each (L, B, H)
        rev_index = reverse_index(lengths, steps)  # (B, T)
        finals: list[list[torch.Tensor]] = [[] for _ in range(self.state_size)]
        inp = x  # (B, T, I)
        for layer in range(self.num_layers):
            outs = []
            for d in range(2):
                k = layer * 2 + d
                seq = inp if d == 0 else reverse(inp, rev_index)  # (B, T, I or 2H)
                s = tuple(s_[k : k + 1] for s_ in state)  # each (1, B, H)
                with warnings.catch_warnings():
                    # On CUDA one layer's weights do not start the stack's flat cuDNN
                    # buffer, so cuDNN may copy them (small) and warn once about it.
                    warnings.filterwarnings("ignore", "RNN module weights are not part")
                    y, s = self._segments(seq, s, [self.cells[k]], lengths, ends)
                y = zero_padding(y, valid)  # (B, T, H)
                outs.append(y if d == 0 else reverse(y, rev_index))  # (B, T, H)
                for i, s_i in enumerate(s):
                    finals[i].append(s_i)  # (1, B, H)
            inp = torch.cat(outs, dim=-1)  # (B, T, 2H)
            if self.dropout > 0 and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, self.training)  # (B, T, 2H)
        return inp, tuple(torch.cat(f, dim=0) for f in finals)  # (B, T, 2H), each (2L, B, H)

    def _segments(
        self,
        x: torch.Tensor,
        state: State,
        cells: Sequence[RNNCell],
        lengths: torch.Tensor,
        ends: list[int],
    ) -> tuple[torch.Tensor, State]:
        """:func:`~rnnbench.backbones.padded.fused_segments` over ``cells`` (one direction)."""
        mode = self.cell_cls.fused_mode
        return fused_segments(
            _VF_FUNCS[mode], x, state, lengths, ends,
            weights=self._flat_weights(cells), has_bias=cells[0].bias_ih is not None,
            num_layers=len(cells), dropout=self.dropout if len(cells) > 1 else 0.0,
            training=self.training, lstm=mode == "LSTM",
        )

    # -- reference: the cells' per-step forward in a loop (or their forward_sequence hook)
    def _forward_reference(
        self,
        x: torch.Tensor,
        state: State,
        lengths: torch.Tensor | None,
        use_sequence: bool = False,
    ) -> tuple[torch.Tensor, State]:
        nd = self.num_directions
        steps = x.size(1)
        mask = None
        rev_index = None
        if lengths is not None:
            t = torch.arange(steps, device=x.device)  # (T,)
            lengths = lengths.to(x.device)  # (B,)
            mask = (t[None, :] < lengths[:, None]).to(x.dtype)  # (B, T)
            if nd == 2:
                rev_index = reverse_index(lengths, steps)  # (B, T) each row within its length
        final: list[list[torch.Tensor]] = [[] for _ in range(self.state_size)]
        inp = x  # (B, T, I)
        for layer in range(self.num_layers):
            outs = []
            for d in range(nd):
                k = layer * nd + d
                s = tuple(s_[k] for s_ in state)  # each (B, H)
                seq = inp  # (B, T, I or H * D)
                if d == 1:
                    seq = reverse(inp, rev_index)  # (B, T, I or H * D)
                y, s = self._run_cell(self.cells[k], seq, s, mask, use_sequence)  # (B, T, H)
                if d == 1:
                    y = reverse(y, rev_index)  # (B, T, H)
                outs.append(y)
                for i, s_i in enumerate(s):
                    final[i].append(s_i)
            inp = outs[0] if nd == 1 else torch.cat(outs, dim=-1)  # (B, T, H * nd)
            if self.dropout > 0 and layer < self.num_layers - 1:
                inp = F.dropout(inp, self.dropout, self.training)  # (B, T, H * D)
        final_state = tuple(torch.stack(f, dim=0) for f in final)  # each (L * D, B, H)
        return inp, final_state

    @staticmethod
    def _run_cell(
        cell: RNNCell,
        x: torch.Tensor,
        state: State,
        mask: torch.Tensor | None,
        use_sequence: bool,
    ) -> tuple[torch.Tensor, State]:
        if use_sequence and mask is None:
            return cell.forward_sequence(x, state)
        outs = []
        # unbind once: x[:, t] per step makes backward add T zero-filled (B, T, I) gradients.
        for t, x_t in enumerate(x.unbind(1)):
            h, new_state = cell(x_t, state)  # (B, H)
            if mask is not None:
                m = mask[:, t, None]  # (B, 1)
                # Padding steps keep the state: the final state is the one at the length.
                new_state = tuple(m * n + (1 - m) * o for n, o in zip(new_state, state))
                h = h * m  # (B, H)
            state = tuple(new_state)  # each (B, H)
            outs.append(h)
        return torch.stack(outs, dim=1), state  # (B, T, H)

    # -- compiled: the reference loop under torch.compile
    def _forward_compiled(
        self, x: torch.Tensor, state: State, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, State]:
        if self._compiled is None:
            self._compiled = torch.compile(self._forward_reference, dynamic=False)
        try:
            return self._compiled(x, state, lengths)
        except Exception as err:  # noqa: BLE001 - any backend failure falls back
            self._compile_failed = True
            warnings.warn(
                f"torch.compile is unavailable here ({type(err).__name__}: {err}); "
                "RecurrentBackbone falls back to impl='reference'",
                RuntimeWarning,
                stacklevel=3,
            )
            return self._forward_reference(x, state, lengths)

    # ----------------------------------------------------------------- torch.nn interop
    @classmethod
    def from_torch(cls, module: nn.RNNBase, impl: str = "auto") -> RecurrentBackbone:
        """Builds a backbone with the same weights as a ``torch.nn.RNN/LSTM/GRU``."""
        from rnnbench.backbones.interop import backbone_from_torch

        return backbone_from_torch(cls, module, impl)

    def to_torch(self) -> nn.RNNBase:
        """Returns a batch-first ``torch.nn.RNN/LSTM/GRU`` with this backbone's weights."""
        from rnnbench.backbones.interop import backbone_to_torch

        return backbone_to_torch(self)

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell_name!r}, impl={self.impl!r}, layers={self.num_layers}, "
            f"bidirectional={self.bidirectional}, dropout={self.dropout}"
        )
