"""Trials per hour of a population of K against K sequential solo trials (CPU, one thread).

Usage:
    OMP_NUM_THREADS=1 python experiments/population_bench.py                  # K = 1 4 8 32 128
    OMP_NUM_THREADS=1 python experiments/population_bench.py --cells lstm --ks 8 32 --compile
    OMP_NUM_THREADS=1 python experiments/population_bench.py --quick          # a smoke run
    python experiments/population_bench.py --config configs/experiment/zaremba_small.yaml \
        --set trainer.accelerator=gpu --cells lstm --ks 1 8 32 64 --steps 200  # PTB-small, GPU

The shapes are the JSB main job's (configs/experiment/chung2014_jsb.yaml: JSB Chorales,
batch 4, about 20K parameters: LSTM 34 units, GRU 41, tanh 78). Every trial trains
``--steps`` batches (its own seed and learning rate, so its own data order unless
``--shared-order``), then scores one validation batch. Solo trials run one after another
through the same loop on the fused path (torch.nn's kernels, a population of one on the
``loop`` path); the population runs all K at once on its batched path. Each side is timed
side by side in one process; with ``--max-solo`` below K, the solo time is the mean of that
many trials times K (said in the table). Building the members (data, sizing) is timed
apart and left out of both columns, as it is the same work either way.
"""

from __future__ import annotations

import argparse
import time

import torch

from rnnbench.backbones.population import PopulationBackbone
from rnnbench.config import ConfigError, load_config
from rnnbench.population import Population

CONFIG = "configs/experiment/chung2014_jsb.yaml"


def member_configs(cell: str, k: int, steps: int, offset: int = 0, config: str = CONFIG,
                   extra: tuple[str, ...] = ()) -> list[dict]:
    """K configs of one cell (the JSB main job's by default): seeds and learning rates
    differ; ``extra`` overrides apply to every member."""
    lrs = (0.003, 0.006, 0.01, 0.002)
    return [load_config(config, [
        f"model.cell={cell}", f"seed={offset + i}", f"optim.lr={lrs[i % len(lrs)]}",
        "trainer.max_epochs=1", f"trainer.limit_train_batches={steps}",
        "trainer.limit_val_batches=1", "data.eval_batch_size=16",
        "checkpoint.enabled=false", "logging.wandb=false", *extra]) for i in range(k)]


def timed_fit(cfgs: list[dict], **kw) -> tuple[float, Population]:
    """Seconds of ``Population(cfgs).fit()`` (building excluded)."""
    pop = Population(cfgs, **kw)
    t0 = time.perf_counter()
    pop.fit()
    return time.perf_counter() - t0, pop


def bench(cell: str, k: int, steps: int, max_solo: int, compile_step: bool,
          shared_order: bool, compare_drop: bool = False, config: str = CONFIG,
          extra: tuple[str, ...] = (), cuda_graphs: bool | str | None = None) -> dict:
    """One row: population of ``k`` against ``k`` solo trials (``cuda_graphs``: both sides'
    graph setting; ``None``: the config's)."""
    cfgs = member_configs(cell, k, steps, config=config, extra=extra)
    kept_s = None
    kw = {"cuda_graphs": cuda_graphs}
    if compare_drop:  # every member run to the longest end, masked (the path before)
        PopulationBackbone.drop_ended = False
        try:
            kept_s = timed_fit(cfgs, compile_step=compile_step, shared_order=shared_order,
                               **kw)[0]
        finally:
            PopulationBackbone.drop_ended = True
    pop_s, pop = timed_fit(cfgs, compile_step=compile_step, shared_order=shared_order, **kw)
    n_solo = min(k, max_solo)
    solo_s = sum(timed_fit([c], path="loop", **kw)[0] for c in cfgs[:n_solo]) * k / n_solo
    return {"cell": cell, "K": k, "path": pop._pop[1].path, "pop_s": pop_s,
            "solo_s": solo_s, "solo_measured": n_solo,
            "pop_trials_h": 3600 * k / pop_s, "solo_trials_h": 3600 * k / solo_s,
            "ratio": solo_s / pop_s, "kept_s": kept_s}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn_tanh"])
    parser.add_argument("--ks", nargs="+", type=int, default=[1, 4, 8, 32, 128])
    parser.add_argument("--steps", type=int, default=20, help="training batches per trial")
    parser.add_argument("--max-solo", type=int, default=8,
                        help="solo trials actually run per row (the rest extrapolated)")
    parser.add_argument("--compile", action="store_true",
                        help="fuse the population's gate step with torch.compile")
    parser.add_argument("--shared-order", action="store_true",
                        help="every member reads the first member's batches")
    parser.add_argument("--compare-drop", action="store_true",
                        help="also time the population with every member run to the longest "
                             "end (PopulationBackbone.drop_ended = False)")
    parser.add_argument("--config", default=CONFIG,
                        help="the members' config (default: the JSB main job's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides for every member, e.g. model.param_budget=300000")
    parser.add_argument("--cuda-graphs", choices=["config", "auto", "false"], default="config",
                        help="population and solo steps as CUDA graphs (streaming tasks on a "
                             "GPU): the config's optim.cuda_graphs, auto, or off")
    parser.add_argument("--quick", action="store_true", help="K = 1, 2; 3 steps; lstm")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.cells, args.ks, args.steps, args.max_solo = ["lstm"], [1, 2], 3, 2
    try:  # a bad --config or --set is one line before anything is timed, not a traceback
        member_configs(args.cells[0], 1, args.steps, config=args.config, extra=tuple(args.set))
    except ConfigError as err:
        parser.error(f"--config/--set: {err}")
    device = "cuda " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} thread, "
          f"{args.steps} steps a trial, compile={args.compile}, "
          f"shared_order={args.shared_order}, cuda_graphs={args.cuda_graphs}")
    extra = " population s, members kept to the end | drop gain |" if args.compare_drop else ""
    print("| cell | K | path | population s | solo s (measured) | population trials/h "
          "| solo trials/h | ratio |" + extra)
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if args.compare_drop else ""))
    for cell in args.cells:
        for k in args.ks:
            r = bench(cell, k, args.steps, args.max_solo, args.compile, args.shared_order,
                      args.compare_drop, args.config, tuple(args.set),
                      {"config": None, "auto": "auto", "false": False}[args.cuda_graphs])
            kept = (f" {r['kept_s']:.2f} | {r['kept_s'] / r['pop_s']:.2f}x |"
                    if r["kept_s"] is not None else "")
            print(f"| {r['cell']} | {r['K']} | {r['path']} | {r['pop_s']:.2f} | "
                  f"{r['solo_s']:.2f} ({r['solo_measured']}) | {r['pop_trials_h']:.0f} | "
                  f"{r['solo_trials_h']:.0f} | {r['ratio']:.2f}x |{kept}", flush=True)


if __name__ == "__main__":
    main()
