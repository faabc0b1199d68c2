"""Time and peak memory of a unidirectional against a bidirectional backbone (the claimed 2x).

Usage:
    python experiments/direction_cost.py [--cells gru,lstm] [--shapes small] \
        [--repeats 10] [--json PATH]

Each case is ``rnnbench bench``'s step (same clock, warm-up and median:
``rnnbench.bench.throughput.measure``) around a sequence-to-sequence backbone: inputs
(B, T, H) -> RecurrentBackbone (uni or bi, fused kernel) -> Linear to H -> MSE, with
backward and an SGD step in train mode. ``rnnbench bench`` itself times PTB language-model
steps, where a bidirectional backbone would read the next word, so it has no direction axis.
Every case runs in a fresh process, so its CPU peak (growth of the peak RSS) is its own; on
GPU the peak is ``torch.cuda.max_memory_allocated``. Also reported: the bytes autograd saves
for backward in one train step (exact, device independent).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _case(cell: str, shape: str, mode: str, bidirectional: bool, repeats: int,
          device: str) -> dict:
    import torch
    import torch.nn.functional as F

    from rnnbench.backbones import RecurrentBackbone
    from rnnbench.bench.throughput import SHAPES, measure

    B, H, T, L = SHAPES[shape]
    built: dict = {}

    def setup() -> None:
        torch.manual_seed(0)
        rnn = RecurrentBackbone(cell, H, H, num_layers=L, bidirectional=bidirectional,
                                impl="fused").to(device)
        head = torch.nn.Linear(rnn.output_size, H).to(device)
        x = torch.randn(B, T, H, device=device)  # (B, T, H)
        target = torch.randn(B, T, H, device=device)  # (B, T, H)
        params = list(rnn.parameters()) + list(head.parameters())
        opt = torch.optim.SGD(params, lr=0.1)

        def train() -> None:
            loss = F.mse_loss(head(rnn(x)[0]), target)  # (B, T, D * H) -> (B, T, H)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def infer() -> None:
            with torch.inference_mode():
                head(rnn(x)[0])

        built.update(step=train if mode == "train" else infer, rnn=rnn, head=head, x=x)

    stats = measure(lambda: built["step"](), device, warmup=3, repeats=repeats, setup=setup)
    saved = 0
    if mode == "train":
        def pack(t):
            nonlocal saved
            saved += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            built["head"](built["rnn"](built["x"])[0]).sum()
    return {"cell": cell, "shape": shape, "mode": mode, "bidirectional": bidirectional,
            "batch": B, "hidden": H, "steps": T, "layers": L, "device": device,
            "params": sum(p.numel() for p in built["rnn"].parameters()),
            "median_ms": stats["median_ms"], "tokens_per_s": B * T / stats["median_ms"] * 1e3,
            "peak_mb": stats["peak_mb"], "saved_for_backward_mb": saved / 2**20}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="gru,lstm")
    p.add_argument("--shapes", default="small")
    p.add_argument("--modes", default="train,infer")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = p.parse_args()
    if args.one:
        cell, shape, mode, bi = args.one.split(":")
        row = _case(cell, shape, mode, bi == "bi", args.repeats, args.device)
        print(json.dumps(row))
        return 0
    rows = []
    for shape in args.shapes.split(","):
        for mode in args.modes.split(","):
            for cell in args.cells.split(","):
                for bi in ("uni", "bi"):
                    out = subprocess.run(
                        [sys.executable, __file__, "--one", f"{cell}:{shape}:{mode}:{bi}",
                         "--repeats", str(args.repeats), "--device", args.device],
                        check=True, capture_output=True, text=True, cwd=ROOT)
                    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| cell | shape | mode | direction | params | ms/step | tokens/s | peak MB | "
          "saved for backward MB | bi / uni time |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        uni = next(u for u in rows if (u["cell"], u["shape"], u["mode"], u["bidirectional"])
                   == (r["cell"], r["shape"], r["mode"], False))
        ratio = r["median_ms"] / uni["median_ms"]
        print(f"| {r['cell']} | {r['shape']} | {r['mode']} | "
              f"{'bi' if r['bidirectional'] else 'uni'} | {r['params']:,} | "
              f"{r['median_ms']:.2f} | {r['tokens_per_s']:,.0f} | {r['peak_mb']:.1f} | "
              f"{r['saved_for_backward_mb']:.2f} | {ratio:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
