"""Training-time regularisers of the module layer: weight noise (Graves 2011, Chung 2014)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

# Keeps the noise stream apart from the one that draws the initial weights.
_SEED_OFFSET = 0x5EED_0A75


class WeightNoise:
    """Gaussian noise on the weights for one update's forward and backward, then removed.

    ``perturb(params)`` keeps a clean copy of every parameter and adds N(0, std^2) noise in
    place; the forward and backward of the step then run at the noisy point. ``restore()``
    copies the clean values back before the optimiser steps, so the gradient taken at the
    noisy point is applied to the clean weights (the weights themselves never drift by the
    noise). Evaluation never calls ``perturb``: validation and test see the clean weights.

    The noise comes from a generator of its own, seeded on first use from
    ``torch.initial_seed()`` (the run seed, set by ``seed_everything``), so a run is
    repeatable under its seed and the stream does not shift the draws of data order or
    dropout. Its state is saved with checkpoints (:meth:`state_dict`).

    Args:
        std: Standard deviation of the noise; 0 turns the regulariser off.
    """

    def __init__(self, std: float = 0.0) -> None:
        self.std = float(std)
        self._clean: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._gen: torch.Generator | None = None
        self._saved_state: torch.Tensor | None = None
        self._seed: int | None = None

    def bind_seed(self, seed: int) -> None:
        """Seeds the stream from ``seed`` instead of ``torch.initial_seed()`` at first use
        (a population builds all its members before any of them steps)."""
        self._seed = int(seed)

    @property
    def enabled(self) -> bool:
        return self.std > 0.0

    @property
    def active(self) -> bool:
        """Whether the weights hold noise now (between ``perturb`` and ``restore``)."""
        return bool(self._clean)

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            gen = torch.Generator(device=device)
            if self._saved_state is not None and device.type == "cpu":
                gen.set_state(self._saved_state)
            else:
                base = torch.initial_seed() if self._seed is None else self._seed
                gen.manual_seed((base + _SEED_OFFSET) % 2**63)
            self._gen = gen
        return self._gen

    @torch.no_grad()
    def perturb(self, params: Sequence[nn.Parameter]) -> None:
        """Adds fresh noise to every parameter in ``params`` (a no-op when off)."""
        if not self.enabled:
            return
        self.restore()  # never stack noise on noise
        for p in params:
            gen = self._generator(p.device)
            noise = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
            self._clean.append((p, p.detach().clone()))
            p.add_(noise, alpha=self.std)

    @torch.no_grad()
    def restore(self) -> None:
        """Puts the clean weights back (a no-op when none are held)."""
        for p, clean in self._clean:
            p.copy_(clean)
        self._clean = []

    def state_dict(self) -> dict[str, Any]:
        """The noise stream's position, for a checkpoint (CPU generators only)."""
        gen = self._gen
        state = gen.get_state() if gen is not None and gen.device.type == "cpu" else None
        return {"std": self.std, "generator": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continues the noise stream a checkpoint saved."""
        self._saved_state = state.get("generator")
        self._gen = None


__all__ = ["WeightNoise"]
