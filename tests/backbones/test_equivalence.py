"""Reference, fused and torch.nn paths compute the same function with the same weights."""

import pytest
import torch
from torch import nn

from rnnbench.backbones import RecurrentBackbone
from rnnbench.cells.builtin import BUILTIN_CELLS

TOL = {torch.float64: 1e-9, torch.float32: 1e-5}


def _torch_module(cell: str, layers: int, bidirectional: bool, dtype) -> nn.RNNBase:
    kw = dict(input_size=5, hidden_size=7, num_layers=layers, batch_first=True,
              bidirectional=bidirectional)
    if cell == "lstm":
        m = nn.LSTM(**kw)
    elif cell == "gru":
        m = nn.GRU(**kw)
    else:
        m = nn.RNN(nonlinearity=cell.split("_")[1], **kw)
    return m.to(dtype)


def _run(module, x, state, lengths=None):
    x = x.clone().requires_grad_(True)
    if isinstance(module, RecurrentBackbone):
        y, final = module(x, state, lengths=lengths)
    else:
        hx = state if isinstance(module, nn.LSTM) else state[0]
        if lengths is not None:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                       enforce_sorted=False)
            y, out = module(packed, hx)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.size(1))
        else:
            y, out = module(x, hx)
        final = out if isinstance(out, tuple) else (out,)
    # A loss that touches outputs and every final state, with fixed random weights.
    g = torch.Generator().manual_seed(1)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum()
    for s in final:
        loss = loss + (s * torch.randn(s.shape, generator=g, dtype=s.dtype)).sum()
    loss.backward()
    grads = [p.grad.clone() for p in module.parameters()]
    return y.detach(), [s.detach() for s in final], x.grad.clone(), grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("cell", BUILTIN_CELLS)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "padded"])
def test_paths_agree(cell, layers, bidirectional, dtype, with_lengths):
    torch.manual_seed(0)
    module = _torch_module(cell, layers, bidirectional, dtype)
    nd = 2 if bidirectional else 1
    x = torch.randn(4, 9, 5, dtype=dtype)
    n_state = 2 if cell == "lstm" else 1
    state = tuple(torch.randn(layers * nd, 4, 7, dtype=dtype) for _ in range(n_state))
    lengths = torch.tensor([9, 3, 7, 1]) if with_lengths else None
    expected = _run(module, x, state, lengths)
    for impl in ("reference", "fused"):
        bb = RecurrentBackbone.from_torch(module, impl=impl)
        got = _run(bb, x, state, lengths)
        tol = TOL[dtype]
        torch.testing.assert_close(got[0], expected[0], atol=tol, rtol=0, msg=f"{impl} outputs")
        for a, b in zip(got[1], expected[1]):
            torch.testing.assert_close(a, b, atol=tol, rtol=0, msg=f"{impl} final state")
        torch.testing.assert_close(got[2], expected[2], atol=tol, rtol=0, msg=f"{impl} dL/dx")
        for a, b in zip(got[3], expected[3]):
            torch.testing.assert_close(a, b, atol=tol, rtol=0, msg=f"{impl} weight grads")


@pytest.mark.parametrize("cell", BUILTIN_CELLS)
def test_to_torch_round_trip(cell):
    bb = RecurrentBackbone(cell, 3, 4, num_layers=2, bidirectional=True, impl="reference")
    module = bb.to_torch()
    back = RecurrentBackbone.from_torch(module)
    for p, q in zip(bb.parameters(), back.parameters()):
        assert torch.equal(p, q)
    x = torch.randn(2, 6, 3)
    torch.testing.assert_close(bb(x)[0], module(x)[0])


def test_reset_mask_restarts_rows():
    torch.manual_seed(0)
    bb = RecurrentBackbone("gru", 3, 4, num_layers=2, impl="reference")
    x = torch.randn(2, 8, 3)
    state = bb.init_state(2)
    state = (torch.randn_like(state[0]),)
    reset = torch.zeros(2, 8, dtype=torch.bool)
    reset[0, 5] = True
    y, final = bb(x, state, reset=reset)
    # Row 0 from step 5 on equals a fresh run from zero state on x[0, 5:].
    y_fresh, final_fresh = bb(x[:1, 5:])
    torch.testing.assert_close(y[:1, 5:], y_fresh)
    torch.testing.assert_close(final[0][:, :1], final_fresh[0])
    # Row 1 is untouched by row 0's boundary.
    y_plain, _ = bb(x, state)
    torch.testing.assert_close(y[1], y_plain[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="impl must be one of"):
        RecurrentBackbone("gru", 3, 4, impl="cudnn")
    with pytest.raises(ValueError, match="num_layers"):
        RecurrentBackbone("gru", 3, 4, num_layers=0)
    with pytest.raises(KeyError, match="registered cells are"):
        RecurrentBackbone("nope", 3, 4)
    bb = RecurrentBackbone("lstm", 3, 4)
    with pytest.raises(ValueError, match="input features"):
        bb(torch.randn(2, 5, 2))
    with pytest.raises(ValueError, match="state tensor"):
        bb(torch.randn(2, 5, 3), (torch.zeros(1, 2, 4),))


def test_parameter_count_matches_torch():
    bb = RecurrentBackbone("lstm", 88, 36)
    assert bb.num_parameters() == sum(p.numel() for p in nn.LSTM(88, 36).parameters())
