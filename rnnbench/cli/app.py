"""``rnnbench``'s parser and entry point: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from rnnbench.cli.base import CLIError, IntermixedParser

# When the command started (this package is imported first): `fit` reports the whole wall
# time, imports included, beside the time spent training.
STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    from rnnbench import __version__
    from rnnbench.cli import bench, cells, diagnose, evaluate, export, fit, generate, report, study

    parser = argparse.ArgumentParser(
        prog="rnnbench",
        description="Fair, reproducible comparisons of recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"rnnbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=IntermixedParser)
    sub.required = True
    for module in (cells, fit, study, report, bench, evaluate, generate, export, diagnose):
        module.add_parser(sub)
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
