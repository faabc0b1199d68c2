"""``rnnbench evaluate``: a trained model's task metrics on the test or validation split."""

from __future__ import annotations

import argparse
from typing import Any

HELP = """\
Measure a trained model on a split of its data (or other data of the same task) with a
Lightning Trainer and print the task's metrics (nll and ppl or bpc for language models,
nll per frame for music, accuracy, anomaly scores...). Overrides change the data or the
trainer only: data.eval_batch_size=1 trainer.limit_test_batches=10.
"""


def add_parser(sub: Any) -> None:
    from rnnbench.cli._use import add_run_arguments

    p = sub.add_parser("evaluate", help="a trained model's metrics on the test or val split",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("overrides", nargs="*", help="data.KEY=VALUE or trainer.KEY=VALUE")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="which split (default: test)")
    p.add_argument("--data", metavar="NAME|FILE",
                   help="other data: a config of configs/data/ (e.g. nottingham) or a YAML "
                   "file with a data section (default: the run's data)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                   help="where to run (one device; default: a GPU if there is one)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rnnbench.cli._use import load, user_errors
    from rnnbench.inference import evaluate

    loaded = load(args)
    with user_errors():
        result = evaluate(loaded, args.split, data=args.data, overrides=args.overrides,
                          accelerator=args.device, progress=args.progress)
    print(loaded.describe())
    print(f"{result.dataset}, {result.split} split")
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(result.metrics):
        table.add_row(key, f"{result.metrics[key]:.4f}")
    Console().print(table)
    return 0
