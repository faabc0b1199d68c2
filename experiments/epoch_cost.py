"""Estimate what a preset costs on this machine from a few timed training steps.

Usage:
    python experiments/epoch_cost.py CONFIG [--cells lstm,gru] [--steps 5,25] \
        [section.key=value ...]

For each cell, ``rnnbench fit``'s training (``rnnbench.train.run``, no validation, no test)
runs once untimed (one-time set-up costs) and then for the two step counts given; the
difference of the CPU times (this process, ``time.process_time``, one torch thread) over
the difference of the steps is the cost of one training step without start-up. CPU time,
not wall time: on cores shared with other jobs it is what the step costs a core of its own.
Multiplied by the steps of an epoch (training batches), the epochs (``trainer.max_epochs``)
and, for a study file, the runs per variant (``trials_per_variant + seeds``), it gives the
estimated cost of the preset's training on this machine, one worker (validation and
start-up not included).
"""

from __future__ import annotations

import argparse
import math
import sys
import time


def _timed(cfg: dict, steps: int) -> float:
    from rnnbench.train import run

    cfg = {**cfg, "trainer": {**cfg["trainer"], "max_epochs": 1, "limit_train_batches": steps,
                              "limit_val_batches": 0},
           "checkpoint": {**cfg.get("checkpoint", {}), "enabled": False}}
    t0 = time.process_time()
    run(cfg, test=False)
    return time.process_time() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--cells", default=None)
    p.add_argument("--steps", default="5,25")
    p.add_argument("--runs", type=int, default=None,
                   help="runs per variant (default: trials_per_variant + seeds of a study)")
    args = p.parse_args()
    import torch
    import yaml

    torch.set_num_threads(1)  # as a study worker trains; CPU time of idle-spinning threads
    # otherwise counts (on 2 busy cores a GRU step measured 8x its one-thread cost)

    from rnnbench.config import load_config
    from rnnbench.data.catalog import build_data

    raw = yaml.safe_load(open(args.config))
    study = raw.get("study", {})
    runs = args.runs or ((int(study.get("trials_per_variant", 1)) + int(study.get("seeds", 0)))
                         if study else 1)
    cfg = load_config(args.config, [o for o in args.overrides])
    cfg["logging"] = {**cfg.get("logging", {}), "progress_bar": False, "wandb": False,
                      "dir": "/tmp/epoch_cost"}
    cells = (args.cells or cfg["model"]["cell"]).split(",")
    lo, hi = (int(s) for s in args.steps.split(","))
    bundle = build_data(cfg["data"], seed=0)
    bundle.datamodule.setup("fit")
    per_epoch = len(bundle.datamodule.train_dataloader())
    epochs = int(cfg["trainer"].get("max_epochs") or 1)
    print(f"{args.config} {' '.join(args.overrides)}: {per_epoch} training steps per epoch, "
          f"{epochs} epochs, {runs} runs per variant")
    total = 0.0
    for cell in cells:
        c = {**cfg, "model": {**cfg["model"], "cell": cell}}
        # An untimed run first: the first run in a process also pays one-time costs (imports,
        # kernel set-up), which would land in the difference and inflate the first cell's
        # estimate (the larger run used to come first).
        _timed(c, lo)
        step = (_timed(c, hi) - _timed(c, lo)) / (hi - lo)
        epoch = step * per_epoch
        cost = epoch * epochs * runs
        total += cost
        print(f"  {cell}: {step * 1e3:.1f} ms/step (CPU), {epoch:.0f} s/epoch, "
              f"{cost / 3600:.2f} h for {runs} runs x {epochs} epochs")
    print(f"  these cells: {total / 3600:.2f} h of training on one core "
          f"({math.ceil(total / 60)} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
