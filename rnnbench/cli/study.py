"""``rnnbench study run`` / ``study worker``."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    from rnnbench.cli.base import CLIError
    from rnnbench.studies.cli import add_parsers

    add_parsers(sub, CLIError)
