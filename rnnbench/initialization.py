"""``model.init``: the initialisation schemes of the papers a preset follows."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

# The options (rnnbench.config.schema.INIT_OPTIONS checks configs against the same names).
INIT_OPTIONS = ("uniform", "fan_in_normal", "embedding_std", "recurrent", "forget_bias")


def apply_init(model: Any, init: dict[str, Any], *, embedding: nn.Embedding | None = None
               ) -> None:
    """Re-initialises ``model`` (an :class:`~rnnbench.module.RNNModule`) in place.

    ``uniform: a`` draws every parameter from U(-a, a) (Zaremba et al.); ``fan_in_normal``
    draws every matrix from N(0, 1/fan_in) and zeroes the biases, ``embedding_std`` the
    embedding from N(0, std^2) ("Deep Learning from Scratch 2"); ``recurrent: orthogonal``
    makes each gate's recurrent block orthogonal; ``forget_bias`` sets the LSTM's.

    Raises:
        ValueError: An unknown option, or one the model has nothing to apply it to.
    """
    known = INIT_OPTIONS
    unknown = set(init) - set(known)
    if unknown:
        raise ValueError(
            f"unknown init option(s) {sorted(unknown)}; use {', '.join(known)}"
        )
    with torch.no_grad():
        if init.get("uniform"):
            a = float(init["uniform"])
            for p in model.parameters():
                p.uniform_(-a, a)
        if init.get("fan_in_normal"):
            # "Deep Learning from Scratch 2": every matrix ~ N(0, 1 / fan_in), biases 0.
            skip = {id(embedding.weight)} if embedding is not None else set()
            for p in model.parameters():
                if id(p) in skip:
                    continue
                if p.dim() >= 2:
                    p.normal_(0.0, 1.0 / math.sqrt(p.size(1)))
                else:
                    p.zero_()
        if init.get("embedding_std") is not None:
            if embedding is None:
                raise ValueError("init.embedding_std applies to tasks with an embedding (lm)")
            std = init["embedding_std"]
            if isinstance(std, bool) or not isinstance(std, (int, float)) or std <= 0:
                raise ValueError(
                    f"init.embedding_std must be a positive number, got {std!r} (the "
                    "book uses 0.01)"
                )
            embedding.weight.normal_(0.0, float(std))
        if init.get("recurrent") == "orthogonal":
            h = model.hparams.hidden_size
            for cell in model.backbone.cells:
                w = getattr(cell, "weight_hh", None)
                if isinstance(w, torch.Tensor) and w.dim() == 2 and w.size(1) == h:
                    for block in w.split(h, dim=0):
                        nn.init.orthogonal_(block)
        elif init.get("recurrent") not in (None, "default"):
            raise ValueError("init.recurrent must be 'orthogonal' or 'default'")
        if init.get("forget_bias") is not None:
            if model.backbone.cell_cls.fused_mode != "LSTM":
                raise ValueError("init.forget_bias applies to the lstm cell only")
            h = model.hparams.hidden_size
            for cell in model.backbone.cells:
                cell.bias_ih[h : 2 * h] = float(init["forget_bias"])
                cell.bias_hh[h : 2 * h] = 0.0


__all__ = ["INIT_OPTIONS", "apply_init"]
