"""What ``evaluate``, ``generate`` and ``export`` share: loading RUN and their user errors."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from rnnbench.cli.base import CLIError

RUN_HELP = ("a run folder (runs/NAME/version_K), the runs/NAME folder above it (newest "
            "version) or a .ckpt file")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """``RUN`` and ``--checkpoint``, the same for every command that uses a trained model."""
    p.add_argument("run", metavar="RUN", help=RUN_HELP)
    p.add_argument("--checkpoint", choices=("best", "last"), default=None,
                   help="which checkpoint of a run folder (default: best.ckpt when the run "
                   "has one, else last.ckpt)")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns the mistakes a user can fix (path, flag, data, checkpoint) into a CLIError."""
    from rnnbench.checkpointing import CheckpointError
    from rnnbench.config import ConfigError
    from rnnbench.inference import InferenceError

    try:
        yield
    except (InferenceError, ConfigError, CheckpointError, FileNotFoundError) as err:
        raise CLIError(str(err).strip('"')) from None


def load(args: argparse.Namespace) -> Any:
    """The trained model ``RUN`` names (see :func:`rnnbench.inference.load_model`)."""
    from rnnbench.inference import load_model

    with user_errors():
        return load_model(args.run, args.checkpoint)
