"""The compiled path equals the reference path; without a compiler it falls back once."""

import warnings

import pytest
import torch

from rnnbench.backbones import RecurrentBackbone


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm", "mgu"])
def test_compiled_equals_reference(cell):
    torch.manual_seed(0)
    ref = RecurrentBackbone(cell, 3, 6, num_layers=2, impl="reference").double()
    comp = RecurrentBackbone(cell, 3, 6, num_layers=2, impl="compiled").double()
    comp.load_state_dict(ref.state_dict())
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    outs = []
    for bb in (ref, comp):
        xi = x.clone().requires_grad_(True)
        y, state = bb(xi)
        (y.square().sum() + state[0].sum()).backward()
        outs.append((y.detach(), xi.grad, [p.grad for p in bb.parameters()]))
    assert comp.effective_impl == "compiled"
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-9, rtol=0)
    torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-9, rtol=0)
    for a, b in zip(outs[1][2], outs[0][2]):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0)


def test_compile_unavailable_falls_back_with_one_warning(monkeypatch):
    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C compiler found")

        return run

    # Stand-in for a machine without a working compiler toolchain.
    monkeypatch.setattr(torch, "compile", broken_compile)
    bb = RecurrentBackbone("gru", 3, 4, impl="compiled")
    x = torch.randn(2, 5, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y1, _ = bb(x)
        y2, _ = bb(x)
    messages = [str(w.message) for w in caught if "falls back" in str(w.message)]
    assert len(messages) == 1 and "no C compiler found" in messages[0]
    assert bb.effective_impl == "reference"
    torch.testing.assert_close(y1, y2)
