"""The one LightningModule: any backbone + any task, stateful truncated BPTT.

One class whose steps, evaluation and checkpoint hooks share the carried state and the epoch
sums; what stands apart lives beside it: ``optim_step.py`` backward, clipping and the update
(a mixin), ``graph_policy.py`` when to capture a CUDA graph (a mixin), ``optim.py`` the
optimiser tables, ``initialization.py`` ``model.init``, ``regularizers.py`` weight noise.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
import types
from typing import Any

import lightning as L
import torch
import torchmetrics
from torch import nn

from rnnbench.backbones import RecurrentBackbone
from rnnbench.data.batch import Batch, as_batch
from rnnbench.graph_policy import GraphedStepPolicy
from rnnbench.graphs import StepGraph
from rnnbench.initialization import apply_init
from rnnbench.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from rnnbench.optim_step import NonFiniteLossError, OptimizerStep  # noqa: F401 (re-exported)
from rnnbench.regularizers import WeightNoise
from rnnbench.tasks import Task, build_task

_log = logging.getLogger(__name__)
State = tuple[torch.Tensor, ...]
CUDA_GRAPHS = ("auto", True, False, "emulate")


def detach_state(state: State | None) -> State | None:
    """Cuts the autograd graph behind a carried hidden state (values unchanged)."""
    return None if state is None else tuple(s.detach() for s in state)


class RNNModule(OptimizerStep, GraphedStepPolicy, L.LightningModule):
    """Backbone by cell name plus a task head, trained with stateful truncated BPTT.

    The module keeps one hidden state per stage (train / val / test). On a streaming task
    the state is carried from batch to batch, detached after every step (gradients stop at
    the window; the forward pass never breaks) and reset at the start of every epoch and
    evaluation pass, and for single rows where the data marks a document boundary. Sequence
    tasks start every batch from zeros; with ``tbptt`` set, long sequences are cut into
    windows of that length with the state carried between the windows of the same batch.

    Args:
        task: Task name (``lm``, ``music``, ``regression``, ``anomaly``, ``classification``,
            ``copy``).
        task_kwargs: Options of the task (``vocab_size``, ``input_dim``...).
        cell: Registered cell name.
        hidden_size: Units per layer and direction.
        num_layers: Stacked layers.
        bidirectional: Refused for causal (next-step) tasks.
        dropout: Dropout between recurrent layers.
        impl: Backbone path (``auto``, ``fused``, ``reference``, ``compiled``).
        padding: How the fused path runs padded batches: ``mask`` (the default: the padded
            tensor, outputs past each length zeroed, no packing) or ``pack``
            (``pack_padded_sequence``, the reference); see ``RecurrentBackbone``.
        cell_kwargs: Extra cell options.
        optimizer: ``sgd``, ``adam``, ``adamw`` or ``rmsprop``.
        lr: Learning rate.
        momentum: SGD/RMSprop momentum.
        weight_decay: L2 penalty (decoupled for AdamW).
        clip: Max global gradient norm (``None`` or 0: no clipping).
        loss_reduction: ``"mean"`` (the default: gradients of the loss averaged over every
            token/frame) or ``"sum_time"`` (summed over the window's time steps, averaged over
            the batch, as Zaremba et al.'s and TensorFlow's PTB code do: with SGD, lr 1 and
            clip 5 under ``sum_time`` equal lr ``T`` and clip ``5 / T`` under ``mean``, which
            is why "Deep Learning from Scratch 2" uses lr 20, clip 0.25). The logged loss is
            always the mean.
        scheduler: ``None`` or a dict with ``name`` in ``decay_after`` (Zaremba et al.: keep
            the rate for ``start_epoch`` epochs, then multiply by ``factor`` every epoch),
            ``plateau`` (divide when the validation metric does not improve: "Deep Learning
            from Scratch 2" divides by 4), ``cosine``, ``step`` (``step_size``, ``factor``).
        init: ``None`` or a dict: ``uniform: a`` (every parameter ~ U(-a, a), Zaremba),
            ``fan_in_normal: true`` (every matrix but the embedding ~ N(0, 1/fan_in), biases
            zero, as "Deep Learning from Scratch 2"), ``embedding_std: s`` (embedding ~
            N(0, s^2); the book uses 0.01),
            ``recurrent: orthogonal`` (each gate block of the recurrent matrices),
            ``forget_bias: b`` (LSTM forget-gate bias, Jozefowicz et al. 2015).
        tbptt: Window length for sequence tasks (``None``: full BPTT).
        weight_noise: Standard deviation of Gaussian noise added to every trainable weight
            for each update's forward and backward and removed before the optimiser step
            (Graves 2011; Chung et al. 2014 use 0.075); 0, the default: off. Evaluation
            always sees the clean weights (:class:`rnnbench.regularizers.WeightNoise`).
        check_finite_every: Check the loss for NaN/inf every this many steps (0: never;
            ``None``, the default: every step on CPU; on CUDA a device-side flag is read
            on logging steps only, so training never waits for the GPU in between).
        cuda_graphs: Whole-step CUDA graphs for streaming (TBPTT) training: ``"auto"`` (the
            default: on when training runs on one CUDA device in float32), ``True`` (the
            same, and say why whenever they cannot be used), ``False`` (always eager) or
            ``"emulate"`` (the graphed path's bookkeeping without capturing, for tests on
            CPU). Windows that cannot be replayed (another shape, such as the short last
            window; document-boundary resets; AWD-LSTM's variable length) run eagerly, said
            once in the log. See :mod:`rnnbench.graphs`.
    """

    def __init__(
        self,
        task: str = "lm",
        task_kwargs: dict[str, Any] | None = None,
        cell: str = "lstm",
        hidden_size: int = 200,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        impl: str = "auto",
        padding: str = "mask",
        cell_kwargs: dict[str, Any] | None = None,
        optimizer: str = "sgd",
        lr: float = 1.0,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        clip: float | None = 5.0,
        loss_reduction: str = "mean",
        scheduler: dict[str, Any] | None = None,
        init: dict[str, Any] | None = None,
        tbptt: int | None = None,
        weight_noise: float = 0.0,
        check_finite_every: int | None = None,
        cuda_graphs: bool | str = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {OPTIMIZERS}")
        sched = (scheduler or {}).get("name", "none")
        if sched not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {sched!r}; choose one of {SCHEDULERS}")
        if loss_reduction not in ("mean", "sum_time"):
            raise ValueError(
                f"loss_reduction must be 'mean' or 'sum_time', got {loss_reduction!r}"
            )
        if tbptt is not None and int(tbptt) <= 0:
            raise ValueError(f"tbptt must be a positive integer or null, got {tbptt!r}")
        if isinstance(weight_noise, bool) or not float(weight_noise) >= 0.0 or not math.isfinite(
                float(weight_noise)):
            raise ValueError(f"weight_noise must be a finite number >= 0, got {weight_noise!r}")
        if cuda_graphs not in CUDA_GRAPHS:
            raise ValueError(
                f"cuda_graphs must be one of 'auto', true, false, 'emulate'; got {cuda_graphs!r}"
            )
        task_kwargs = dict(task_kwargs or {})
        if task == "lm":
            task_kwargs.setdefault("embedding_size", hidden_size)
        self.task: Task = build_task(task, **task_kwargs)
        if self.task.causal and bidirectional:
            raise ValueError(
                f"task {task!r} predicts the next step, so a bidirectional backbone would read "
                "the answer from the future half of the sequence; use bidirectional: false "
                "(bidirectional backbones suit classification, regression and anomaly tasks)"
            )
        self.backbone = RecurrentBackbone(
            cell,
            self.task.input_size,
            hidden_size,
            num_layers=num_layers,
            bidirectional=bidirectional,
            dropout=dropout,
            impl=impl,
            padding=padding,
            **(cell_kwargs or {}),
        )
        self.task.build(self.backbone.output_size, bidirectional)
        self._apply_init(init or {})
        self._states: dict[str, State | None] = {"train": None, "val": None, "test": None}
        # nan_strategy="disable": no host sync per update; a NaN loss makes a NaN mean.
        self._loss_means = nn.ModuleDict({
            s: torchmetrics.MeanMetric(nan_strategy="disable")
            for s in ("train_", "val_", "test_")
        })
        # Per-step bookkeeping lives on a plain object: assigning attributes of an nn.Module
        # goes through its __setattr__ (tens of microseconds per step at B = 20 on a GPU).
        self._rt = types.SimpleNamespace(t0=None, units=0, loss_sum=None, units_sum=0.0,
                                         last_loss=None)
        self._graph: StepGraph | None = None
        self._graph_off: str | None = None  # why the graphed path is off for this run
        self._said: set[str] = set()
        self._plain: bool | None = None
        self._params: list[nn.Parameter] | None = None
        self._noise = WeightNoise(float(weight_noise))

    # ------------------------------------------------------------------ setup
    def _apply_init(self, init: dict[str, Any]) -> None:
        apply_init(self, init, embedding=getattr(self.task, "embedding", None))

    def num_parameters(self) -> int:
        """Trainable parameters of the whole model (backbone, embedding, head)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        # Adam-type optimisers keep their step count on the device when they may be captured.
        opt = build_optimizer(hp.optimizer, params, lr=hp.lr, momentum=hp.momentum,
                              weight_decay=hp.weight_decay, capturable=self._wants_graphs())
        sched = build_scheduler(opt, hp.scheduler, mode=self.task.mode,
                                max_epochs=self.trainer.max_epochs if self._trainer else None)
        if sched is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        inputs: torch.Tensor,
        state: State | None = None,
        *,
        mask: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        final_state: bool = True,
    ) -> tuple[torch.Tensor, State]:
        """Inputs -> task outputs (logits / predictions) and the final state (see
        :meth:`RecurrentBackbone.forward` for ``final_state=False``)."""
        lengths = mask.sum(1) if mask is not None else None  # (B,) valid steps per row
        x = self.task.encode(inputs)  # (B, T, I): embeddings, frames or features
        y, state = self.backbone(  # y (B, T, H * D)
            x, state, lengths=lengths, reset=reset, final_state=final_state)
        return self.task(y, mask, lengths), state  # logits / predictions per task

    def _carried_state(self, stage: str, batch_idx: int, batch_size: int) -> State | None:
        state = self._states[stage]
        if batch_idx == 0 or state is None or state[0].size(1) != batch_size:
            return None  # zeros: a new epoch / evaluation pass starts every stream afresh
        return tuple(s.to(self.device) for s in state)

    def _step(self, batch: Batch, batch_idx: int, stage: str):
        batch = as_batch(batch)
        inputs, targets, mask, extras = self.task.unpack(batch)  # (B, T, ...), mask (B, T)
        state = None  # tuple of (L * D, B, H)
        if self.task.streaming:
            state = self._carried_state(stage, batch_idx, inputs.size(0))
        out, state = self(  # reset (B, T) or None; a state nothing carries is not gathered
            inputs, state, mask=mask, reset=batch.reset, final_state=self.task.streaming)
        loss, count = self.task.loss(out, targets, mask)  # scalar mean, number of units
        if self.task.streaming:
            self._states[stage] = detach_state(state)
        return loss, count, out, targets, mask, extras

    # ------------------------------------------------------------------ training
    def on_train_epoch_start(self) -> None:
        rt = self._rt
        rt.t0, rt.units = None, 0
        rt.loss_sum, rt.units_sum = None, 0.0  # this epoch's sum of loss * units, and units

    def on_train_start(self) -> None:
        # Resumed mid-epoch (Lightning does not call on_train_epoch_start then), the epoch's
        # sums so far came with the checkpoint (on the CPU): same epoch means as a run
        # never stopped.
        rt = self._rt
        if torch.is_tensor(rt.loss_sum):
            rt.loss_sum = rt.loss_sum.to(self.device)
        if torch.is_tensor(rt.units_sum):
            rt.units_sum = rt.units_sum.to(self.device)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        batch = as_batch(batch)
        if self.hparams.tbptt and not self.task.streaming:
            return self._training_step_chunked(batch, batch_idx)
        graph = self._graph_for(batch)
        if graph is not None:
            return self._training_step_graphed(graph, batch, batch_idx)
        self._noise.perturb(self._trainable())
        loss, count, out, targets, mask, extras = self._step(batch, batch_idx, "train")
        self._optimize(loss, steps=targets.shape[1] if self.task.streaming else None)
        self._after_train_step(loss, count, out, targets, mask, extras)
        return loss.detach()

    def _log_step(self) -> bool:
        """Whether Lightning writes step metrics after this step (host syncs are fine then)."""
        trainer = self._trainer
        if trainer is None:
            return True
        return bool(getattr(trainer._logger_connector, "should_update_logs", True))

    def _training_step_chunked(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """TBPTT inside long sequences: windows of one padded batch, state carried between."""
        inputs, targets, mask, extras = self.task.unpack(batch)
        reset = batch.reset
        k = int(self.hparams.tbptt)
        state, total, units, last = None, 0.0, 0.0, None
        lengths = mask.sum(1) if mask is not None else None
        for t0 in range(0, inputs.size(1), k):
            m = mask[:, t0 : t0 + k] if mask is not None else None
            if m is not None and not bool(m.any()):
                break
            seg_len = None if lengths is None else (lengths - t0).clamp(0, k)
            seg_reset = None if reset is None else reset[:, t0 : t0 + k]  # (B, k)
            self._noise.perturb(self._trainable())  # fresh noise for each window's update
            y, state = self.backbone(
                self.task.encode(inputs[:, t0 : t0 + k]), state, lengths=seg_len, reset=seg_reset
            )
            out = self.task(y, m, seg_len)
            loss, count = self.task.loss(out, targets[:, t0 : t0 + k], m)
            self._optimize(loss)
            state = detach_state(state)
            total, units, last = total + loss.detach() * count, units + count, loss
        mean = total / max(float(units), 1.0)
        self._after_train_step(mean, units, None, targets, mask, extras)
        return last.detach()

    def _after_train_step(self, loss, count, out, targets, mask, extras) -> None:
        # Lightning's self.log costs about a millisecond of host time per call, as much as a
        # whole replayed step: accumulate the epoch mean on the device, log on logging steps.
        bs = targets.shape[0]
        rt = self._rt
        # A device count stays on the device; a Python one costs no host-to-device copy.
        count = count.float() if isinstance(count, torch.Tensor) else float(count)
        weighted = loss.detach().float() * count
        rt.units_sum = rt.units_sum + count
        rt.loss_sum = weighted if rt.loss_sum is None else rt.loss_sum + weighted
        rt.last_loss = loss.detach()  # shown by rnnbench.callbacks.LossProgressBar
        log_now = self._log_step()
        if log_now and (self.device.type == "cuda" or self._graph is not None):
            # No per-step check there: a NaN/inf loss makes the running sum non-finite.
            self._raise_if_nonfinite_sum(f"at or before step {self.global_step}")
        if log_now:
            # Not prog_bar=True: Lightning turns progress-bar metrics into Python numbers at
            # the end of every batch, a host sync per step (see LossProgressBar).
            self.log("train/loss", loss, on_step=True, on_epoch=False, batch_size=bs)
            opt = self.optimizers()
            self.log("train/lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False,
                     batch_size=bs)
        if out is not None:
            self.task.update_metrics("train", out, targets, mask, extras)
        now = time.perf_counter()
        if self._rt.t0 is None:
            self._rt.t0 = now  # the first step includes warm-up: time from its end
        else:
            self._rt.units += self.task.units(targets, mask)
            if now > self._rt.t0 and log_now:
                self.log("train/tokens_per_s", self._rt.units / (now - self._rt.t0), on_step=True,
                         on_epoch=False, batch_size=bs)

    def on_train_epoch_end(self) -> None:
        self._raise_if_nonfinite_sum(f"in epoch {self.current_epoch}")
        rt = self._rt
        if rt.loss_sum is not None:
            units = rt.units_sum
            units = units.clamp(min=1.0) if isinstance(units, torch.Tensor) else max(units, 1.0)
            self.log("train/loss_epoch", rt.loss_sum / units, on_epoch=True)
            rt.loss_sum, rt.units_sum = None, 0.0
        extra = self.task.compute_metrics("train")
        for k, v in extra.items():
            self.log(f"train/{k}", v)
        self.task.reset_metrics("train")
        sch = self.lr_schedulers()
        if sch is None:
            return
        if isinstance(sch, torch.optim.lr_scheduler.ReduceLROnPlateau):
            metric = self.trainer.callback_metrics.get(f"val/{self.task.monitor}")
            if metric is not None:
                sch.step(metric)
        else:
            sch.step()

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: Batch, batch_idx: int, stage: str) -> None:
        self._noise.restore()  # evaluation sees the clean weights (a no-op after a step)
        loss, count, out, targets, mask, extras = self._step(batch, batch_idx, stage)
        self._loss_means[stage + "_"].update(loss.detach(), count)
        self.task.update_metrics(stage, out, targets, mask, extras)

    def _eval_epoch_end(self, stage: str) -> None:
        meter = self._loss_means[stage + "_"]
        if meter.update_count == 0:
            return
        mean = meter.compute()
        metrics = {**self.task.summarize(mean), **self.task.compute_metrics(stage)}
        for k, v in metrics.items():
            self.log(f"{stage}/{k}", v, prog_bar=k == self.task.monitor, sync_dist=False)
        meter.reset()
        self.task.reset_metrics(stage)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The training stream's hidden state: a resumed run continues the same streams.
        # The epoch's running sums (loss, units, the task's training metrics) too: a run
        # resumed mid-epoch reports the same epoch means as one never stopped.
        state = self._states["train"]
        rt = self._rt
        checkpoint["rnnbench"] = {
            "train_state": None if state is None else [s.detach().cpu() for s in state],
            "weight_noise": self._noise.state_dict(),
            "epoch_sums": {
                "loss_sum": None if rt.loss_sum is None else rt.loss_sum.detach().cpu(),
                "units_sum": (rt.units_sum.detach().cpu() if torch.is_tensor(rt.units_sum)
                              else float(rt.units_sum)),
                "metrics": {name: metric_state(m) for name, m in self._train_metrics()},
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("rnnbench", {}).get("train_state")
        self._states["train"] = None if saved is None else tuple(saved)
        if checkpoint.get("rnnbench", {}).get("weight_noise") is not None:
            self._noise.load_state_dict(checkpoint["rnnbench"]["weight_noise"])
        sums = checkpoint.get("rnnbench", {}).get("epoch_sums")
        if sums is not None:
            self._rt.loss_sum, self._rt.units_sum = sums["loss_sum"], sums["units_sum"]
            states = sums.get("metrics", {})
            for name, metric in self._train_metrics():
                if name in states:
                    load_metric_state(metric, states[name])

    def _train_metrics(self) -> list[tuple[str, torchmetrics.Metric]]:
        """The task's training-stage torchmetrics (named ``train_`` in its ModuleDicts)."""
        return [(name, m) for name, m in self.task.named_modules()
                if isinstance(m, torchmetrics.Metric) and name.rsplit(".", 1)[-1] == "train_"]

    @property
    def monitor(self) -> str:
        """The metric that studies and checkpoints track, e.g. ``val/ppl``."""
        return f"val/{self.task.monitor}"

    @property
    def monitor_mode(self) -> str:
        return self.task.mode


def metric_state(metric: torchmetrics.Metric) -> dict[str, Any]:
    """A torchmetrics metric's accumulated state as plain tensors (for a checkpoint)."""
    state = {
        k: [t.detach().cpu() for t in v] if isinstance(v, list) else v.detach().cpu()
        for k, v in metric.metric_state.items()
    }
    return {"state": state, "update_count": int(metric.update_count)}


def load_metric_state(metric: torchmetrics.Metric, saved: dict[str, Any]) -> None:
    """Puts back what :func:`metric_state` saved."""
    metric.reset()
    device = metric.device
    for k, v in saved["state"].items():
        setattr(metric, k, [t.to(device) for t in v] if isinstance(v, list) else v.to(device))
    # torchmetrics has no public setter for the update count, which compute() checks (and
    # the tasks test) to tell an empty metric; tests/test_checkpointing.py pins it.
    metric._update_count = int(saved["update_count"])


def perplexity(nll: float) -> float:
    """exp(nll), guarded against overflow."""
    return math.exp(min(nll, 700.0))


# Lightning inspects training_step's signature on every batch (to decide whether to pass
# batch_idx); a stored signature makes that a lookup instead of a parse of the function.
RNNModule.training_step.__signature__ = inspect.signature(RNNModule.training_step)
