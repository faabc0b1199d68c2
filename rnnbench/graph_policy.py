"""When a training step is replayed as a CUDA graph, and how: the policy half of graphs.py.

:class:`GraphedStepPolicy` is a mixin of :class:`rnnbench.module.RNNModule`. It decides once
per run whether whole-step graphs may be used (one CUDA device, full precision, a capturable
optimiser, no callback that must run inside the step) and, for every window, whether that
window can replay the captured graph or must run eagerly (another shape, document resets, a
padding mask, AWD-LSTM's variable length). The capture itself is :class:`StepGraph`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from rnnbench.data.batch import Batch
from rnnbench.graphs import StepGraph, cuda_graphs_available

State = tuple[torch.Tensor, ...]
_log = logging.getLogger("rnnbench")


class GraphedStepPolicy:
    """The CUDA-graph decisions of the LightningModule (expects RNNModule's attributes)."""

    _graph: StepGraph | None
    _graph_off: str | None
    _said: set[str]
    hparams: Any
    task: Any

    def _wants_graphs(self) -> bool:
        """Whether this run may capture steps on CUDA (decided once the device is known)."""
        mode = self.hparams.cuda_graphs
        return (mode in ("auto", True) and self.task.streaming
                and cuda_graphs_available(self.device) is None)

    def _say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            if self._trainer is None or self.trainer.global_rank == 0:
                _log.info(f"rnnbench: {message}")

    def _graphs_off_reason(self) -> str | None:
        mode = self.hparams.cuda_graphs
        if mode is False:
            return "turned off (cuda_graphs: false)"
        if not self.task.streaming:
            return f"task {self.task.name!r} is not a streaming (TBPTT) task"
        if float(getattr(self.hparams, "weight_noise", 0.0) or 0.0) > 0.0:
            # A captured graph replays fixed kernels: fresh noise per step and the restore
            # before the update would need their own capture; the eager step does both.
            return "weight_noise > 0 (the noisy forward/backward runs eagerly)"
        if mode == "emulate":
            return None
        reason = cuda_graphs_available(self.device)
        if reason is not None:
            return reason
        trainer = self._trainer
        if trainer is not None:
            if trainer.world_size > 1:
                return "training runs on several devices (DDP steps run eagerly)"
            precision = str(getattr(trainer, "precision", "32-true"))
            if precision not in ("32-true", "32", "64-true", "64"):
                return f"precision {precision!r} (graphs are captured in full precision only)"
            listeners = self._hook_listeners()
            if listeners:
                return (f"{', '.join(listeners)} must run on every step, which a replayed "
                        "graph cannot call")
        opt = self.optimizers().optimizer
        if any(g.get("capturable") is False for g in opt.param_groups) and not isinstance(
            opt, torch.optim.SGD
        ):
            return f"the optimiser {type(opt).__name__} was not built capturable"
        return None

    def _graph_for(self, batch: Batch) -> StepGraph | None:
        """The step graph to train this batch with, or ``None`` to run it eagerly."""
        if self._graph_off is None and self._graph is None:
            reason = self._graphs_off_reason()
            if reason is not None:
                self._graph_off = reason
                if self.hparams.cuda_graphs is True or self.device.type == "cuda":
                    self._say_once("off", f"CUDA graphs off for this run: {reason}")
            else:
                self._graph = self._make_graph()
                self._say_once("on", "training steps run as CUDA graphs (after 3 eager "
                               "warm-up steps); set optim.cuda_graphs=false to turn them off")
        graph = self._graph
        if graph is None:
            return None
        # The captured body reads inputs and targets only: a window with any other field
        # (reset flags, a padding mask) must take the eager path, which honours them.
        if batch.reset is not None:
            self._say_once("reset", "windows with document-boundary resets run eagerly")
            return None
        if batch.mask is not None:
            self._say_once("mask", "windows with a padding mask run eagerly")
            return None
        if self._bptt_lr_scale(batch.inputs.size(1)) != 1.0:
            self._say_once("vbptt", "variable-length windows (AWD-LSTM bptt) run eagerly")
            return None
        if not graph.accepts((batch.inputs, batch.targets)):
            self._say_once(
                "shape", f"windows of shape {tuple(batch.inputs.shape)} differ from the captured "
                f"{graph._key[0][0]} and run eagerly (e.g. the short last window of an epoch)",
            )
            return None
        return graph

    def _make_graph(self) -> StepGraph:
        sum_time = self.hparams.loss_reduction == "sum_time"

        def body(inputs: tuple[torch.Tensor, ...], state: State):
            x, y = inputs
            out, new_state = self(x, state)
            loss, _ = self.task.loss(out, y, None)
            back = loss * y.shape[1] if sum_time else loss
            return loss, back, new_state

        params = [p for p in self.parameters() if p.requires_grad]
        return StepGraph(body, params, self.optimizers().optimizer, self.hparams.clip,
                         emulate=self.hparams.cuda_graphs == "emulate")

    def _training_step_graphed(self, graph: StepGraph, batch: Batch, batch_idx: int):
        inputs, targets = batch.inputs, batch.targets
        carried = self._carried_state("train", batch_idx, inputs.size(0))
        lopt = self.optimizers()
        # Lightning counts optimiser steps (global_step) around LightningOptimizer.step; the
        # replayed graph steps the wrapped optimiser itself, so it calls the same hooks.
        lopt._on_before_step()
        loss, grad_norm, state = graph.step(
            (inputs, targets), carried, lambda: self.backbone.init_state(inputs.size(0))
        )
        lopt._on_after_step()
        self._states["train"] = state
        if self._log_step():
            self.log("train/grad_norm", grad_norm, on_step=True, on_epoch=False)
        count = targets.numel()
        self._after_train_step(loss, count, None, targets, None, {})
        return loss

