"""Where studies stand, read from their storages: ``rnnbench study list`` and ``study status``.

Also the index of studies this user ran (``studies.json`` in the state folder), so that
``rnnbench study status NAME`` and ``rnnbench report NAME`` find a study from any folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from rnnbench.config import ConfigError
from rnnbench.studies.ledger import POPULATION_ATTR, StudyRun, Tally, rnnbench_studies
from rnnbench.studies.storage import (
    StorageURL,
    default_storage_url,
    open_storage,
    parse_storage_url,
)
from rnnbench.studies.trials import FINAL, SEARCH

STATE_ENV = "RNNBENCH_STATE_DIR"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


# ---------------------------------------------------------------------- the index
def index_path() -> Path:
    """``$RNNBENCH_STATE_DIR/studies.json``, else ``$XDG_STATE_HOME/rnnbench/...``, else
    ``~/.local/state/rnnbench/studies.json``."""
    folder = os.environ.get(STATE_ENV)
    if not folder:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        folder = str(Path(base) / "rnnbench")
    return Path(folder) / "studies.json"


def _read_index() -> dict[str, dict[str, str]]:
    try:
        data = json.loads(index_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember_study(name: str, url: StorageURL, folder: str | Path) -> None:
    """Records where study ``name`` lives (its output folder, and its storage when that is a
    file: a server URL may hold a password, which no file of ours keeps). Never fails."""
    entry = {"folder": str(Path(folder).resolve())}
    if url.path is not None:
        entry["storage"] = url.text
    try:
        path = index_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_index()
        data[name] = entry
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # an unwritable home folder must not stop a study


def find_study(name: str) -> dict[str, str] | None:
    """``{"folder", "storage"?}`` of a study recorded by :func:`remember_study`, if its folder
    still exists."""
    entry = _read_index().get(name)
    if not isinstance(entry, dict) or not Path(entry.get("folder", "")).is_dir():
        return None
    return entry


# ---------------------------------------------------------------------- one study
@dataclass
class VariantStatus:
    """One variant's trials (search and final re-runs together) and best search value."""

    name: str
    search: Tally
    final: Tally
    budget: int
    seeds: int
    running_epochs: list[int] = field(default_factory=list)  # last reported, per running run

    @property
    def counts(self) -> dict[str, int]:
        s, f = self.search, self.final
        return {"done": s.done + f.done, "running": s.running + f.running,
                "failed": s.failed + f.failed, "pruned": s.pruned + f.pruned,
                "waiting": s.waiting + s.orphans + f.waiting + f.orphans}

    @property
    def best(self) -> float | None:
        return None if self.search.best is None else float(self.search.best.value)

    def left(self, kind: str) -> int:
        """Runs of ``kind`` (search or final) this variant still needs."""
        done, want = ((self.search.done, self.budget) if kind == SEARCH
                      else (self.final.done, self.seeds))
        return max(0, want - done)


@dataclass
class StudyStatus:
    """Where one study stands.

    Attributes:
        state: ``done``, ``running`` (a trial is running), ``stopped`` (work is left and
            nothing runs) or ``new`` (nothing has run yet).
        mean_s: Mean cost in seconds of a finished search run and of a finished final run
            (``{"search": ..., "final": ...}``). A run trained in a population of K costs its
            wall time / K: the K shared it. A kind with no finished run is priced from its
            runs under way (time so far x max_epochs / last reported epoch; in
            ``projected``), else left out.
        eta_s: Seconds of work left at those means (a kind with none takes the other's),
            shared by the workers running now (``None`` while no run finished or reported
            an epoch).
    """

    name: str
    where: str
    metric: str
    direction: str
    variants: list[VariantStatus] = field(default_factory=list)
    workers: int = 0
    mean_s: dict[str, float] = field(default_factory=dict)
    max_epochs: int | None = None  # None when max_steps ends the runs
    projected: set[str] = field(default_factory=set)  # kinds priced from runs under way

    @property
    def mean_run_s(self) -> float | None:
        """The mean cost of a run of the kind left (search first), else of any run."""
        left = self.kinds_left
        return next((self.mean_s[k] for k in left if k in self.mean_s),
                    next(iter(self.mean_s.values()), None))

    @property
    def kinds_left(self) -> list[str]:
        """``search`` and/or ``final``: the kinds of run some variant still needs."""
        return [kind for kind in (SEARCH, FINAL) if any(v.left(kind) for v in self.variants)]

    @property
    def pace(self) -> str:
        """``9m12s a final run`` (the means of the kinds left, else of any)."""
        kinds = [k for k in self.kinds_left if k in self.mean_s] or list(self.mean_s)
        return ", ".join(f"{duration(self.mean_s[k])} a {k} run"
                         + (" (projected from runs under way)" if k in self.projected else "")
                         for k in kinds)

    @property
    def total(self) -> int:
        return sum(v.budget + v.seeds for v in self.variants)

    @property
    def done(self) -> int:
        return sum(min(v.search.done, v.budget) + min(v.final.done, v.seeds)
                   for v in self.variants)

    def count(self, key: str) -> int:
        return sum(v.counts[key] for v in self.variants)

    @property
    def state(self) -> str:
        if self.done >= self.total and not self.count("running"):
            return "done"
        if self.count("running"):
            return "running"
        return "stopped" if self.done else "new"

    @property
    def eta_s(self) -> float | None:
        if not self.mean_s or self.state == "done":
            return None
        fallback = next(iter(self.mean_s.values()))
        work = sum(v.left(kind) * self.mean_s.get(kind, fallback)
                   for v in self.variants for kind in (SEARCH, FINAL))
        return work / max(1, self.workers)

    @property
    def best(self) -> tuple[str, float] | None:
        """``(variant, value)`` of the best search value over every variant."""
        sign = -1.0 if self.direction == "maximize" else 1.0
        found = [(sign * v.best, v.name, v.best) for v in self.variants if v.best is not None]
        return (min(found)[1], min(found)[2]) if found else None


def study_status(run: StudyRun) -> StudyStatus:
    """Reads the status of an attached study (see :meth:`StudyRun.attach`)."""
    spec = run.spec
    out = StudyStatus(spec.name, run.url.display, spec.metric or "?",
                      spec.direction or "minimize")
    durations: dict[str, list[float]] = {SEARCH: [], FINAL: []}
    projected: dict[str, list[float]] = {SEARCH: [], FINAL: []}
    workers: set[str] = set()
    trainer = spec.config.get("trainer", {})
    steps = trainer.get("max_steps")
    out.max_epochs = spec.max_epochs if steps is None or int(steps) < 0 else None
    for v in spec.variants:
        running: list[int] = []
        for kind in (SEARCH, FINAL):
            for t in run.trials(v, kind):
                if t.state == TrialState.RUNNING:
                    workers.add(str(t.user_attrs.get("worker_id") or t.number))
                    epoch = max(t.intermediate_values, default=0)
                    running.append(epoch)
                    if epoch and out.max_epochs and t.datetime_start:
                        # a run under way: its pace so far, stretched to all its epochs
                        so_far = (datetime.now() - t.datetime_start).total_seconds()
                        shared = t.system_attrs.get(POPULATION_ATTR) or 1
                        projected[kind].append(so_far * out.max_epochs / epoch
                                               / max(1, int(shared)))
                elif t.state in _FINISHED and t.datetime_start and t.datetime_complete:
                    wall = (t.datetime_complete - t.datetime_start).total_seconds()
                    shared = t.system_attrs.get(POPULATION_ATTR) or 1
                    durations[kind].append(wall / max(1, int(shared)))
        out.variants.append(VariantStatus(v.name, run.tally(v, SEARCH), run.tally(v, FINAL),
                                          run.quota(SEARCH), run.quota(FINAL),
                                          sorted(running)))
    out.workers = len(workers)
    out.mean_s = {kind: sum(d) / len(d) for kind, d in durations.items() if d}
    for kind, d in projected.items():  # no run of that kind finished yet: the projection
        if d and kind not in out.mean_s:
            out.mean_s[kind] = sum(d) / len(d)
            out.projected.add(kind)
    return out


def statuses_in(url: str | StorageURL) -> list[StudyStatus]:
    """The status of every rnnbench study in one storage.

    Raises:
        ConfigError: The storage cannot be opened (StorageError).
    """
    parsed = url if isinstance(url, StorageURL) else parse_storage_url(url)
    names = sorted(rnnbench_studies(open_storage(parsed, create=False)))
    return [study_status(StudyRun.attach(parsed, name)) for name in names]


def storages_under(folder: str | Path) -> list[str]:
    """Storage URLs of the study folders directly under ``folder`` (and of ``folder``)."""
    root = Path(folder)
    if not root.is_dir():
        return []
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    return [default_storage_url(sub.resolve(), 1) for sub in folders
            if (sub / "study.journal").exists() or (sub / "study.db").exists()]


def locate(name: str, *, storage: str | None = None, folder: str | Path | None = None,
           runs_dir: str | Path = "runs") -> str:
    """The storage URL of study ``name``: ``storage``, else the storage file in ``folder``,
    in ``{runs_dir}/{name}``, or where this user last ran it (the index).

    Raises:
        ConfigError: No storage found; the message says where it looked.
    """
    if storage:
        return storage
    tried = []
    # --dir: the study's folder, or a folder of studies (runs/) holding it
    candidates = [Path(folder), Path(folder) / name] if folder else [Path(runs_dir) / name]
    entry = find_study(name) if not folder else None
    if entry:
        if entry.get("storage"):
            return entry["storage"]
        candidates.append(Path(entry["folder"]))
    for where in candidates:
        tried.append(str(where))
        if (where / "study.journal").exists() or (where / "study.db").exists():
            return default_storage_url(where.resolve(), 1)
    index = "" if folder else (f", and the index of studies run here ({index_path()}) has "
                                "no storage file for it")
    raise ConfigError(
        f"no study storage for {name!r}: no study.db or study.journal in "
        f"{' or '.join(tried)}{index}. Give the storage with --storage URL (or "
        "RNNBENCH_STORAGE), or the study's folder with --dir FOLDER"
    )


# ---------------------------------------------------------------------- rendering
def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``12s``; ``-`` for ``None``."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s" if m else f"{sec}s"


def list_table(statuses: list[StudyStatus]):
    """A Rich table: one row per study with its state and counts."""
    from rich.table import Table

    table = Table(title="rnnbench studies", title_justify="left")
    for col in ("study", "state", "variants", "runs done", "running", "failed", "pruned",
                "best", "ETA", "storage"):
        table.add_column(col, justify="left" if col in ("study", "state", "storage")
                         else "right")
    for s in statuses:
        best = s.best
        table.add_row(s.name, s.state, str(len(s.variants)), f"{s.done}/{s.total}",
                      str(s.count("running")), str(s.count("failed")), str(s.count("pruned")),
                      f"{best[1]:.4g} ({best[0]})" if best else "-",
                      duration(s.eta_s) if s.state == "running" else "-", s.where)
    return table


def running_cell(v: VariantStatus, max_epochs: int | None) -> str:
    """``3 at epoch 12/20``: the variant's running runs and the last epoch they reported."""
    n = v.counts["running"]
    if not n or not v.running_epochs:
        return str(n)
    seen = sorted(set(v.running_epochs))
    of = f"/{max_epochs}" if max_epochs else ""
    if len(seen) == 1:
        return f"{n} at epoch {seen[0]}{of}"
    return f"{n} at epochs {seen[0]}-{seen[-1]}{of}"


def status_table(s: StudyStatus):
    """A Rich table: one row per variant (done, running, failed, pruned, waiting, best)."""
    from rich.table import Table

    eta = (f"about {duration(s.eta_s)} left at {s.pace} on "
           f"{max(1, s.workers)} worker(s)" if s.eta_s is not None and s.state == "running"
           else f"{duration(s.eta_s)} of work left at {s.pace}, no "
           "worker running" if s.eta_s is not None else "no run finished yet"
           if s.state != "done" else "finished")
    table = Table(title=f"study {s.name} ({s.state}) | {s.where} | {s.done} of {s.total} "
                        f"runs done | {eta}", title_justify="left")
    for col in ("variant", "done", "running", "failed", "pruned", "waiting", "search",
                "final runs", f"best {s.metric}"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in s.variants:
        c = v.counts
        table.add_row(v.name, str(c["done"]), running_cell(v, s.max_epochs), str(c["failed"]),
                      str(c["pruned"]), str(c["waiting"]),
                      f"{min(v.search.done, v.budget)}/{v.budget}",
                      f"{min(v.final.done, v.seeds)}/{v.seeds}",
                      f"{v.best:.6g}" if v.best is not None else "-")
    return table


def as_dict(s: StudyStatus) -> dict[str, Any]:
    """A JSON-ready form of a status (``--json``)."""
    return {"study": s.name, "state": s.state, "storage": s.where, "metric": s.metric,
            "direction": s.direction, "done": s.done, "total": s.total,
            "workers": s.workers, "mean_run_s": s.mean_run_s, "mean_s": s.mean_s,
            "eta_s": s.eta_s,
            "read_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "max_epochs": s.max_epochs,
            "variants": [{"variant": v.name, **v.counts, "best": v.best,
                          "running_epochs": v.running_epochs,
                          "search_done": min(v.search.done, v.budget), "budget": v.budget,
                          "final_done": min(v.final.done, v.seeds), "seeds": v.seeds}
                         for v in s.variants]}


__all__ = ["STATE_ENV", "StudyStatus", "VariantStatus", "as_dict", "find_study",
           "index_path", "list_table", "locate", "remember_study", "status_table",
           "statuses_in", "storages_under", "study_status"]
