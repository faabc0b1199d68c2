"""A :class:`RecurrentBackbone` to and from ``torch.nn.RNN/LSTM/GRU``, with the same weights."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from rnnbench.backbones.recurrent import RecurrentBackbone


def backbone_from_torch(cls: type[RecurrentBackbone], module: nn.RNNBase,
                        impl: str = "auto") -> RecurrentBackbone:
    """A ``cls`` backbone with the same weights as a ``torch.nn.RNN/LSTM/GRU``."""
    if isinstance(module, nn.LSTM):
        if module.proj_size:
            raise ValueError("LSTM with proj_size > 0 has no rnnbench equivalent")
        name = "lstm"
    elif isinstance(module, nn.GRU):
        name = "gru"
    elif isinstance(module, nn.RNN):
        name = "rnn_relu" if module.nonlinearity == "relu" else "rnn_tanh"
    else:
        raise TypeError(f"from_torch needs torch.nn.RNN/LSTM/GRU, got {type(module).__name__}")
    bb = cls(
        name,
        module.input_size,
        module.hidden_size,
        num_layers=module.num_layers,
        bidirectional=module.bidirectional,
        dropout=module.dropout,
        impl=impl,
        bias=module.bias,
    )
    ref = next(module.parameters())
    bb.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for k, cell in enumerate(bb.cells):
            for pname, value in _torch_params(module, k, bb.num_directions):
                getattr(cell, pname).copy_(value)
    bb.train(module.training)
    return bb


def backbone_to_torch(bb: RecurrentBackbone) -> nn.RNNBase:
    """A batch-first ``torch.nn.RNN/LSTM/GRU`` with backbone ``bb``'s weights."""
    mode = bb.cell_cls.fused_mode
    if mode is None:
        raise ValueError(f"cell {bb.cell_name!r} has no torch.nn equivalent")
    kw = dict(
        input_size=bb.input_size,
        hidden_size=bb.hidden_size,
        num_layers=bb.num_layers,
        bias=bb.cells[0].bias_ih is not None,
        batch_first=True,
        dropout=bb.dropout,
        bidirectional=bb.bidirectional,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer
        if mode == "LSTM":
            module = nn.LSTM(**kw)
        elif mode == "GRU":
            module = nn.GRU(**kw)
        else:
            module = nn.RNN(nonlinearity=mode.split("_")[1].lower(), **kw)
    ref = next(bb.parameters())
    module.to(device=ref.device, dtype=ref.dtype)
    with torch.no_grad():
        for k, cell in enumerate(bb.cells):
            for pname, target in _torch_params(module, k, bb.num_directions):
                target.copy_(getattr(cell, pname))
    module.train(bb.training)
    return module


def _torch_params(module: nn.RNNBase, k: int, nd: int) -> Sequence[tuple[str, torch.Tensor]]:
    layer, d = divmod(k, nd)
    sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if module.bias else [])
    return [(n, getattr(module, n + sfx)) for n in names]


__all__ = ["backbone_from_torch", "backbone_to_torch"]
