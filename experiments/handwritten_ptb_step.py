"""Times the hand-written eager PTB step (nn.Embedding, 2-layer nn.LSTM, Linear 10k, TBPTT).

Usage:
    python experiments/handwritten_ptb_step.py --shape small [--device cpu] [--repeats 10]
    python experiments/handwritten_ptb_step.py --shape medium --device cuda --graphed

The baseline that ``rnnbench bench --compare-handwritten`` prints next to rnnbench's fused
lstm train step. The model and loop live in ``rnnbench.bench.throughput`` (``HandwrittenLM``,
``handwritten_case``) so that this script and the CLI time exactly the same code with the
same clock: carried and detached state, clip_grad_norm_ 0.25, SGD, median of timed steps.
With ``--graphed`` the step is the hand-written whole-step CUDA graph
(``handwritten_graphed_train_step``), the baseline of the graphed comparisons.
"""

from __future__ import annotations

import argparse

import torch

from rnnbench.bench.throughput import SHAPES, handwritten_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="small", choices=list(SHAPES))
    parser.add_argument("--mode", default="train", choices=("train", "infer"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--graphed", action="store_true",
                        help="capture the train step as one CUDA graph (CUDA only)")
    args = parser.parse_args()
    if args.graphed and (args.device != "cuda" or args.mode != "train"):
        parser.error("--graphed needs --device cuda and --mode train")
    batch, hidden, steps, layers = SHAPES[args.shape]
    row = handwritten_case(batch, hidden, steps, layers, mode=args.mode, device=args.device,
                           warmup=args.warmup, repeats=args.repeats, graphed=args.graphed)
    kind = "graphed " if args.graphed else ""
    print(f"hand-written {kind}nn.LSTM {args.mode} {args.shape} (B{batch} H{hidden} T{steps} "
          f"L{layers}) on {args.device}: {row['tokens_per_s']:,.0f} tokens/s, "
          f"{row['median_ms']:.2f} ms/step (median of {args.repeats})")


if __name__ == "__main__":
    main()
