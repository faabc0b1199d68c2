"""How many population members fit: the memory one member needs, and the memory there is.

Used by ``study.population: auto`` (:mod:`rnnbench.studies.population`); re-exported by
:mod:`rnnbench.population`, where these lived first.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnbench.backbones.population import PopulationBackbone
from rnnbench.data.batch import as_batch


def member_bytes(cfg: dict[str, Any], max_batches: int = 2000) -> int:
    """Bytes one population member of ``cfg`` needs on its device, measured, not guessed.

    Its parameters with their gradients and two optimiser buffers (4 copies), plus the
    bytes autograd saves for backward when a population of one runs the batched path on the
    largest of the first ``max_batches`` training batches (a population of K saves K times
    that). Builds the member's data and model once, on the CPU.
    """
    from rnnbench.train import build

    module, dm, _ = build(cfg)
    dm.setup("fit")
    largest = None
    for i, raw in enumerate(dm.train_dataloader()):
        b = as_batch(raw)
        if largest is None or b.inputs.numel() > largest.inputs.numel():
            largest = b
        if i + 1 >= max_batches:
            break
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    if largest is None:
        return 4 * params
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    module.train()
    inputs, targets, mask, _ = module.task.unpack(largest)
    lengths = None if mask is None else mask.sum(-1)
    pop = PopulationBackbone([module.backbone], path="auto")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, _ = pop(module.task.encode(inputs)[None],
                   lengths=None if lengths is None else lengths[None])  # (1, B, T, H * D)
        module.task.loss(module.task(y[0], mask, lengths), targets, mask)
    return 4 * params + saved[0]


def memory_budget(device: torch.device, fraction: float = 0.5) -> int:
    """``fraction`` of the memory free on ``device`` now (CUDA: the driver's free bytes; CPU:
    MemAvailable of /proc/meminfo, else 8 GiB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * fraction)
    except OSError:
        pass
    return int(8 * 2**30 * fraction)


__all__ = ["member_bytes", "memory_budget"]
