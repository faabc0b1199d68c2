"""What every subcommand shares: the one user-error type and the override-friendly parser."""

from __future__ import annotations

import argparse


class CLIError(Exception):
    """A user error: printed as one paragraph, exit code 2, no traceback."""


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
