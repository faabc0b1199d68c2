"""The optimiser half of a training step: backward, clipping, the update and the NaN check.

:class:`OptimizerStep` is a mixin of :class:`rnnbench.module.RNNModule` (it expects the
module's ``hparams``, ``_noise``, ``_rt``, ``_plain`` and ``_params`` and Lightning's
``optimizers()``); the forward half and the epoch's bookkeeping stay in ``module.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run cannot continue."""


class OptimizerStep:
    """Backward, gradient clipping and the optimiser step of the LightningModule."""

    hparams: Any
    _noise: Any
    _rt: Any
    _plain: bool | None
    _params: list[nn.Parameter] | None

    def _plain_loop(self) -> bool:
        """Whether backward and the optimiser step can skip Lightning's wrapping.

        Lightning's ``manual_backward`` and ``LightningOptimizer.step`` add DDP gradient
        sync, mixed-precision scaling and the ``on_before_backward`` /
        ``on_after_backward`` / ``on_before_optimizer_step`` hooks, for about 0.2 ms of host
        time per step, which an eager GPU step at B = 20 (launch-bound) feels. On one device
        in full precision, with no callback listening to those hooks, the step calls
        ``backward()`` and the optimiser directly (Lightning's step count still advances).
        """
        if self._plain is None:
            from lightning.pytorch.plugins.precision import Precision
            from lightning.pytorch.strategies import SingleDeviceStrategy

            trainer = self._trainer
            self._plain = bool(
                trainer is not None
                and type(trainer.strategy) is SingleDeviceStrategy
                and type(trainer.strategy.precision_plugin) is Precision
                and not self._hook_listeners()
            )
        return self._plain

    def _hook_listeners(self) -> list[str]:
        """Callbacks (or this module) that override a backward / optimiser-step hook."""
        from lightning.pytorch.utilities.model_helpers import is_overridden

        hooks = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
        objs = [*self.trainer.callbacks, self] if self._trainer is not None else [self]
        return [f"{type(o).__name__}.{h}" for o in objs for h in hooks if is_overridden(h, o)]

    def _optimize(self, loss: torch.Tensor, steps: int | None = None) -> None:
        opt = self.optimizers()
        plain = self._plain_loop()
        try:
            self._check_finite(loss)
        except NonFiniteLossError:
            self._noise.restore()  # the run stops here: leave the clean weights behind
            raise
        for group in opt.param_groups:  # zero_grad(set_to_none=True) without its wrappers
            for p in group["params"]:
                p.grad = None
        if self.hparams.loss_reduction == "sum_time" and steps:
            loss = loss * steps  # sum over the window's steps, mean over rows
        if plain:
            loss.backward()
        else:
            self.manual_backward(loss)
        # The gradient was taken at the noisy point; the update applies to the clean weights.
        self._noise.restore()
        clip = self.hparams.clip
        params = [p for p in self._trainable() if p.grad is not None]
        if clip:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, float(clip))
        else:
            grad_norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(p.grad) for p in params])
            )
        scale = self._bptt_lr_scale(steps)
        base = [g["lr"] for g in opt.param_groups]
        if scale != 1.0:
            # AWD-LSTM: a window of T steps trains with lr * T / bptt.
            for g in opt.param_groups:
                g["lr"] = g["lr"] * scale
        if plain:
            opt._on_before_step()  # Lightning's step count (global_step) advances here
            opt.optimizer.step()
            opt._on_after_step()
        else:
            opt.step()
        if scale != 1.0:
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr
        if self._log_step():
            self.log("train/grad_norm", grad_norm, on_step=True, on_epoch=False)

    def _trainable(self) -> list[nn.Parameter]:
        if self._params is None:
            self._params = [p for p in self.parameters() if p.requires_grad]
        return self._params

    def _bptt_lr_scale(self, steps: int | None) -> float:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if steps is None or dm is None or not getattr(dm, "variable_bptt", False):
            return 1.0
        return steps / dm.bptt

    def _check_finite(self, loss: torch.Tensor) -> None:
        every = self.hparams.check_finite_every
        if every is None and loss.device.type == "cuda":
            # No host sync per step: a NaN/inf loss makes the epoch's running loss sum
            # non-finite, which is read on logging steps (_after_train_step).
            return
        every = 1 if every is None else every
        if every and self.global_step % every == 0 and not bool(torch.isfinite(loss)):
            raise NonFiniteLossError(
                f"training loss became {float(loss.detach())} at step {self.global_step} "
                f"(cell {self.hparams.cell}, lr {self.hparams.lr}); lower the learning rate, "
                "clip gradients or use a gated cell"
            )

    def _raise_if_nonfinite_sum(self, where: str) -> None:
        rt = self._rt
        if rt.loss_sum is not None and not bool(torch.isfinite(rt.loss_sum)):
            raise NonFiniteLossError(
                f"training loss became NaN or inf {where} (cell {self.hparams.cell}, lr "
                f"{self.hparams.lr}); lower the learning rate, clip gradients or use a gated "
                "cell"
            )


__all__ = ["NonFiniteLossError", "OptimizerStep"]
