"""``rnnbench bench``: tokens/s, ms/step and peak memory per cell, impl, shape and mode."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from pathlib import Path

from rnnbench.cli.base import CLIError, choose, comma_list


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="measure tokens/s and memory of PTB-shaped LM steps",
        description="Time PTB-shaped language-model steps (embedding -> backbone -> "
        "Linear(10k) -> cross-entropy; train adds backward, clip 0.25, SGD) for each cell, "
        "impl, shape and mode. Shapes: tiny B4 H32 T10 L1, small B20 H200 T35 L2, "
        "medium B20 H650 T35 L2, large B256 H1024 T64 L2.",
    )
    p.add_argument("--cells", help="comma-separated cell names (default: all registered)")
    p.add_argument("--impls",
                   help="comma-separated impls: fused, reference, compiled, and each with "
                   "'+graph' (whole step replayed as a CUDA graph; GPU only). Default: "
                   "fused,reference,compiled on CPU, all six on GPU")
    p.add_argument("--shapes",
                   help="comma-separated shapes (default: small,medium on CPU, "
                   "small,medium,large on GPU)")
    p.add_argument("--modes", default="train,infer", help="train and/or infer")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=10, help="timed steps; median reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation here)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    p.add_argument("--compare-handwritten", action="store_true",
                   help="also time a hand-written nn.LSTM train step per shape (and on GPU "
                   "a hand-written whole-step CUDA graph) and print rnnbench's lstm train "
                   "throughput relative to each")
    p.set_defaults(func=_cmd_bench)


def _resolve(args: argparse.Namespace) -> dict:
    import torch

    from rnnbench.bench.throughput import BENCH_IMPLS, MODES, SHAPES
    from rnnbench.cells import list_cells

    if args.device == "cuda" and not torch.cuda.is_available():
        raise CLIError("--device cuda was requested but CUDA is not available "
                        f"(torch {torch.__version__}); use --device cpu")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.repeats < 1 or args.warmup < 0:
        raise CLIError("--repeats must be >= 1 and --warmup >= 0")
    known_cells = list_cells()
    default_shapes = "small,medium" if device == "cpu" else "small,medium,large"
    return {
        "cells": choose("cells", known_cells if args.cells is None else comma_list(args.cells),
                         known_cells),
        "impls": choose("impls", comma_list(args.impls or (
            "fused,reference,compiled" if device == "cpu" else ",".join(BENCH_IMPLS))),
            BENCH_IMPLS),
        "shapes": choose("shapes", comma_list(args.shapes or default_shapes), list(SHAPES)),
        "modes": choose("modes", comma_list(args.modes), MODES),
        "device": device,
    }


def _cmd_bench(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from rnnbench.bench.throughput import (
        SHAPES,
        BenchCase,
        handwritten_case,
        run_case,
        run_suite,
    )

    sel = _resolve(args)
    console = Console(width=max(120, Console().width), soft_wrap=True)
    rows = run_suite(sel["cells"], sel["impls"], sel["shapes"], sel["modes"], sel["device"],
                     warmup=args.warmup, repeats=args.repeats)
    compare = []
    if args.compare_handwritten:
        kinds = [("fused", False)] + ([("fused+graph", True)] if sel["device"] == "cuda"
                                      else [])
        for shape in sel["shapes"]:
            for impl, graphed in kinds:
                ours = _find(rows, "lstm", impl, shape, "train")
                if ours is None:  # not in the selection: measure it for the comparison only
                    ours = run_case(BenchCase("lstm", impl, *SHAPES[shape], "train",
                                              sel["device"]), args.warmup, args.repeats)
                hand = handwritten_case(*SHAPES[shape], mode="train", device=sel["device"],
                                        warmup=args.warmup, repeats=args.repeats,
                                        graphed=graphed)
                hand["shape"] = shape
                compare.append((shape, ours, hand))
    console.print(_table(rows))
    if compare:
        console.print(_compare_table(compare))
    if args.json:
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "device": sel["device"],
            "device_name": torch.cuda.get_device_name() if sel["device"] == "cuda"
            else platform.processor() or platform.machine(),
            "nproc": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "warmup": args.warmup,
            "repeats": args.repeats,
        }
        handwritten = [hand for _, _, hand in compare]
        _write_json(Path(args.json), {"meta": meta, "results": rows,
                                      "handwritten": handwritten})
        console.print(f"results written to {args.json}")
    return 0


def _find(rows: list[dict], cell: str, impl: str, shape: str, mode: str) -> dict | None:
    for r in rows:
        if (r["cell"], r["impl"], r["shape"], r["mode"], r["status"]) == (
            cell, impl, shape, mode, "ok"
        ):
            return r
    return None


def _table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="rnnbench bench (median of timed steps)")
    for col in ("cell", "impl", "shape", "mode"):
        table.add_column(col)
    for col in ("tokens/s", "ms/step", "peak MB", "vs fused lstm"):
        table.add_column(col, justify="right")
    for r in rows:
        if r["status"] != "ok":
            table.add_row(r["cell"], r["impl"], r["shape"], r["mode"],
                          "-", "-", "-", f"[dim]skipped: {r['reason']}[/dim]")
            continue
        impl = r["impl"]
        if r["effective_impl"] != impl:
            impl = f"{impl} (ran {r['effective_impl']})"
        base = _find(rows, "lstm", "fused", r["shape"], r["mode"])
        ratio = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}x" if base else "-"
        table.add_row(r["cell"], impl, r["shape"], r["mode"], f"{r['tokens_per_s']:,.0f}",
                      f"{r['median_ms']:.2f}", f"{r['peak_mb']:.0f}", ratio)
    return table


def _compare_table(compare: list[tuple[str, dict, dict]]):
    from rich.table import Table

    table = Table(title="rnnbench lstm train step vs the hand-written nn.LSTM step")
    table.add_column("shape")
    table.add_column("impl")
    for col in ("hand-written tokens/s", "rnnbench tokens/s", "rnnbench / hand-written"):
        table.add_column(col, justify="right")
    for shape, ours, hand in compare:
        table.add_row(shape, ours["impl"], f"{hand['tokens_per_s']:,.0f}",
                      f"{ours['tokens_per_s']:,.0f}",
                      f"{ours['tokens_per_s'] / hand['tokens_per_s']:.2f}x")
    return table


def _write_json(path: Path, payload: dict) -> None:
    from rnnbench.atomic import write_atomic

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            json.dump(payload, fh, indent=2)

    write_atomic(path, write)
