"""K backbones of one shape run as one batched model: the time loop runs once for all members.

Shapes: K members, B rows, T steps, I input features, H units, G gate rows (gates * H),
L layers, D directions. Each member keeps its own ``nn.Parameter`` objects; every call
stacks them (``torch.stack`` keeps autograd to each member), so gradients land in each
member's own ``.grad`` and each member can have an ordinary optimiser of its own.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from rnnbench.backbones.padded import reverse, reverse_index
from rnnbench.backbones.recurrent import RecurrentBackbone

_log = logging.getLogger(__name__)
State = tuple[torch.Tensor, ...]
POPULATION_PATHS = ("auto", "batched", "vmap", "loop")


def stack_parameters(modules: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    """Each parameter name -> the members' parameters stacked ``(K, ...)`` (differentiable)."""
    names = [n for n, _ in modules[0].named_parameters()]
    per = [dict(m.named_parameters()) for m in modules]
    return {n: torch.stack([p[n] for p in per]) for n in names}


def same_shapes(modules: Sequence[nn.Module]) -> str | None:
    """``None`` when every module has the first's parameter names and shapes, else why not."""
    ref = {n: tuple(p.shape) for n, p in modules[0].named_parameters()}
    for k, m in enumerate(modules[1:], start=1):
        got = {n: tuple(p.shape) for n, p in m.named_parameters()}
        if got != ref:
            diff = sorted(n for n in set(ref) | set(got) if ref.get(n) != got.get(n))
            return f"member {k} differs from member 0 in {', '.join(diff[:4])}"
    return None


# ---------------------------------------------------------------- built-in cell steps
def _tanh_step(gx: torch.Tensor, gh: torch.Tensor, state: State) -> State:
    return (torch.tanh(gx + gh),)  # (K, B, H)


def _relu_step(gx: torch.Tensor, gh: torch.Tensor, state: State) -> State:
    return (torch.relu(gx + gh),)  # (K, B, H)


def _lstm_step(gx: torch.Tensor, gh: torch.Tensor, state: State) -> State:
    i, f, g, o = (gx + gh).chunk(4, dim=-1)  # each (K, B, H)
    c = torch.sigmoid(f) * state[1] + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c  # (K, B, H) each


def _gru_step(gx: torch.Tensor, gh: torch.Tensor, state: State) -> State:
    i_r, i_z, i_n = gx.chunk(3, dim=-1)  # each (K, B, H)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (n + z * (state[0] - n),)  # (K, B, H)


_STEPS = {"RNN_TANH": _tanh_step, "RNN_RELU": _relu_step, "LSTM": _lstm_step,
          "GRU": _gru_step}


class PopulationBackbone(nn.Module):
    """K :class:`RecurrentBackbone` members of one shape, run in lockstep as one model.

    Paths: ``"batched"`` (built-in cells: the members' weights stacked ``(K, ...)``, the
    input projection of a whole window in one ``baddbmm`` and one ``baddbmm`` per step for
    the recurrence), ``"vmap"`` (any cell: ``torch.func.vmap`` over the member dimension of
    the member's reference path, so plugin cells get batching for free), ``"loop"`` (one
    member after another on its own path). ``"auto"`` takes ``batched`` for built-in cells,
    else ``vmap``, and falls back to ``loop`` with one log line when vmap fails.

    Args:
        members: The backbones (same cell, sizes, layers and direction); they stay the
            owners of their parameters (the population holds them, it copies nothing).
        path: ``auto``, ``batched``, ``vmap`` or ``loop``.
        compile_step: Run the batched path's gate step under ``torch.compile`` (fuses the
            element-wise gate math; falls back to eager with one log line where compile
            is unavailable).

    Attributes:
        drop_ended: On the batched path, members whose rows have all ended leave the step
            (members run longest first, each step on a prefix). ``False`` runs every member
            to the longest end, masked: the same numbers, for benchmarks to compare.
    """

    drop_ended = True

    def __init__(self, members: Sequence[RecurrentBackbone], path: str = "auto",
                 compile_step: bool = False) -> None:
        super().__init__()
        if not members:
            raise ValueError("a population needs at least one member")
        if path not in POPULATION_PATHS:
            raise ValueError(f"path must be one of {POPULATION_PATHS}, got {path!r}")
        why = same_shapes(members)
        if why is not None:
            raise ValueError(f"population members must share one shape: {why}")
        first = members[0]
        for k, m in enumerate(members):
            same = (m.cell_cls, m.num_layers, m.bidirectional, m.hidden_size, m.input_size)
            if same != (first.cell_cls, first.num_layers, first.bidirectional,
                        first.hidden_size, first.input_size):
                raise ValueError(f"population member {k} is a different backbone than member 0")
        self.members = nn.ModuleList(members)
        mode = first.cell_cls.fused_mode
        if path == "batched" and mode is None:
            raise ValueError(f"cell {first.cell_name!r} has no batched form; use vmap or loop")
        if path == "auto":
            path = "batched" if mode is not None else "vmap"
        self.path = path
        self.why_loop: str | None = None
        self._template: RecurrentBackbone | None = None
        self._step = _STEPS.get(mode) if mode else None
        if compile_step and self._step is not None:
            self._step = _compiled(self._step)

    @property
    def size(self) -> int:
        """Number of members ``K``."""
        return len(self.members)

    def init_state(self, batch_size: int) -> State:
        """Zero state: ``state_size`` tensors of ``(K, L * D, B, H)``."""
        return tuple(torch.stack(s) for s in zip(*(m.init_state(batch_size)
                                                    for m in self.members)))

    def forward(self, x: torch.Tensor, state: State | None = None, *,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, State]:
        """Runs every member over its own window.

        Args:
            x: Inputs ``(K, B, T, I)``: member k reads ``x[k]``.
            state: ``None`` (zeros) or ``state_size`` tensors, each ``(K, L * D, B, H)``.
            lengths: Optional ``(K, B)`` valid lengths of right-padded rows.

        Returns:
            ``(y, state)``: ``(K, B, T, H * D)`` outputs (zero past each length) and the
            final state, each ``(K, L * D, B, H)``.
        """
        if x.dim() != 4 or x.size(0) != self.size:
            raise ValueError(f"expected inputs (K={self.size}, B, T, I), got {tuple(x.shape)}")
        if state is None:
            state = tuple(s.to(x) for s in self.init_state(x.size(1)))
        if self.path == "batched":
            return self._forward_batched(x, tuple(state), lengths)
        if self.path == "vmap":
            try:
                return self._forward_vmap(x, tuple(state), lengths)
            except Exception as err:  # noqa: BLE001 - any vmap failure falls back to the loop
                self.path = "loop"
                self.why_loop = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
                _log.warning("population of %d %r members runs one member at a time: "
                             "vmap failed (%s)", self.size, self.members[0].cell_name,
                             self.why_loop)
        return self._forward_loop(x, tuple(state), lengths)

    # -- loop: each member on its own path (the reference the other paths equal)
    def _forward_loop(self, x, state, lengths):
        ys, finals = [], []
        for k, m in enumerate(self.members):
            y, s = m(x[k], tuple(s_[k] for s_ in state),  # (B, T, H * D)
                     lengths=None if lengths is None else lengths[k])
            ys.append(y)
            finals.append(s)
        return torch.stack(ys), tuple(torch.stack(s) for s in zip(*finals))

    # -- vmap: the member's reference path under torch.func.vmap
    def _forward_vmap(self, x, state, lengths):
        if self._template is None:
            template = copy.deepcopy(self.members[0]).to("meta")
            if template.effective_impl in ("fused", "compiled"):
                template.impl = "reference"  # torch's fused kernels have no batching rule
            self._template = template
        params = stack_parameters(self.members)  # each (K, ...), differentiable
        template = self._template
        template.train(self.members[0].training)
        dropout = {m.dropout for m in self.members}
        if len(dropout) > 1 and self.training:
            raise ValueError("members differ in dropout; vmap needs one rate")

        def one(p, x_k, s_k, len_k):
            return functional_call(template, p, (x_k, s_k), {"lengths": len_k})

        return vmap(one, in_dims=(0, 0, 0, None if lengths is None else 0),
                    randomness="different")(params, x, state, lengths)

    # -- batched: stacked weights, one baddbmm per step (built-in cells)
    def _forward_batched(self, x, state, lengths):
        first = self.members[0]
        nd, steps = first.num_directions, x.size(2)
        members = list(self.members)
        mask = rev_index = bounds = active = unorder = None
        if lengths is not None:
            # One host sync per window (as the fused path's padded split has).
            ends = lengths.amax(dim=1).clamp(max=steps).tolist()  # K x each member's end
            bounds = (int(lengths.min()), max(ends))
            if self.drop_ended and len(set(ends)) > 1:
                # Longest member first: the members still running at step t are a prefix,
                # and a member whose rows have all ended costs nothing more.
                order = sorted(range(self.size), key=lambda k: -ends[k])
                idx = torch.tensor(order, device=x.device)  # (K,)
                unorder = torch.argsort(idx)  # (K,)
                x, lengths = x.index_select(0, idx), lengths.index_select(0, idx)
                state = tuple(s.index_select(0, idx) for s in state)
                members = [members[k] for k in order]
                active = _active_counts(sorted(ends, reverse=True), bounds[1])
            t = torch.arange(steps, device=x.device)  # (T,)
            mask = t < lengths[..., None]  # (K, B, T)
            if nd == 2:
                rev_index = reverse_index(lengths.reshape(-1), steps)  # (K * B, T)
        finals: list[list[torch.Tensor]] = [[] for _ in range(first.state_size)]
        inp = x  # (K, B, T, I)
        for layer in range(first.num_layers):
            outs = []
            for d in range(nd):
                k = layer * nd + d
                w = stack_parameters([m.cells[k] for m in members])
                seq = inp if d == 0 else _rev(inp, rev_index)  # (K, B, T, I or H * D)
                s = tuple(s_[:, k] for s_ in state)  # each (K, B, H)
                y, s = self._run_layer(w, seq, s, mask, bounds, active)  # (K, B, T, H)
                outs.append(y if d == 0 else _rev(y, rev_index))
                for i, s_i in enumerate(s):
                    finals[i].append(s_i)
            inp = outs[0] if nd == 1 else torch.cat(outs, dim=-1)  # (K, B, T, H * D)
            if layer < first.num_layers - 1 and self.training:
                inp = member_dropout(inp, [m.dropout for m in members])
        final = tuple(torch.stack(f, dim=1) for f in finals)  # each (K, L * D, B, H)
        if unorder is not None:
            inp = inp.index_select(0, unorder)
            final = tuple(f.index_select(0, unorder) for f in final)
        return inp, final

    def _run_layer(self, w: dict[str, torch.Tensor], seq: torch.Tensor, state: State,
                   mask: torch.Tensor | None, bounds: tuple[int, int] | None,
                   active: list[int] | None = None) -> tuple[torch.Tensor, State]:
        """One layer, one direction, over ``(K, B, T, I)``.

        ``active[t]`` (members sorted longest first) is how many members still have a real
        step at ``t``: the step runs on that prefix only, and a member that drops out keeps
        its state (its final one) and zeros as outputs, as masking would have given it.
        """
        k_, b_, steps, i_ = seq.shape
        w_ih, w_hh = w["weight_ih"].transpose(1, 2), w["weight_hh"].transpose(1, 2)  # (K, ., G)
        gates = w_hh.size(-1)
        b_ih, b_hh = w.get("bias_ih"), w.get("bias_hh")  # (K, G) or None
        flat = seq.reshape(k_, b_ * steps, i_)  # (K, B * T, I)
        # b_hh stays in the per-step product, as the GRU needs it (r * (W_hn h + b_hn)).
        # Folding it into the input projection (b_ih + b_hh) would also make autograd hand
        # the two biases one shared gradient tensor, which in-place clipping scales twice.
        gx = torch.bmm(flat, w_ih) if b_ih is None else torch.baddbmm(  # (K, B * T, G)
            b_ih[:, None, :], flat, w_ih)
        # unbind once: indexing gx[t] per step would make autograd add T zero-filled
        # (T, K, B, G) gradients (quadratic in T); unbind's backward stacks them once.
        gx = gx.view(k_, b_, steps, gates).permute(2, 0, 1, 3).unbind(0)  # T x (K, B, G)
        hb = None if b_hh is None else b_hh[:, None, :]  # (K, 1, G)
        # Steps before the shortest row's end need no mask; steps after the longest row's
        # end change nothing (every row is padding there): their outputs are zeros.
        first, stop = bounds if bounds is not None else (steps, steps)
        n = k_  # members running
        runs: list[tuple[int, list[torch.Tensor]]] = [(n, [])]  # (members, their outputs)
        ended: list[State] = []  # states of members that stopped, latest first
        for t in range(stop):
            if active is not None and active[t] < n:
                ended.insert(0, tuple(s_[active[t]:n] for s_ in state))
                n = active[t]
                state = tuple(s_[:n] for s_ in state)  # each (n, B, H)
                w_hh, hb = w_hh[:n], None if hb is None else hb[:n]
                runs.append((n, []))
            h = state[0]  # (n, B, H)
            g_x = gx[t] if n == k_ else gx[t][:n]  # (n, B, G)
            gh = torch.bmm(h, w_hh) if hb is None else torch.baddbmm(hb, h, w_hh)  # (n, B, G)
            new = self._step(g_x, gh, state)
            if t >= first:
                m = mask[:n, :, t, None]  # (n, B, 1) bool
                # Padding steps keep the state: the final state is the one at the length.
                new = tuple(torch.where(m, n_, o) for n_, o in zip(new, state))
                runs[-1][1].append(new[0].masked_fill(~m, 0.0))  # (n, B, H)
            else:
                runs[-1][1].append(new[0])
            state = new
        hidden = state[0].size(-1) if n else w_hh.size(1)
        pieces = []
        for members, outs in runs:
            if not outs:
                continue
            y = torch.stack(outs, dim=2)  # (members, B, steps of the run, H)
            pieces.append(y if members == k_ else F.pad(y, (0, 0, 0, 0, 0, 0, 0, k_ - members)))
        if stop < steps:
            pieces.append(seq.new_zeros(k_, b_, steps - stop, hidden))
        y = pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=2)  # (K, B, T, H)
        if ended:
            state = tuple(torch.cat([s_, *(e[i] for e in ended)]) for i, s_ in enumerate(state))
        return y, state  # (K, B, T, H), each (K, B, H)


def _active_counts(ends: list[int], stop: int) -> list[int]:
    """``[members with end > t for t < stop]`` for ``ends`` sorted longest first."""
    counts, n = [], len(ends)
    for t in range(stop):
        while n and ends[n - 1] <= t:
            n -= 1
        counts.append(n)
    return counts


def _rev(x: torch.Tensor, rev_index: torch.Tensor | None) -> torch.Tensor:
    """Reverses ``(K, B, T, F)`` in time, each row within its length when given an index."""
    k_, b_ = x.shape[:2]
    return reverse(x.reshape(k_ * b_, *x.shape[2:]), rev_index).view(x.shape)


_KEEP: dict[tuple, torch.Tensor] = {}  # (rates, dtype, device) -> keep probabilities (K,)


def member_dropout(x: torch.Tensor, rates: list[float]) -> torch.Tensor:
    """Inverted dropout on ``(K, ...)`` with member k's own rate."""
    if not any(rates):
        return x
    if len(set(rates)) == 1:
        return F.dropout(x, rates[0], True)
    key = (tuple(rates), x.dtype, x.device)
    keep = _KEEP.get(key)
    if keep is None:  # made once: a CUDA graph capture may not copy from the host
        keep = _KEEP[key] = 1.0 - torch.tensor(rates, dtype=x.dtype, device=x.device)  # (K,)
    keep = keep.view(-1, *([1] * (x.dim() - 1)))  # (K, 1, ...)
    return x * torch.bernoulli(keep.expand_as(x)) / keep


def _compiled(step):
    """``step`` under torch.compile, or eager (one log line) where compile fails."""
    compiled = torch.compile(step)
    state = {"fn": compiled}

    def run(gx, gh, s):
        try:
            return state["fn"](gx, gh, s)
        except Exception as err:  # noqa: BLE001 - any backend failure falls back
            _log.warning("population gate step runs eagerly: torch.compile failed (%s: %s)",
                         type(err).__name__, str(err).splitlines()[0][:200])
            state["fn"] = step
            return step(gx, gh, s)

    return run


__all__ = ["POPULATION_PATHS", "PopulationBackbone", "member_dropout", "same_shapes",
           "stack_parameters"]
