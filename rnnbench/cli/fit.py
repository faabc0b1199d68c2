"""``rnnbench fit``: train (and test) one model from a composed config."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

HELP = """\
Train one model. CONFIG is a YAML file (see configs/experiment/) or a run folder's
config.yaml; overrides look like model.hidden_size=650 optim.lr=1e-3, and a config group is
switched with model=lstm_2x200 (a file of configs/model/).
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("fit", help="train (and test) one model from a YAML config",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="experiment YAML, e.g. configs/experiment/zaremba_small.yaml")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, group=name")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest run of this config from its last checkpoint")
    p.add_argument("--no-test", action="store_true", help="skip the test split after fitting")
    p.add_argument("--quick", action="store_true",
                   help="apply the config's quick: section (a short version of the run)")
    p.add_argument("--wandb", action="store_true",
                   help="log to Weights & Biases (offline unless you are logged in)")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="run every training step eagerly (same as optim.cuda_graphs=false); "
                   "by default TBPTT steps on one GPU are replayed as CUDA graphs")
    p.add_argument("--print-config", action="store_true",
                   help="print the composed config as YAML and exit (nothing runs)")
    p.set_defaults(func=run)


def fit_config(args: argparse.Namespace) -> dict:
    """The composed config of ``rnnbench fit``: file, ``--quick``, flags, then overrides."""
    from rnnbench.config import load_config

    overrides = list(args.overrides)
    if args.no_cuda_graphs:
        overrides.insert(0, "optim.cuda_graphs=false")
    return load_config(args.config, overrides, quick=args.quick)


def resume_command(args: argparse.Namespace) -> str:
    """The ``rnnbench fit`` command line that continues this run (same config and flags)."""
    import shlex

    flags = [f for f, on in (("--quick", args.quick), ("--no-test", args.no_test),
                             ("--wandb", args.wandb), ("--no-cuda-graphs", args.no_cuda_graphs))
             if on]
    return shlex.join(["rnnbench", "fit", args.config, *args.overrides, *flags, "--resume"])


def run(args: argparse.Namespace) -> int:
    from rnnbench.cli.base import CLIError
    from rnnbench.config import ConfigError, to_yaml

    try:
        cfg = fit_config(args)
    except ConfigError as err:
        raise CLIError(str(err)) from None
    if args.print_config:
        sys.stdout.write(to_yaml(cfg))
        return 0
    if args.wandb:
        cfg["logging"]["wandb"] = cfg["logging"].get("wandb") or True
    from rnnbench.runlog import fit_outcome
    from rnnbench.stopping import catch_stop_signals
    from rnnbench.train import run as train

    loggers = []
    try:
        if cfg["logging"].get("wandb"):
            from rnnbench.tracking import make_wandb_logger

            # Named and grouped by the experiment; the whole composed config is recorded.
            name = f"{cfg['name']}-{cfg['model'].get('cell', 'model')}-seed{cfg.get('seed', 0)}"
            loggers.append(make_wandb_logger(cfg, job_type="fit", group=str(cfg["name"]),
                                             name=name, config=cfg))
        with catch_stop_signals():  # SIGINT/SIGTERM: finish the step, save, exit 130/143
            result = train(cfg, loggers=loggers, resume=args.resume, test=not args.no_test)
    except (ConfigError, ValueError, KeyError, FileNotFoundError) as err:
        raise CLIError(str(err).strip('"')) from None
    except BaseException as err:  # interrupted, already finished, diverged: one message
        outcome = fit_outcome(err, resume_command(args))
        if outcome is None:
            raise
        print(outcome[1], file=sys.stderr if outcome[0] else sys.stdout)
        return outcome[0]
    finally:
        if loggers:
            from rnnbench.tracking import finish

            finish()  # a later run in this process must not land in this one
    _print_result(result)
    return 0


def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    shown = [k for k in sorted(result.metrics) if k.startswith(("val/", "test/"))]
    if not shown and "train/loss_epoch" in result.metrics:
        # No held-out split (e.g. DLFS2 chapter 5): report the last epoch's training loss.
        shown = ["train/loss_epoch"]
        if result.monitor == "val/ppl":
            result.metrics["train/ppl (last epoch)"] = math.exp(result.metrics[shown[0]])
            shown.append("train/ppl (last epoch)")
    for key in shown:
        table.add_row(key, f"{result.metrics[key]:.4f}")
    from rnnbench.cli.app import STARTED

    total = time.perf_counter() - STARTED
    train = result.wall_time_s
    console = Console()
    console.print(
        f"run finished in {total:.1f} s ({train:.1f} s training and testing, "
        f"{result.setup_time_s:.1f} s building data, model and trainer, "
        f"{max(0.0, total - train - result.setup_time_s):.1f} s start-up: imports, loggers): "
        f"{result.num_parameters:,} parameters (hidden size {result.hidden_size})"
    )
    console.print(table)
    console.print(f"logs and checkpoints: {result.run_dir}")
