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


def comma_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (a flag's comma-separated names)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def choose(kind: str, given: list[str], known, *, also: tuple[str, ...] = ()) -> list[str]:
    """``given`` names checked against ``known`` for the flag ``--kind``, duplicates dropped.

    Raises:
        CLIError: None given, or a name ``known`` lacks (the message lists the choices,
            ``also`` first: names the caller handles itself, such as ``all``).
    """
    choices = ", ".join([*also, *known])
    if not given:
        raise CLIError(f"--{kind} is empty; choose from {choices}")
    bad = [g for g in given if g not in known]
    if bad:
        raise CLIError(f"unknown {kind[:-1]} {', '.join(map(repr, bad))}; choose from {choices}")
    return list(dict.fromkeys(given))
