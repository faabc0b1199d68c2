"""Parameter budgets: the hidden size that brings a variant closest to N parameters."""

from __future__ import annotations

from typing import Any

import torch


def count_parameters(task: str, task_kwargs: dict[str, Any], model: dict[str, Any]) -> int:
    """Trainable parameters of the model a config describes (built on the meta device)."""
    from rnnbench.module import RNNModule

    with torch.device("meta"):
        module = RNNModule(task=task, task_kwargs=dict(task_kwargs), **model)
    return module.num_parameters()


def hidden_for_budget(
    budget: int, task: str, task_kwargs: dict[str, Any], model: dict[str, Any], max_hidden=8192
) -> int:
    """The hidden size whose total parameter count is closest to ``budget``.

    Counts the whole model (input embedding or projection, backbone, output head), as
    Chung et al. (2014) matched about 20K parameters across tanh (100 units), GRU (46) and
    LSTM (36) on 88-key piano rolls. Ties go to the smaller model.

    Raises:
        ValueError: Even one hidden unit exceeds the budget.
    """
    model = {k: v for k, v in model.items() if k not in ("hidden_size", "param_budget")}

    def count(h: int) -> int:
        kw = dict(task_kwargs)
        if task == "lm" and not kw.get("embedding_size"):
            kw["embedding_size"] = h
        return count_parameters(task, kw, {**model, "hidden_size": h})

    if count(1) > budget:
        raise ValueError(
            f"param_budget={budget} is below the smallest {model.get('cell')} model "
            f"({count(1)} parameters at hidden_size=1); raise the budget"
        )
    lo, hi = 1, 2
    while hi < max_hidden and count(hi) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # count is increasing in h: bisect for the last h under budget
        mid = (lo + hi) // 2
        if count(mid) <= budget:
            lo = mid
        else:
            hi = mid
    return lo if budget - count(lo) <= count(hi) - budget else hi
