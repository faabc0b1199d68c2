"""``rnnbench cells``: the registered cells, their state size, parameters and paths."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cells", help="list registered cells (built-in, contrib, plugins)")
    p.add_argument("--input-size", type=int, default=64, help="reference input size")
    p.add_argument("--hidden-size", type=int, default=128, help="reference hidden size")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rnnbench.cells.listing import cell_rows
    from rnnbench.cli.base import CLIError

    if args.input_size <= 0 or args.hidden_size <= 0:
        raise CLIError("--input-size and --hidden-size must be positive integers")
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
