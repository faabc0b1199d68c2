"""Padded batches on the fused path: unpacked (the default) equals pack_padded_sequence.

float64, every built-in cell, one and two layers, one and two directions, rows of unequal
lengths (one of length zero is left to the unpacked path only: packing refuses it). Valid
outputs, final states and every gradient agree within 1e-9; outputs past a length are zero.
"""

import copy

import pytest
import torch

from rnnbench.backbones import RecurrentBackbone
from rnnbench.backbones import recurrent as recurrent_mod

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
IN, H = 5, 6


def _pair(cell, num_layers, bidirectional):
    torch.manual_seed(0)
    masked = RecurrentBackbone(cell, IN, H, num_layers=num_layers, bidirectional=bidirectional,
                               impl="fused").double()
    packed = copy.deepcopy(masked)
    packed.padding = "pack"
    return masked, packed


def _run(bb, x, state, lengths, weights):
    """Outputs, final state and the gradients of a loss that reads both."""
    x = x.clone().requires_grad_(True)
    state = tuple(s.clone().requires_grad_(True) for s in state)
    bb.zero_grad()
    y, final = bb(x, state, lengths=lengths)
    loss = (y * weights[0]).sum() + sum((f * w).sum() for f, w in zip(final, weights[1:]))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in bb.named_parameters()}
    return y.detach(), tuple(f.detach() for f in final), grads, x.grad, [s.grad for s in state]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", CELLS)
def test_unpacked_path_equals_packed_path(cell, num_layers, bidirectional, monkeypatch):
    masked, packed = _pair(cell, num_layers, bidirectional)
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([9, 4, 7, 9, 1, 4])  # (B,) unequal, repeated, one full row
    B, T = len(lengths), 11  # two steps of padding after the longest row too
    x = torch.randn(B, T, IN, generator=g, dtype=torch.float64)  # (B, T, I)
    x[torch.arange(T)[None, :] >= lengths[:, None]] = 7.0  # padding that must not leak
    D = 2 if bidirectional else 1
    state = tuple(torch.randn(num_layers * D, B, H, generator=g, dtype=torch.float64)
                  for _ in range(masked.state_size))  # each (L * D, B, H)
    weights = [torch.randn(B, T, H * D, generator=g, dtype=torch.float64),
               *(torch.randn_like(s) for s in state)]

    want = _run(packed, x, state, lengths, weights)
    # The default path must not pack: make packing fail loudly while it runs.
    monkeypatch.setattr(recurrent_mod, "pack_padded_sequence", _no_packing)
    got = _run(masked, x, state, lengths, weights)

    valid = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    assert (got[0][~valid] == 0).all()  # nothing past a row's length
    torch.testing.assert_close(got[0], want[0], atol=1e-9, rtol=0)  # outputs
    for a, b in zip(got[1], want[1]):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)  # final states
    assert got[2].keys() == want[2].keys()
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], atol=1e-9, rtol=0, msg=name)
    torch.testing.assert_close(got[3], want[3], atol=1e-9, rtol=0)  # input gradient
    for a, b in zip(got[4], want[4]):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)  # initial-state gradients


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_without_a_final_state_one_kernel_call_gives_the_same_outputs_and_gradients(
        cell, bidirectional, monkeypatch):
    masked, packed = _pair(cell, 2, bidirectional)
    g = torch.Generator().manual_seed(2)
    lengths = torch.tensor([9, 4, 7, 9, 1, 4])  # (B,) four distinct lengths
    x = torch.randn(len(lengths), 11, IN, generator=g, dtype=torch.float64)  # (B, T, I)
    weights = torch.randn(len(lengths), 11, H * (2 if bidirectional else 1), generator=g,
                          dtype=torch.float64)  # (B, T, H * D)

    def outputs_and_grads(bb, **kw):
        bb.zero_grad()
        xg = x.clone().requires_grad_(True)
        y, _ = bb(xg, None, lengths=lengths, **kw)
        (y * weights).sum().backward()
        return y.detach(), xg.grad, {n: p.grad.clone() for n, p in bb.named_parameters()}

    want = outputs_and_grads(packed)
    calls = []
    kernel = recurrent_mod._VF_FUNCS[masked.cell_cls.fused_mode]
    monkeypatch.setitem(recurrent_mod._VF_FUNCS, masked.cell_cls.fused_mode,
                        lambda *a: calls.append(a[0].size(1)) or kernel(*a))
    got = outputs_and_grads(masked, final_state=False)
    # one call per layer and direction (bidirectional runs layer by layer), up to row 9's end
    assert calls == [9] * (4 if bidirectional else 1), calls
    torch.testing.assert_close(got[0], want[0], atol=1e-9, rtol=0)
    torch.testing.assert_close(got[1], want[1], atol=1e-9, rtol=0)
    for name in want[2]:
        torch.testing.assert_close(got[2][name], want[2][name], atol=1e-9, rtol=0, msg=name)


def _no_packing(*args, **kwargs):
    raise AssertionError("padding='mask' must not call pack_padded_sequence")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_zero_length_rows_keep_their_state_and_full_rows_take_one_call(bidirectional):
    masked, _ = _pair("lstm", 2, bidirectional)
    ref = copy.deepcopy(masked)
    ref.impl = "reference"  # per-step masking: handles empty rows by construction
    x = torch.randn(3, 5, IN, dtype=torch.float64)  # (B, T, I)
    lengths = torch.tensor([5, 0, 2])  # (B,)
    state = masked.init_state(3)
    state = tuple(torch.randn_like(s) for s in state)
    y, final = masked(x, state, lengths=lengths)
    y_ref, final_ref = ref(x, state, lengths=lengths)
    torch.testing.assert_close(y, y_ref, atol=1e-9, rtol=0)
    for a, b in zip(final, final_ref):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)
        torch.testing.assert_close(a[:, 1], b[:, 1])  # the empty row: its initial state
    full, _ = masked(x, state, lengths=torch.full((3,), 5))
    torch.testing.assert_close(full, masked(x, state)[0], atol=0, rtol=0)
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\]"):
        masked(x, state, lengths=torch.tensor([6, 1, 1]))


def test_padding_option_is_checked_and_reaches_the_module():
    from rnnbench.module import RNNModule

    with pytest.raises(ValueError, match="padding must be one of"):
        RecurrentBackbone("gru", 3, 4, padding="packed")
    module = RNNModule(task="music", cell="lstm", hidden_size=4, padding="pack")
    assert module.backbone.padding == "pack" and module.hparams.padding == "pack"
    assert RNNModule(task="music", cell="lstm", hidden_size=4).backbone.padding == "mask"
