"""``rnnbench study run`` and ``rnnbench study worker`` (imports nothing heavy until run)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from rnnbench.cli.base import CLIError, IntermixedParser

RUN_HELP = """\
Run (or resume) a comparison study: every variant gets the same number of trials, then the
best configuration of each is re-run over the study's seeds. Re-running the same command
resumes the study; Ctrl-C stops it cleanly.

examples:
  rnnbench study run configs/study/jsb_tiny.yaml --workers 2
  RNNBENCH_STORAGE=postgresql+psycopg://user:pw@db-host:5432/rnnbench \\
      rnnbench study run configs/study/jsb_chung2014.yaml study.trials_per_variant=50
"""

WORKER_HELP = """\
Join a running study from this machine (or a SLURM task): claim waiting trials one at a
time until the budget of every variant is spent. Pin the GPU with CUDA_VISIBLE_DEVICES.

The storage URL comes from --storage or, better where it holds a password, from the
environment variable RNNBENCH_STORAGE: a command line is visible to every user of the
machine (ps) and would be recorded by W&B. Workers started by `rnnbench study run` get it
that way.

example:
  export RNNBENCH_STORAGE=postgresql+psycopg://user:pw@db-host:5432/rnnbench
  CUDA_VISIBLE_DEVICES=0 rnnbench study worker --study jsb_chung2014
"""


def _check_paper(paper: dict[str, str]) -> None:
    """``study.paper`` must name published figures (known to the report, not the study)."""
    from rnnbench.config import ConfigError
    from rnnbench.report.published import load_published, rows_of

    known = sorted({(p.source, p.dataset) for p in load_published()})
    if (paper["source"], paper["dataset"]) not in known:
        raise ConfigError(f"study.paper {paper['source']}:{paper['dataset']} has no published "
                          "figures; known: " + ", ".join(f"{s}:{d}" for s, d in known))
    rows = rows_of(paper["source"], paper["dataset"])
    if paper.get("against", rows[0]) not in rows:
        raise ConfigError(f"study.paper.against {paper['against']!r}: {paper['source']} has no "
                          f"{paper['dataset']} row of that name; its rows: {', '.join(rows)}")


def _print_results_table(folder: Path) -> None:
    """The launcher's per-variant table from ``results.json`` (when the report fails)."""
    import json

    from rich.console import Console

    from rnnbench.studies.results import results_table

    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        return
    Console(width=200).print(results_table(results))


def _cmd_run(args: argparse.Namespace) -> int:
    from rnnbench.config import ConfigError

    try:
        from rnnbench.studies.spec import load_study

        overrides = list(args.overrides)
        if args.name:
            overrides.append(f"study.name={args.name}")
        if args.workers is not None and args.workers <= 0:
            raise ConfigError(f"--workers must be a positive integer, got {args.workers}")
        spec = load_study(args.study_file, overrides, quick=args.quick)
        if spec.paper:
            _check_paper(spec.paper)
        from rnnbench.studies.pool import launch_study  # torch: only once the file is sound
        # One table at the end: the report's (the same rows with their statistics), or
        # the launcher's when there is no report.
        code = launch_study(spec, workers=args.workers, storage=args.storage,
                            live=False if args.no_live else None, show_table=args.no_report,
                            threads=args.threads)
    except ConfigError as err:
        raise CLIError(str(err)) from None
    if code == 0 and not args.no_report:
        # The comparison table beside the published numbers, and the plots.
        from rnnbench.report.render import report_study
        from rnnbench.report.tables import ReportError
        from rnnbench.studies.storage import storage_from_env

        storage = args.storage or storage_from_env() or spec.storage
        try:
            report_study(spec.name, storage=storage, folder=spec.output_dir)
        except ReportError as err:
            if not err.table_shown:  # one final table: the report's, when it printed one
                _print_results_table(spec.output_dir)
            print(f"rnnbench study run: report skipped: {err}", file=sys.stderr)
    return code


def _cmd_worker(args: argparse.Namespace) -> int:
    if os.environ.get("LOCAL_RANK", "0") not in ("", "0") and \
            "RNNBENCH_DDP_TRIAL" in os.environ:
        from rnnbench.studies.worker import run_ddp_rank

        return run_ddp_rank()
    threads = args.threads or int(os.environ.get("RNNBENCH_WORKER_THREADS", "0") or 0)
    if threads:
        if threads <= 0:
            raise CLIError(f"--threads must be a positive integer, got {threads}")
        # Before torch is imported: OpenMP reads these once.
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[key] = str(threads)
    from rnnbench.config import ConfigError

    try:
        import torch

        if threads:
            torch.set_num_threads(threads)
        from rnnbench.studies.ledger import HOST, StudyRun
        from rnnbench.studies.storage import STORAGE_ENV, storage_from_env
        from rnnbench.studies.worker import Worker

        url = args.storage or storage_from_env()
        if not url:
            raise ConfigError(f"no storage: give --storage URL or set {STORAGE_ENV}=URL (the "
                              "environment keeps a password off the command line)")
        # Read once: processes this worker starts (W&B, DDP ranks) need not inherit it.
        os.environ.pop(STORAGE_ENV, None)
        run = StudyRun.attach(url, args.study, wait_s=args.wait)
    except ConfigError as err:
        raise CLIError(str(err)) from None
    output = Path(args.output) if args.output else run.spec.output_dir
    label = f"{HOST}:{os.getpid()}" + (f"/w{args.worker_index}"
                                       if args.worker_index is not None else "")

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} [{label}] {message}", flush=True)

    worker = Worker(run, output_dir=output, worker_id=label, log=log)
    worker.install_signal_handlers()
    if args.parent_pid:
        worker.watch_parent(args.parent_pid)
    log(f"joined study {run.spec.name} ({run.url.display}); "
        f"{torch.get_num_threads()} thread(s)")
    outcomes = worker.loop(max_trials=args.max_trials)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    log(f"done: ran {len(outcomes)} trial(s) " + str(counts))
    if worker.gave_up:  # the storage stayed unreachable: its trial is swept and run again
        return 1
    return 130 if worker.stop.is_set() and any(
        o.reason.startswith("interrupted") for o in outcomes) else 0


LIST_HELP = """\
List the rnnbench studies in the study folders under FOLDER (default: runs, each holding a
study.db or study.journal) or in one storage, with their state (new, running, stopped,
done), runs done of the budget, running, failed and pruned trials, the best value so far
and, while workers run, the time left.

examples:
  rnnbench study list
  rnnbench study list /scratch/me/runs
  RNNBENCH_STORAGE=postgresql+psycopg://user:pw@db-host:5432/rnnbench rnnbench study list
"""

STATUS_HELP = """\
Where one study stands, per variant: runs done, running, failed, pruned and waiting, the
search budget and final re-runs spent, the best value so far, and the time left at the mean
duration of the finished runs shared by the workers running now. Read-only: safe while the
study runs. NAME is found in --storage, --dir, runs/NAME, or where `rnnbench study run`
last ran it on this machine.

examples:
  rnnbench study status chung2014_jsb
  rnnbench study status chung2014_jsb --json
  rnnbench study status big_sweep --storage postgresql+psycopg://user:pw@db-host/rnnbench
"""


def _cmd_list(args: argparse.Namespace) -> int:
    from rnnbench.config import ConfigError

    try:
        from rnnbench.studies.status import list_table, statuses_in, storages_under
        from rnnbench.studies.storage import storage_from_env

        storage = args.storage or (None if args.folder else storage_from_env())
        folder = args.folder or "runs"
        if storage is None and not Path(folder).is_dir():
            raise ConfigError(f"folder {folder} does not exist; give the folder that holds "
                              "the study folders (logging.dir), or --storage URL")
        urls = [storage] if storage else storages_under(folder)
        statuses = [s for url in urls for s in statuses_in(url)]
    except ConfigError as err:
        raise CLIError(str(err)) from None
    if args.json:
        import json

        from rnnbench.studies.status import as_dict

        print(json.dumps([as_dict(s) for s in statuses], indent=1))
        return 0
    if not statuses:
        print(f"no rnnbench study in {storage or Path(folder).resolve()}")
        return 0
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else 200).print(list_table(statuses))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from rnnbench.config import ConfigError

    if args.storage and args.dir:
        raise CLIError("give either --storage URL or --dir FOLDER, not both")
    try:
        from rnnbench.studies.ledger import StudyRun
        from rnnbench.studies.status import as_dict, locate, status_table, study_status
        from rnnbench.studies.storage import storage_from_env

        storage = args.storage or (None if args.dir else storage_from_env())
        url = locate(args.name, storage=storage, folder=args.dir)
        status = study_status(StudyRun.attach(url, args.name))
    except ConfigError as err:
        raise CLIError(str(err)) from None
    if args.json:
        import json

        print(json.dumps(as_dict(status), indent=1))
        return 0
    from rich.console import Console

    Console(width=None if sys.stdout.isatty() else 200).print(status_table(status))
    return 0


def _add_list_status(ssub: Any, fmt: Any) -> None:
    """``study list`` and ``study status`` (read-only views of studies)."""
    ls = ssub.add_parser("list", help="the studies in a folder or a storage, with state",
                         description=LIST_HELP, formatter_class=fmt)
    ls.add_argument("folder", nargs="?", default=None,
                    help="folder holding study folders (default: runs)")
    ls.add_argument("--storage", default=None, metavar="URL",
                    help="list the studies in this storage instead (default: "
                    "$RNNBENCH_STORAGE when no folder is given)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_cmd_list)
    st = ssub.add_parser("status", help="per-variant progress, best value and ETA of a study",
                         description=STATUS_HELP, formatter_class=fmt)
    st.add_argument("name", metavar="NAME", help="the study name")
    st.add_argument("--storage", default=None, metavar="URL",
                    help="the study's storage (default: $RNNBENCH_STORAGE if set)")
    st.add_argument("--dir", default=None, metavar="FOLDER",
                    help="the study's output folder ({logging.dir}/{name})")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=_cmd_status)


def add_parser(sub: Any) -> None:
    """Adds ``study run``, ``worker``, ``list`` and ``status`` to the ``rnnbench`` command."""

    p = sub.add_parser("study", help="Optuna comparison studies (run, worker, list, status)",
                       description="Optuna comparison studies of recurrent variants.")
    ssub = p.add_subparsers(dest="study_command", metavar="SUBCOMMAND",
                            parser_class=IntermixedParser)
    ssub.required = True
    fmt = argparse.RawDescriptionHelpFormatter

    r = ssub.add_parser("run", help="run or resume a study with N local workers",
                        description=RUN_HELP, formatter_class=fmt)
    r.add_argument("study_file", help="study YAML, e.g. configs/study/jsb_tiny.yaml")
    r.add_argument("overrides", nargs="*",
                   help="section.key=value overrides, e.g. study.trials_per_variant=20")
    r.add_argument("--workers", "-j", type=int, default=None,
                   help="worker processes (default: one per visible GPU; on CPU 1). On CPU "
                   "the cores are split between them")
    r.add_argument("--storage", default=None,
                   help="sqlite:///PATH.db, journal:PATH.journal or postgresql+psycopg://... "
                   "(default: $RNNBENCH_STORAGE, then the study file's, else "
                   "{logging.dir}/{name}/study.db for one worker and study.journal for "
                   "several). Workers get it through their environment, never their command "
                   "line")
    r.add_argument("--name", default=None, help="study name (default: study.name or the "
                   "file name)")
    r.add_argument("--no-report", action="store_true",
                   help="skip the report (tables beside published numbers, plots) at the end")
    r.add_argument("--quick", action="store_true",
                   help="apply the file's quick: section: a short version of the same study")
    r.add_argument("--no-live", action="store_true",
                   help="print progress lines instead of the live table")
    r.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch/OpenMP threads of each training process (default: "
                   "OMP_NUM_THREADS when set, else the cores split between the workers)")
    r.set_defaults(func=_cmd_run)
    _add_list_status(ssub, fmt)

    w = ssub.add_parser("worker", help="join a running study (another machine, SLURM)",
                        description=WORKER_HELP, formatter_class=fmt)
    w.add_argument("--storage", default=None,
                   help="the study's storage URL (default: $RNNBENCH_STORAGE, which keeps a "
                   "password off the command line)")
    w.add_argument("--study", required=True, help="the study name")
    w.add_argument("--threads", type=int, default=None,
                   help="torch/OpenMP threads (default: OMP_NUM_THREADS or all cores)")
    w.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for the study to be created (workers started "
                   "together with the launcher, e.g. as SLURM tasks)")
    w.add_argument("--max-trials", type=int, default=None,
                   help="stop after this many trials (default: until the study is done)")
    w.add_argument("--output", default=None,
                   help="folder for trial logs (default: {logging.dir}/{name})")
    w.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    w.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    w.set_defaults(func=_cmd_worker)


__all__ = ["add_parser"]
