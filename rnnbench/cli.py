"""The ``rnnbench`` command: cells, fit, study run/worker, report, bench."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence


class CLIError(Exception):
    """A user error: printed as one paragraph, exit code 2, no traceback."""


def _cmd_cells(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rnnbench.cells.listing import cell_rows

    rows = cell_rows(input_size=args.input_size, hidden_size=args.hidden_size)
    table = Table(title=f"Registered cells (parameters at input {args.input_size}, "
                  f"hidden {args.hidden_size}, one layer and direction)")
    for col, kw in (("name", {}), ("source", {}), ("state", {"justify": "right"}),
                    ("parameters", {"justify": "right"}), ("impls", {}), ("status", {})):
        table.add_column(col, **kw)
    for row in rows:
        if row.get("error"):
            table.add_row(row["name"], row["source"], "-", "-", "-",
                          f"[red]broken: {row['error']}[/red]")
        else:
            table.add_row(row["name"], row["source"], str(row["state_size"]),
                          f"{row['parameters']:,}", ", ".join(row["impls"]), "ok")
    Console(width=max(120, Console().width), soft_wrap=True).print(table)
    return 0


def fit_config(args: argparse.Namespace) -> dict:
    """The composed config of ``rnnbench fit``: file, ``--quick``, flags, then overrides."""
    from rnnbench.experiment import load_config

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


def _cmd_fit(args: argparse.Namespace) -> int:
    from rnnbench.experiment import ConfigError, run
    from rnnbench.runlog import fit_outcome
    from rnnbench.stopping import catch_stop_signals

    loggers = []
    try:
        cfg = fit_config(args)
        if args.wandb:
            cfg["logging"]["wandb"] = cfg["logging"].get("wandb") or True
        if cfg["logging"].get("wandb"):
            from rnnbench.studies.tracking import make_wandb_logger

            loggers.append(make_wandb_logger(cfg, job_type="fit"))
        with catch_stop_signals():  # SIGINT/SIGTERM: finish the step, save, exit 130/143
            result = run(cfg, loggers=loggers, resume=args.resume, test=not args.no_test)
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
            import wandb

            wandb.finish()  # a later run in this process must not land in this one
    _print_result(result)
    return 0


def _print_result(result) -> None:
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
            import math

            result.metrics["train/ppl (last epoch)"] = math.exp(result.metrics[shown[0]])
            shown.append("train/ppl (last epoch)")
    for key in shown:
        table.add_row(key, f"{result.metrics[key]:.4f}")
    console = Console()
    console.print(
        f"run finished in {result.wall_time_s:.1f} s: {result.num_parameters:,} parameters "
        f"(hidden size {result.hidden_size})"
    )
    console.print(table)
    console.print(f"logs and checkpoints: {result.run_dir}")


class IntermixedParser(argparse.ArgumentParser):
    """Lets overrides follow options: ``fit CONFIG --resume optim.lr=0.5``."""

    _busy = False

    def parse_known_args(self, args=None, namespace=None):
        nested = any(isinstance(a, argparse._SubParsersAction) for a in self._actions)
        if self._busy or nested:  # intermixed parsing calls back in here; groups can't mix
            return super().parse_known_args(args, namespace)
        self._busy = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._busy = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnbench",
        description="Fair, reproducible comparisons of recurrent networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=IntermixedParser)
    sub.required = True

    p = sub.add_parser("cells", help="list registered cells (built-in, contrib, plugins)")
    p.add_argument("--input-size", type=int, default=64, help="reference input size")
    p.add_argument("--hidden-size", type=int, default=128, help="reference hidden size")
    p.set_defaults(func=_cmd_cells)

    p = sub.add_parser(
        "fit",
        help="train (and test) one model from a YAML config",
        description="Train one model. CONFIG is a YAML file (see configs/experiment/); "
        "overrides look like model.hidden_size=650 optim.lr=0.5.",
    )
    p.add_argument("config", help="experiment YAML, e.g. configs/experiment/zaremba_small.yaml")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
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
    p.set_defaults(func=_cmd_fit)

    for name in ("rnnbench.studies.cli", "rnnbench.report.cli", "rnnbench.bench.cli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is None or not name.startswith(err.name):
                raise  # a real import error inside the subcommand, not a missing part
            continue
        module.add_parsers(sub, CLIError)

    return parser


def _quiet_lightning() -> None:
    """Keeps the terminal for progress and results: drop Lightning's start-up chatter."""
    import logging
    import warnings

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # rnnbench's own notes (e.g. "training steps run as CUDA graphs") stay visible.
    ours = logging.getLogger("rnnbench")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    # Our data sets live in memory; loader worker processes would only add start-up time.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rnnbench`` console script."""
    _quiet_lightning()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as err:
        print(f"rnnbench {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnbench {args.command}: interrupted", file=sys.stderr)
        return 130
