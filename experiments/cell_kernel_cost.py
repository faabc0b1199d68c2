"""Forward+backward time of one recurrent layer per cell and path, at the main job's shapes.

Usage:
    OMP_NUM_THREADS=1 python experiments/cell_kernel_cost.py [--steps 100] [--repeats 20]

Shapes: JSB Chorales main job (batch 4, 88 keys in, ~20K parameters: GRU 41, LSTM 34, tanh
78 units). Paths: ``fused`` (torch.nn's kernel through ``RecurrentBackbone``), ``reference``
(the cells' per-step Python loop) and ``batched`` (the population's stacked-weight loop with
one member). Rounds alternate the paths; the table gives each one's median ms per window.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rnnbench.backbones.population import PopulationBackbone
from rnnbench.backbones.recurrent import RecurrentBackbone

SHAPES = {"gru": 41, "lstm": 34, "rnn_tanh": 78}


def _runner(cell: str, hidden: int, path: str, x: torch.Tensor):
    torch.manual_seed(0)
    if path == "batched":
        pop = PopulationBackbone([RecurrentBackbone(cell, x.size(-1), hidden)], path="batched")
        return lambda: pop(x[None])[0]
    b = RecurrentBackbone(cell, x.size(-1), hidden, impl=path)
    return lambda: b(x)[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="window length T")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x = torch.randn(4, args.steps, 88)
    paths = ("fused", "reference", "batched")
    print(f"torch {torch.__version__}, 1 thread, batch 4, T = {args.steps}")
    print("| cell (hidden) | " + " | ".join(f"{p} ms" for p in paths) + " | fused ms/step |")
    print("|---|" + "---:|" * (len(paths) + 1))
    for cell, hidden in SHAPES.items():
        runs = {p: _runner(cell, hidden, p, x) for p in paths}
        times: dict[str, list[float]] = {p: [] for p in paths}
        for _ in range(args.rounds):
            for p, run in runs.items():
                for _ in range(2):
                    run().sum().backward()  # warm-up
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    run().sum().backward()
                times[p].append((time.perf_counter() - t0) / args.repeats * 1000)
        med = {p: statistics.median(v) for p, v in times.items()}
        print(f"| {cell} ({hidden}) | " + " | ".join(f"{med[p]:.2f}" for p in paths)
              + f" | {med['fused'] / args.steps:.3f} |", flush=True)


if __name__ == "__main__":
    main()
