"""How fast a plugin cell written as a plain per-step PyTorch function trains.

Usage:
    python experiments/plugin_cell_speed.py [--shapes small,medium] [--json out.json]

The cell below is what a user would write for a plugin: an LSTM step in plain PyTorch
(two linears, four gates, no fused kernel), registered with ``register_cell`` exactly as an
entry-point plugin is. It is timed with ``rnnbench bench``'s PTB-shaped train step
(embedding, 2 layers, 10k softmax, clip, SGD) on every path rnnbench offers a cell
without a fused kernel, and compared with the built-in LSTM run eagerly on cuDNN
(``lstm fused``), the figure the issue sets as the bar: >= 1.0x at B20 H650 T35 L2.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from rnnbench.bench.throughput import SHAPES, BenchCase, run_case
from rnnbench.cells import RNNCell, register_cell


@register_cell("plain_lstm", source="experiments/plugin_cell_speed.py")
class PlainLSTMCell(RNNCell):
    """An LSTM step as a user would write it: no fused kernel, no sequence hook."""

    state_size = 2

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.ih = nn.Linear(input_size, 4 * hidden_size)
        self.hh = nn.Linear(hidden_size, 4 * hidden_size)

    def forward(self, x_t, state):
        h, c = state
        i, f, g, o = (self.ih(x_t) + self.hh(h)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


CASES = [
    ("lstm", "fused"),  # the bar: cuDNN, eager
    ("plain_lstm", "reference"),
    ("plain_lstm", "compiled"),
    ("plain_lstm", "reference+graph"),
    ("plain_lstm", "compiled+graph"),
    ("lstm", "fused+graph"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="small,medium")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("this experiment measures GPU paths; CUDA is not available")
    torch.set_float32_matmul_precision("high")
    rows = []
    for shape in args.shapes.split(","):
        for cell, impl in CASES:
            case = BenchCase(cell, impl, *SHAPES[shape], "train", "cuda")
            rows.append(run_case(case, warmup=args.warmup, repeats=args.repeats))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, train step, "
          f"median of {args.repeats}")
    for shape in args.shapes.split(","):
        base = next(r for r in rows if r["shape"] == shape and r["impl"] == "fused")
        for r in (r for r in rows if r["shape"] == shape):
            print(f"{shape:7s} {r['cell']:11s} {r['impl']:16s} {r['tokens_per_s']:>11,.0f} "
                  f"tok/s  {r['tokens_per_s'] / base['tokens_per_s']:5.2f}x cuDNN eager  "
                  f"peak {r['peak_mb']:,.0f} MB")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
