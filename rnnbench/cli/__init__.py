"""The ``rnnbench`` command: one module per subcommand (cells, fit, study, report, bench,
evaluate, generate, export, diagnose).

Importing this package (and ``rnnbench --help``) imports no torch: each subcommand imports
what it needs when it runs.
"""

from rnnbench.cli.app import build_parser, main
from rnnbench.cli.base import CLIError, IntermixedParser
from rnnbench.cli.fit import fit_config

__all__ = ["CLIError", "IntermixedParser", "build_parser", "fit_config", "main"]
