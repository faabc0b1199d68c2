"""The optimiser table: Adam-type optimisers on CPU use torch's fused kernel, same update."""

from __future__ import annotations

import pytest
import torch

from rnnbench.optim import build_optimizer


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in [(12, 5), (12,), (3, 4)]]


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_on_cpu_is_fused_and_updates_as_the_per_tensor_loop(name):
    fused, loop = _params(0), _params(0)
    opt = build_optimizer(name, fused, lr=0.01, weight_decay=0.01)
    assert opt.defaults["fused"] is True
    ref_cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    ref = ref_cls(loop, lr=0.01, weight_decay=0.01, foreach=False)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        for a, b in zip(fused, loop):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_capturable_and_other_optimisers_are_not_fused():
    assert build_optimizer("adam", _params(0), lr=0.01, capturable=True).defaults[
        "capturable"] is True
    assert not build_optimizer("adam", _params(0), lr=0.01, capturable=True).defaults["fused"]
    assert not build_optimizer("rmsprop", _params(0), lr=0.01).defaults.get("fused")
    assert not build_optimizer("sgd", _params(0), lr=0.01).defaults.get("fused")
