"""Gradient flow through time: ||dL_T/dh_t|| against the distance T - t, per cell."""

from __future__ import annotations

import copy
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rnnbench.atomic import write_atomic

# Shapes: B rows, T steps, I input features, H units.
CSV_COLUMNS = ("cell", "hidden_size", "num_layers", "stage", "train_steps", "loss", "distance",
               "grad_norm")
STAGES = ("init", "trained")


@dataclass(frozen=True)
class FlowSettings:
    """What one gradient-flow measurement runs.

    Args:
        T: Adding-problem length (steps per sequence).
        batch: Sequences in the measured batch (and in every training batch).
        train_steps: Optimiser steps on the adding problem before the second measurement;
            0 measures at initialisation only.
        seed: Seeds the weights, the measured batch and the training batches.
    """

    T: int = 100
    batch: int = 32
    train_steps: int = 200
    seed: int = 0


def step_outputs(backbone: Any, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Runs a unidirectional backbone step by step, keeping every top-layer output ``h_t``.

    The cells' own per-step ``forward`` is called (the reference path), so each ``h_t`` is a
    node of the autograd graph that later steps and the loss read from.

    Args:
        backbone: A :class:`~rnnbench.backbones.RecurrentBackbone` (unidirectional).
        x: Inputs ``(B, T, I)``.

    Returns:
        ``(y, hs)``: the top layer's outputs ``(B, T, H)`` and the list of its ``T`` outputs,
        each ``(B, H)``, in time order.
    """
    if backbone.bidirectional:
        raise ValueError("gradient flow through time is measured on unidirectional backbones; "
                         "set model.bidirectional: false")
    inp = x  # (B, T, I)
    hs: list[torch.Tensor] = []
    for cell in backbone.cells:
        state = cell.init_state(x.size(0), x.device, x.dtype)  # each (B, H)
        hs = []
        for x_t in inp.unbind(1):  # unbind: one stacked gradient, not T zero-filled ones
            h, state = cell(x_t, state)  # (B, H)
            hs.append(h)
        inp = torch.stack(hs, dim=1)  # (B, T, H), the next layer's input
    return inp, hs


def flow(module: Any, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, list[float]]:
    """``||dL_T/dh_t||`` for every step of one batch, averaged over its rows.

    ``L_T`` is the task's loss on the prediction read at the last step. The loss is a mean
    over the ``B`` rows, so each row's gradient is scaled back by ``B``: the figures are
    per-sequence gradients and do not depend on the batch size.

    Args:
        module: An :class:`~rnnbench.module.RNNModule` with a unidirectional backbone.
        inputs: ``(B, T, I)``.
        targets: What the task's loss compares the prediction with.

    Returns:
        ``(loss, norms)``: the batch loss and ``norms[d]``, the mean over rows of
        ``||dL_T/dh_{T-1-d}||_2`` for distance ``d = 0 .. T - 1``.
    """
    was_training = module.training
    module.eval()  # no dropout between layers: the gradient of the function itself
    try:
        x = module.task.encode(inputs)  # (B, T, I)
        y, hs = step_outputs(module.backbone, x)  # (B, T, H), T x (B, H)
        out = module.task(y, None, None)
        loss, _ = module.task.loss(out, targets, None)
        grads = torch.autograd.grad(loss, hs, allow_unused=True)  # T x (B, H)
    finally:
        module.train(was_training)
    batch = inputs.size(0)
    norms = []
    for g in reversed(grads):  # distance 0 is the last step
        if g is None:  # a step the loss cannot see
            norms.append(0.0)
        else:
            norms.append(float((g * batch).norm(dim=1).mean()))  # per-row norm, (B,) -> ()
    return float(loss.detach()), norms


def build_model(cfg: dict[str, Any], cell: str) -> Any:
    """The config's model with its cell replaced by ``cell`` (``param_budget`` re-sizes it)."""
    from rnnbench.data.catalog import build_data
    from rnnbench.train import build_module

    cfg = copy.deepcopy(cfg)
    cfg["model"]["cell"] = cell
    torch.manual_seed(int(cfg.get("seed", 0)))
    bundle = build_data(cfg["data"], seed=int(cfg.get("seed", 0)))
    if bundle.task != "regression":
        raise ValueError(f"gradient flow runs on the adding problem; the config's data set "
                         f"{cfg['data'].get('dataset')!r} is a {bundle.task!r} task; use "
                         "data: adding (e.g. configs/experiment/gradient_flow.yaml)")
    return build_module(cfg, bundle)


def _train(module: Any, settings: FlowSettings, optim: dict[str, Any]) -> None:
    """``train_steps`` Adam steps on fresh adding-problem batches, with the config's clip."""
    from rnnbench.data.datasets.synthetic import adding_problem

    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=float(optim.get("lr", 1e-3)))
    clip = optim.get("clip")
    module.train()
    for step in range(settings.train_steps):
        x, y = adding_problem(settings.batch, settings.T, seed=settings.seed + 1 + step)
        out, _ = module(x)  # (B, 1)
        loss, _ = module.task.loss(out, y[:, None], None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(params, float(clip))
        opt.step()


def measure_cell(cfg: dict[str, Any], cell: str, settings: FlowSettings) -> list[dict]:
    """Gradient flow of one cell at initialisation and after ``train_steps`` steps.

    Args:
        cfg: A composed run config (``rnnbench.config.load_config``) on the adding problem.
        cell: Registry name that replaces ``model.cell``.
        settings: Length, batch, training steps and seed.

    Returns:
        One row (``CSV_COLUMNS``) per stage and distance.
    """
    from rnnbench.data.datasets.synthetic import adding_problem

    module = build_model(cfg, cell)
    # The measured batch is drawn apart from the training batches (seed offset 10**6).
    x, y = adding_problem(settings.batch, settings.T, seed=settings.seed + 10**6)
    stages = [("init", 0)] + ([("trained", settings.train_steps)] if settings.train_steps
                              else [])
    rows = []
    for stage, steps in stages:
        if steps:
            _train(module, settings, cfg["optim"])
        loss, norms = flow(module, x, y[:, None])
        rows += [{"cell": cell, "hidden_size": module.backbone.hidden_size,
                  "num_layers": module.backbone.num_layers, "stage": stage,
                  "train_steps": steps, "loss": loss, "distance": d, "grad_norm": n}
                 for d, n in enumerate(norms)]
    return rows


def gradient_flow(cfg: dict[str, Any], cells: Iterable[str], settings: FlowSettings,
                  progress: bool = True) -> list[dict]:
    """:func:`measure_cell` for every cell in ``cells``, with a Rich progress bar."""
    from rich.progress import Progress

    cells = list(cells)
    rows: list[dict] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("gradient flow", total=len(cells))
        for cell in cells:
            bar.update(task, description=f"gradient flow: {cell}")
            rows += measure_cell(cfg, cell, settings)
            bar.advance(task)
    return rows


def write_csv(rows: Sequence[dict], path: str | Path) -> None:
    """Writes the rows (``CSV_COLUMNS``) to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write)


def plot(rows: Sequence[dict], path: str | Path, title: str = "") -> None:
    """One panel per stage: ``||dL_T/dh_t||`` against ``T - t`` per cell, log y axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if any(r["stage"] == s for r in rows)]
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    fig, axes = plt.subplots(1, len(stages), figsize=(6.5 * len(stages), 4.8), squeeze=False,
                             sharey=True)
    for ax, stage in zip(axes[0], stages):
        for cell in cells:
            pts = [(r["distance"], r["grad_norm"]) for r in rows
                   if r["cell"] == cell and r["stage"] == stage and r["grad_norm"] > 0
                   and math.isfinite(r["grad_norm"])]
            if pts:
                ax.plot(*zip(*pts), label=cell, lw=1.4)
        steps = next(r["train_steps"] for r in rows if r["stage"] == stage)
        ax.set_title("at initialisation" if stage == "init"
                     else f"after {steps} training steps")
        ax.set_yscale("log")
        ax.set_xlabel("distance T - t (steps back from the loss)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("mean ||dL_T / dh_t||")
    axes[0][-1].legend(fontsize=8, ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")

    try:
        write_atomic(path, write)
    finally:
        plt.close(fig)
