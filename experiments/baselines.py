"""Score a study file's baselines (``study.baselines``) alone, without training anything.

usage: python experiments/baselines.py STUDY.yaml [--quick] [--seeds 1,2] [key=value ...]

Fits each baseline on the study's training split and prints its validation and test metrics
per seed, with the wall time: the rows ``rnnbench study run`` adds to the comparison (it
stores them with the study). Example:

    python experiments/baselines.py configs/experiment/bai2018_ptb.yaml --seeds 1
"""

from __future__ import annotations

import argparse
import copy
import time


def main(argv: list[str] | None = None) -> int:
    from rnnbench.studies.baselines import evaluate_baseline
    from rnnbench.studies.pool import preflight
    from rnnbench.studies.spec import load_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the study's)")
    args = parser.parse_args(argv)
    spec = load_study(args.study, args.overrides, quick=args.quick)
    preflight(spec)  # the metric and its direction, from the task
    seeds = ([int(s) for s in args.seeds.split(",")] if args.seeds
             else list(spec.seeds) or [int(spec.config.get("seed", 0) or 0)])
    print(f"{spec.name}: {spec.metric} ({spec.direction}), seeds {seeds}")
    for entry in spec.baselines:
        for seed in seeds:
            cfg = copy.deepcopy(spec.config)
            cfg["seed"] = seed
            t0 = time.perf_counter()
            row = evaluate_baseline(entry, cfg, seed=seed, metric=spec.metric,
                                    direction=spec.direction)
            shown = ", ".join(f"{k} {v:.6g}" for k, v in row["metrics"].items())
            print(f"{entry['name']} seed {seed}: {row['description']} {row['options']}; "
                  f"{row['num_parameters']:,} fitted numbers; {shown}; "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
    if not spec.baselines:
        print("the study file lists no baselines (study.baselines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
