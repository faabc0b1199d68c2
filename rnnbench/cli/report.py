"""``rnnbench report``: the comparison table and figures of one study (imports lazily)."""

from __future__ import annotations

import argparse
from typing import Any

FORMATS = ("terminal", "markdown", "csv", "latex", "html")

HELP = """\
Report one comparison study: one row per variant with its size, best validation value and
the hyper-parameters that won it, final test metric (mean +- std over the seeds, 95%
t-interval, Welch's verdict against the best variant), trial counts, wall time and
throughput, optionally beside a paper's numbers, and the study's baselines (study.baselines)
with each row's verdict against them; plus learning curves, optimisation history, parameter
importance (from 8 complete search trials per variant) and metric vs size (PNG + SVG), all
gathered in report.md and in report.html, one self-contained page (figures embedded, table
sortable) that opens offline. An unfinished study is flagged, with the command that resumes
it.

STUDY is a study name (looked up in runs/STUDY/, or in --storage / --dir) or a study output
folder holding study.db, study.journal or results.json.

examples:
  rnnbench report jsb_tiny
  rnnbench report runs/jsb_chung2014 --paper chung2014:jsb_chorales --format terminal,latex
  rnnbench report jsb_chung2014 --storage postgresql+psycopg://user:pw@db-host:5432/rnnbench \\
      --out paper/tables --no-plots
"""



def _formats(text: str) -> list[str]:
    chosen = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(f"unknown format(s) {', '.join(unknown) or '(none)'}; choose from "
                         f"{', '.join(FORMATS)} (comma-separated)")
    return chosen


def run(args: argparse.Namespace) -> int:
    from rnnbench.cli.base import CLIError
    from rnnbench.report.render import report_study
    from rnnbench.report.tables import ReportError, parse_paper

    try:
        formats = _formats(args.format)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.storage and args.dir:
        raise CLIError("give either --storage URL or --dir FOLDER, not both")
    from rnnbench.studies.storage import storage_from_env

    try:
        paper = parse_paper(args.paper) if args.paper else None
        # Like study run/worker: RNNBENCH_STORAGE keeps a password off the command line.
        storage = args.storage or (None if args.dir else storage_from_env())
        report_study(args.study, storage=storage, folder=args.dir, formats=formats,
                     plots=args.plots, paper=paper, out=args.out)
    except ReportError as err:
        raise CLIError(str(err)) from None
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="tables and figures of a comparison study",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study", metavar="STUDY",
                   help="study name (runs/STUDY/, or in --storage / --dir) or study folder")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--storage", default=None, metavar="URL",
                       help="the study's storage URL (sqlite:///..., journal:..., "
                       "postgresql+psycopg://...; default: $RNNBENCH_STORAGE if set)")
    where.add_argument("--dir", default=None, metavar="RUN_FOLDER",
                       help="the study's output folder ({logging.dir}/{name})")
    p.add_argument("--format", default=",".join(FORMATS),
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the files (default: STUDY_FOLDER/report)")
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                   help="render the figures, PNG and SVG (default: on)")
    p.add_argument("--paper", default=None, metavar="SOURCE:DATASET[:ROW]",
                   help="show published test figures beside ours, e.g. chung2014:jsb_chorales; "
                   "with :ROW (bai2018:jsb_chorales:tcn) every trained variant is held against "
                   "that one published row (default: the study's study.paper)")
    p.set_defaults(func=run)


