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
