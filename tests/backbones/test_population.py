"""PopulationBackbone: the batched and vmap paths equal each member run on its own."""

from __future__ import annotations

import pytest
import torch

from rnnbench.backbones import RecurrentBackbone
from rnnbench.backbones.population import PopulationBackbone
from rnnbench.cells import RNNCell


@pytest.mark.parametrize("cell,path", [("lstm", "batched"), ("gru", "batched"),
                                       ("rnn_tanh", "batched"), ("lstm", "vmap"),
                                       ("mgu", "vmap")])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_paths_equal_each_member_alone(cell, path, bidirectional):
    torch.manual_seed(0)
    members = [RecurrentBackbone(cell, 5, 7, num_layers=2, bidirectional=bidirectional)
               for _ in range(3)]
    x = torch.randn(3, 4, 6, 5)  # (K, B, T, I)
    lengths = torch.tensor([[6, 3, 1, 0], [6, 6, 6, 6], [2, 5, 4, 3]])  # (K, B)
    pop = PopulationBackbone(members, path=path)
    for lens in (None, lengths):
        y, state = pop(x, lengths=lens)
        for k, m in enumerate(members):
            y_k, s_k = m(x[k], lengths=None if lens is None else lens[k])
            torch.testing.assert_close(y[k], y_k, rtol=1e-5, atol=1e-6)
            for a, b in zip(state, s_k):
                torch.testing.assert_close(a[k], b, rtol=1e-5, atol=1e-6)
    assert pop.path == path


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_members_that_end_early_drop_out_of_the_step_and_stay_exact(cell, bidirectional):
    # Members end at 2, 7, 0 and 4 steps: the batched path runs the longest first and each
    # step on the members still running; outputs, final states and every gradient equal each
    # member on its own (float64).
    torch.manual_seed(0)
    members = [RecurrentBackbone(cell, 3, 4, num_layers=2, bidirectional=bidirectional).double()
               for _ in range(4)]
    x = torch.randn(4, 3, 7, 3, dtype=torch.float64)  # (K, B, T, I)
    lengths = torch.tensor([[2, 1, 2], [7, 3, 5], [0, 0, 0], [4, 4, 1]])  # (K, B)
    y, state = PopulationBackbone(members, path="batched")(x, lengths=lengths)
    (y.square().sum() + sum(s.square().sum() for s in state)).backward()
    got = [[p.grad.clone() for p in m.parameters()] for m in members]
    for m in members:
        m.zero_grad(set_to_none=True)
    for k, m in enumerate(members):
        y_k, s_k = m(x[k], lengths=lengths[k])
        torch.testing.assert_close(y[k], y_k, rtol=1e-9, atol=1e-12)
        for a, b in zip(state, s_k):
            torch.testing.assert_close(a[k], b, rtol=1e-9, atol=1e-12)
        loss_k = y_k.square().sum() + sum(s.square().sum() for s in s_k)
        if loss_k.requires_grad:  # a member of length 0 never touches its weights
            loss_k.backward()
        for g, p in zip(got[k], m.parameters()):
            want = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.testing.assert_close(g, want, rtol=1e-9, atol=1e-12)


def test_active_counts_are_the_members_still_running():
    from rnnbench.backbones.population import _active_counts

    assert _active_counts([7, 4, 2, 0], 7) == [3, 3, 2, 2, 1, 1, 1]
    assert _active_counts([3, 3], 3) == [2, 2, 2]


def test_gradients_reach_each_member_and_only_it():
    torch.manual_seed(0)
    members = [RecurrentBackbone("lstm", 3, 4) for _ in range(2)]
    y, _ = PopulationBackbone(members)(torch.randn(2, 2, 5, 3))
    y[1].sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in members[0].parameters())
    grads = [p.grad for p in members[1].parameters()]
    assert all(g is not None and g.any() for g in grads)
    # Two parameters never share one gradient tensor (in-place clipping would scale it twice).
    assert len({g.data_ptr() for g in grads}) == len(grads)


class _HostReadCell(RNNCell):
    """Reads a weight on the host every step, which vmap cannot batch."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.lin = torch.nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t, state):
        gain = float(self.lin.bias[0].item())  # a host read: no batching rule
        h = torch.tanh(self.lin(torch.cat([x_t, state[0]], dim=-1)) * (1.0 + 0.0 * gain))
        return h, (h,)


def test_a_cell_vmap_cannot_batch_falls_back_to_one_member_at_a_time(caplog):
    torch.manual_seed(0)
    members = [RecurrentBackbone(_HostReadCell, 3, 4) for _ in range(2)]
    pop = PopulationBackbone(members)
    x = torch.randn(2, 2, 5, 3)  # (K, B, T, I)
    y, _ = pop(x)
    y, _ = pop(x)
    assert pop.path == "loop" and pop.why_loop
    assert sum("one member at a time" in r.message for r in caplog.records) == 1
    torch.testing.assert_close(y[0], members[0](x[0])[0])


def test_members_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="share one shape"):
        PopulationBackbone([RecurrentBackbone("gru", 3, 4), RecurrentBackbone("gru", 3, 5)])
