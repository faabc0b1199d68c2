"""The launcher: pre-flight checks (``rnnbench.studies.checks``), then one worker process per
GPU or per share of cores.
"""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.config import ConfigError
from rnnbench.studies.checks import preflight
from rnnbench.studies.ledger import StudyRun
from rnnbench.studies.retry import Patience, patience_of
from rnnbench.studies.spec import StudySpec
from rnnbench.studies.storage import (
    STORAGE_ENV,
    StorageURL,
    check_storage,
    default_storage_url,
    storage_from_env,
)
from rnnbench.studies.threads import user_threads, with_threads

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


# ---------------------------------------------------------------------- worker plan
# A worker is a process of its own, not a task of a job scheduler nor a rank of a job it
# inherited from the launcher: with these set, Lightning would join a DDP trial to a process
# group that does not exist (SLURM_NTASKS makes it take the SLURM task layout, TORCHELASTIC_RUN_ID
# a torchrun one, LOCAL_RANK an external launcher's) and wait for ranks forever.
RANK_VARS = ("LOCAL_RANK", "NODE_RANK", "RANK", "GROUP_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE",
             "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS",
             "RNNBENCH_DDP_TRIAL")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity: a SLURM or taskset limit counts)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class WorkerPlan:
    """How many workers, and the environment each starts with.

    Attributes:
        count: Worker processes.
        threads: torch/OpenMP threads of each training process (a DDP rank is one).
        gpus: ``CUDA_VISIBLE_DEVICES`` of each worker (``gpus[k]`` for worker k), or empty on
            CPU.
        note: A warning for the user (GPUs shared or left idle, cores oversubscribed).
    """

    count: int
    threads: int
    gpus: list[str] = field(default_factory=list)  # CUDA_VISIBLE_DEVICES per worker
    note: str = ""

    def env(self, index: int, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of worker ``index``: ``base`` (default ``os.environ``) with its GPUs,
        its thread count and no inherited rank variables (see ``RANK_VARS``)."""
        env = dict(os.environ if base is None else base)
        for key in (*RANK_VARS, STORAGE_ENV):
            env.pop(key, None)
        for key in THREAD_VARS:
            env[key] = str(self.threads)
        env["RNNBENCH_WORKER_THREADS"] = str(self.threads)
        env["PYTHONUNBUFFERED"] = "1"
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[index % len(self.gpus)]
        return env


def _parse_visible(text: str) -> list[str]:
    """The GPUs CUDA shows for ``CUDA_VISIBLE_DEVICES=text``, by the driver's rules: a list of
    ordinals or of ``GPU-``/``MIG-`` UUIDs; the first invalid entry (``-1``, a word) ends it."""
    out: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        if item.startswith(("GPU-", "MIG-")):
            token = item
        else:
            digits = re.match(r"\+?(\d+)", item)
            if digits is None:
                break  # "-1", "", "none": CUDA stops here
            token = str(int(digits.group(1)))
        if token in out:
            raise ConfigError(f"CUDA_VISIBLE_DEVICES={text!r} names GPU {token} twice; CUDA "
                              "then shows no GPU at all")
        out.append(token)
    return out


def _visible_gpus() -> list[str]:
    """The GPU ids this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set (what the user
    or the scheduler allowed, kept as written: workers get a subset of it), else every GPU
    torch sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _parse_visible(visible)
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no CUDA build
        return []


def _devices_per_trial(devices: Any, gpus: list[str]) -> int:
    """How many devices (processes, under DDP) one trial takes, from ``trainer.devices``.

    ``-1`` takes every visible GPU (one worker); a list of GPU indices must be ``[0, ..., K-1]``
    because a worker sees only the GPUs it is pinned to, renumbered from 0.
    """
    if isinstance(devices, str):
        text = devices.strip()
        if text.lstrip("-").isdigit():
            devices = int(text)
        elif text == "auto":
            return 1  # Lightning: all of the worker's devices, i.e. its one GPU or one CPU
        else:
            devices = [int(x) for x in text.split(",") if x.strip()] if "," in text else text
    if isinstance(devices, bool) or not isinstance(devices, (int, list, tuple)):
        raise ConfigError(f"trainer.devices must be a count, -1, auto or a list of GPU "
                          f"indices; got {devices!r}")
    if isinstance(devices, (list, tuple)):
        if gpus and sorted(int(d) for d in devices) != list(range(len(devices))):
            raise ConfigError(
                f"trainer.devices={list(devices)} names GPU indices, but each study worker "
                f"sees only the GPUs it is pinned to, numbered from 0; write "
                f"trainer.devices={len(devices)} (and restrict the machine's GPUs with "
                "CUDA_VISIBLE_DEVICES)")
        return max(1, len(devices))
    if devices == -1:
        return max(1, len(gpus))
    if devices <= 0:
        raise ConfigError(f"trainer.devices must be positive, -1 or auto; got {devices}")
    return devices


def plan_workers(spec: StudySpec, workers: int | None = None, *,
                 cores: int | None = None, gpus: list[str] | None = None,
                 threads: int | None = None) -> WorkerPlan:
    """Places the workers of a study on this machine's GPUs and cores.

    GPU trainers (``accelerator`` gpu/cuda, or auto with a GPU visible): by default one worker
    per ``trainer.devices`` visible GPUs, each pinned with ``CUDA_VISIBLE_DEVICES``; with
    ``workers`` given, worker k takes the next group round-robin, so extra workers share
    GPUs (noted) and fewer leave GPUs idle (noted). On CPU: ``workers`` processes (default 1).
    Either way every training process (a DDP trial has ``devices`` of them) gets
    ``cores // (workers * devices)`` threads, because oversubscribed PyTorch processes slow
    each other down many times over.

    Args:
        spec: The study (its ``trainer`` section is read).
        workers: ``--workers``; ``None`` for the default.
        cores: Cores to split (default: this process's CPU affinity).
        gpus: GPU ids to hand out (default: ``CUDA_VISIBLE_DEVICES``, else all torch sees).
        threads: Threads per training process instead of the cores' split (``--threads``;
            see :func:`user_threads`).

    Raises:
        ConfigError: A GPU trainer with no visible GPU, a trial needing more GPUs than are
            visible, or a bad worker count or ``trainer.devices``.
    """
    if workers is not None and workers <= 0:
        raise ConfigError(f"--workers must be a positive integer, got {workers}")
    trainer = spec.config.get("trainer", {})
    acc = str(trainer.get("accelerator", "auto")).lower()
    cores = cores or available_cores()
    ids = (gpus if gpus is not None else _visible_gpus()) if acc in ("gpu", "cuda", "auto") \
        else []
    if acc in ("gpu", "cuda") and not ids:
        raise ConfigError(f"trainer.accelerator is {acc} but no GPU is visible; use "
                          "trainer.accelerator=cpu or run on a GPU machine")
    per = _devices_per_trial(trainer.get("devices", 1), ids)
    if not ids:
        # CPU (also accelerator auto without a GPU): every DDP rank is a process of its own.
        count = workers or 1
        note = ""
        if count * per > cores:
            note = (f"{count * per} training processes on {cores} core(s): each gets one "
                    "thread and they still compete; use at most --workers "
                    f"{max(1, cores // per)}")
        return with_threads(WorkerPlan(count, max(1, cores // (count * per)), [], note),
                             threads, cores, per)
    if per > len(ids):
        raise ConfigError(
            f"trainer.devices={per} needs {per} GPUs per trial but {len(ids)} are visible "
            f"({', '.join(ids)}); lower trainer.devices or make more GPUs visible")
    count = workers or len(ids) // per
    # Worker k takes the k-th group of `per` GPUs, wrapping round: with more workers than
    # groups every GPU still gets the same number of workers when the counts divide.
    groups = [",".join(ids[(k * per + j) % len(ids)] for j in range(per))
              for k in range(count)]
    note = ""
    if count * per > len(ids):
        note = (f"{count} workers x {per} GPU(s) share {len(ids)} visible GPU(s): trials "
                "will compete for GPU memory")
    elif count * per < len(ids):
        idle = ids[count * per:]
        note = (f"{count} worker(s) x {per} GPU(s) leave GPU(s) {', '.join(idle)} idle; "
                f"--workers {len(ids) // per} would use them")
    return with_threads(WorkerPlan(count, max(1, cores // (count * per)), groups, note),
                         threads, cores, per)


# ---------------------------------------------------------------------- launcher
@dataclass
class _Proc:
    index: int
    popen: subprocess.Popen
    log: Path
    done: bool = False


def worker_command(name: str, *, threads: int, index: int, output: Path) -> list[str]:
    """The command line of a local worker (the same ``study worker`` a remote node runs).

    It carries no storage URL: a command line is readable by every user of the machine and
    recorded by W&B, and the URL may hold a password. The worker reads it from
    ``RNNBENCH_STORAGE`` in its environment (see :func:`worker_env`).
    """
    return [sys.executable, "-m", "rnnbench", "study", "worker",
            "--study", name, "--threads", str(threads), "--parent-pid", str(os.getpid()),
            "--worker-index", str(index), "--output", str(output)]


def worker_env(plan: WorkerPlan, index: int, url: StorageURL) -> dict[str, str]:
    """The environment of local worker ``index``: the plan's, plus the storage URL."""
    return {**plan.env(index), STORAGE_ENV: url.text}


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def launch_study(
    spec: StudySpec,
    *,
    workers: int | None = None,
    storage: str | None = None,
    live: bool | None = None,
    console: Any = None,
    poll_s: float = 1.0,
    show_table: bool = True,
    threads: int | None = None,
) -> int:
    """Runs (or resumes) a study to the end: the body of ``rnnbench study run``.

    Args:
        show_table: Print the per-variant table at the end (``rnnbench study run`` leaves
            it to the report, which prints the same rows with their statistics).
        threads: Threads per training process (``--threads``); default
            ``OMP_NUM_THREADS`` when set, else the cores split between the workers.

    Returns:
        Exit code: 0 done (results written), 1 workers gave up before the budget was met
        or the storage stayed unreachable for longer than its patience, 130 stopped by
        Ctrl-C (re-running the same command resumes).

    Raises:
        ConfigError: Bad study file, storage or worker count (nothing is written then).
    """
    from rich.console import Console

    from rnnbench.studies.progress import StudyProgress
    from rnnbench.studies.results import collect, results_table, write_results

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and CI: wide enough for the results table
            console = Console(width=max(console.width, 140))
    spec = copy.deepcopy(spec)
    plan = plan_workers(spec, workers, threads=user_threads(threads))
    # A storage mistake (no driver, an unwritable path) fails before the slow pre-flight.
    url = check_storage(storage or storage_from_env() or spec.storage or
                        default_storage_url(spec.output_dir, plan.count))
    sizes = preflight(spec)
    run = StudyRun.create(spec, url)
    run.prepare()
    out_dir = spec.output_dir
    from rnnbench.studies.status import remember_study

    remember_study(spec.name, url, out_dir)  # `study status` / `report` NAME from anywhere
    (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    console.print(
        f"study [bold]{spec.name}[/bold]: {len(spec.variants)} variant(s) "
        f"({', '.join(v.name for v in spec.variants)}) x {spec.trials_per_variant} trials, "
        f"then {len(spec.seeds)} seed(s) each; metric {spec.metric} ({spec.direction})\n"
        f"storage {url.display}; {plan.count} worker(s), {plan.threads} thread(s) each"
        + (f", GPUs {plan.gpus}" if plan.gpus else "") + f"; logs in {out_dir}"
        + (f"\nmore workers, from any machine: {STORAGE_ENV}={url.display} rnnbench study "
           f"worker --study {spec.name}" if url.kind == "rdb" else ""),
        highlight=False)
    if plan.note:
        console.print(f"[yellow]note:[/yellow] {plan.note}", highlight=False)
    # study.baselines: fitted and scored here, before any worker (stored; resumed runs skip).
    from rnnbench.studies.baselines import run_baselines

    run_baselines(run, log=lambda line: console.print(line, highlight=False))

    procs: list[_Proc] = []
    state = {"signals": 0}
    respawns = 0

    def start(index: int) -> _Proc:
        log = out_dir / "logs" / f"worker-{index}.log"
        fh = open(log, "a")  # noqa: SIM115 - the child owns it
        fh.write(f"--- worker {index} started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        cmd = worker_command(spec.name, threads=plan.threads, index=index, output=out_dir)
        # A session of its own: Ctrl-C reaches the launcher only, which forwards it once.
        popen = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=worker_env(plan, index, url),
                                 start_new_session=True)
        fh.close()
        return _Proc(index, popen, log)

    def on_signal(signum: int, frame: Any) -> None:
        # Forward at once: first SIGINT (trials are recorded and re-queued), then SIGKILL.
        state["signals"] += 1
        sig = signal.SIGINT if state["signals"] == 1 else signal.SIGKILL
        for p in procs:
            if not p.done and p.popen.poll() is None:
                p.popen.send_signal(sig)

    failed: list[_Proc] = []  # workers that exited with an error, not swept yet

    def look(view: Any) -> None:
        """Sweeps the trials of the workers that failed and restarts them; shows progress."""
        nonlocal respawns
        if failed:
            for line in run.sweep(dead_pids=[p.popen.pid for p in failed]):
                view.log(f"failed and re-queued: {line}")
        for p in failed:
            if not run.all_done() and respawns < 2 * plan.count:
                respawns += 1
                view.log(f"restarting worker {p.index}")
                procs.append(start(p.index))
        failed.clear()
        view.update(alive=sum(not p.done for p in procs))

    def last_look(view: Any) -> None:
        """Sweeps what the workers left running (interrupted, after Ctrl-C)."""
        dead = [p.popen.pid for p in procs]
        for line in run.sweep(dead_pids=dead, interrupted=bool(state["signals"])):
            view.log(f"failed and re-queued: {line}")
        view.update(alive=0)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    forwarded = 0
    # A storage that cannot be reached (a database restarting) is waited for, workers and
    # all; once it has been unreachable for its patience the launcher stops them and exits 1.
    patience = Patience(run.storage, patience_of(run.storage, spec.grace_period),
                        pause_s=poll_s)
    gave_up = ""
    try:
        if not run.all_done():
            procs = [start(k) for k in range(plan.count)]
        with StudyProgress(run, workers=plan.count, sizes=sizes, console=console,
                           live=live) as view:
            while failed or any(not p.done for p in procs):
                if state["signals"] > forwarded:
                    forwarded = state["signals"]
                    view.log("stopping: the running trials are recorded as interrupted and "
                             "queued again (Ctrl-C again to kill the workers)" if forwarded == 1
                             else "killing the workers")
                time.sleep(poll_s)
                for p in procs:
                    if p.done or p.popen.poll() is None:
                        continue
                    p.done = True
                    rc = p.popen.returncode
                    if rc == 0 or state["signals"]:
                        continue
                    view.log(f"worker {p.index} (pid {p.popen.pid}) exited with "
                             f"{'signal ' + str(-rc) if rc < 0 else 'code ' + str(rc)}; "
                             f"last lines of {p.log}:\n{_tail(p.log)}")
                    failed.append(p)

                gave_up = patience.attempt(lambda: look(view))
                if gave_up:
                    break
            if gave_up:  # nothing can be recorded: stop the workers, sweep nothing
                on_signal(signal.SIGINT, None)
            elif procs:
                gave_up = patience.attempt(lambda: last_look(view), wait=False)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if gave_up:
        console.print(f"{url.redact(gave_up)}; the workers were told to stop. Once the storage "
                      "is back, re-run the same command to resume.", style="red",
                      highlight=False, markup=False)
        return 1
    if state["signals"]:
        console.print(f"stopped; the storage is consistent. Re-run the same command to "
                      f"resume study {spec.name}.")
        return 130
    if not run.all_done():
        console.print(f"[red]the workers exited before the budget was met[/red] (logs in "
                      f"{out_dir / 'logs'}); re-run the same command to resume.")
        return 1
    results = collect(run, sizes)
    paths = write_results(run, out_dir, sizes, results=results)
    if show_table:
        console.print(results_table(results))
    console.print(f"results: {paths['json']}, {paths['csv']}, {paths['trials']}",
                  highlight=False)
    return 0


__all__ = ["WorkerPlan", "available_cores", "launch_study", "plan_workers", "preflight",
           "user_threads", "worker_command", "worker_env"]
