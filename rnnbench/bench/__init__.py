"""Throughput benchmark: tokens/s, ms/step and peak memory of PTB-shaped language-model steps.

Names load on first use, so ``import rnnbench.bench`` (and ``rnnbench --help``) imports no
torch.
"""

from rnnbench._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), {
    name: "throughput" for name in ("MODES", "SHAPES", "BenchCase", "PTBStepModel",
                                    "handwritten_case", "measure", "run_case", "run_suite")
})
