"""The ledger of a study in its storage: exact per-variant budgets, tallies, lost workers.

How the budget stays exact under any number of workers: ``rnnbench study run`` creates every
trial a variant will ever get up front, as WAITING trials (``trials_per_variant`` search
slots, one final re-run per seed). Workers never create trials: they only move a WAITING
trial to RUNNING, which both storages make atomic (a row lock in an RDB; the first RUNNING
record in the journal's append-only log wins), so each slot runs exactly once. The only other
trials ever added are retries of a trial whose worker died or was interrupted, and only the
process that won the RUNNING -> FAIL transition of that trial adds its retry.
"""

from __future__ import annotations

import copy
import math
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from rnnbench._private import stale_trial_ids
from rnnbench.config import ConfigError
from rnnbench.studies.attrs import (
    RESULTS_ATTR,
    SPEC_ATTR,
    SUMMARY_ATTR,
    rnnbench_studies,
    set_study_attr,
    stored_spec,
    study_attr,
    summary_line,
)
from rnnbench.studies.retry import storage_up_for
from rnnbench.studies.samplers import make_pruner
from rnnbench.studies.spec import StudySpec, Variant
from rnnbench.studies.storage import StorageURL, open_storage, parse_storage_url
from rnnbench.studies.trials import FINAL, SEARCH

HEARTBEAT_ATTR = "rnnbench:heartbeat"
# A trial trained as one of K population members (a system attribute: its user attributes
# stay those of a solo trial); reports split the population's wall time among its members.
POPULATION_ATTR = "rnnbench:population"
# fail_kind of a FAIL trial
LOST, INTERRUPTED, NONFINITE = "lost", "interrupted", "nonfinite"
ERROR, NO_BEST = "error", "no_best"
HOST = socket.gethostname()
_COPIED_SYSTEM_ATTRS = ("grid_id", "search_space", "fixed_params")


@dataclass
class Tally:
    """Where one Optuna study (a variant's search, or its final re-runs) stands."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    orphans: int = 0  # lost/interrupted FAIL trials whose retry is not recorded yet
    retried: int = 0  # FAIL trials replaced by a retry (not counted toward the budget)
    best: FrozenTrial | None = None

    @property
    def done(self) -> int:
        """Trials that count toward the budget: complete + pruned + failed for good."""
        return self.complete + self.pruned + self.failed

    @property
    def pending(self) -> int:
        return self.running + self.waiting + self.orphans


def retryable(trial: FrozenTrial, retries: int) -> bool:
    """Whether a FAIL trial is to be run again (interrupted always; lost up to ``retries``)."""
    kind = trial.user_attrs.get("fail_kind")
    if kind == INTERRUPTED:
        return True
    return kind == LOST and int(trial.user_attrs.get("retry", 0)) < retries


def tally(trials: Iterable[FrozenTrial], *, retries: int, direction: str | None) -> Tally:
    trials = list(trials)
    superseded = {t.user_attrs.get("retried_from") for t in trials} - {None}
    out = Tally()
    sign = -1.0 if direction == "maximize" else 1.0
    for t in trials:
        if t.state == TrialState.COMPLETE:
            out.complete += 1
            if t.value is not None and math.isfinite(t.value) and (
                out.best is None or (sign * t.value, t.number) < (sign * out.best.value,
                                                                   out.best.number)
            ):
                out.best = t
        elif t.state == TrialState.PRUNED:
            out.pruned += 1
        elif t.state == TrialState.FAIL:
            if t.number in superseded:
                out.retried += 1
            elif retryable(t, retries):
                out.orphans += 1
            else:
                out.failed += 1
        elif t.state == TrialState.RUNNING:
            out.running += 1
        elif t.state == TrialState.WAITING:
            out.waiting += 1
    return out


# ---------------------------------------------------------------------- the study handle
def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if a == b else [prefix or "(root)"]


class StudyRun:
    """A study in its storage: the root study holding the spec, and per variant a search
    study ``{name}/{variant}`` and a final study ``{name}/{variant}/final``."""

    def __init__(self, spec: StudySpec, storage: Any, url: StorageURL) -> None:
        self.spec = spec
        # The storage itself takes our direct writes; each Study wraps an RDB storage in
        # Optuna's trial cache for reads, which re-reads every unfinished trial, so writes
        # made here are seen there.
        self.storage = storage
        self.url = url
        self.studies: dict[str, tuple[optuna.Study, optuna.Study]] = {}
        self._study_ids: dict[str, int] = {}
        self._trial_ids: dict[tuple[int, int], int] = {}  # (study id, number) -> trial id
        pruner = make_pruner(spec)
        for v in spec.variants:
            search = optuna.load_study(study_name=self.study_name(v, SEARCH), storage=storage,
                                       pruner=pruner, sampler=optuna.samplers.RandomSampler())
            final = optuna.load_study(study_name=self.study_name(v, FINAL), storage=storage,
                                      pruner=optuna.pruners.NopPruner(),
                                      sampler=optuna.samplers.RandomSampler())
            self.studies[v.name] = (search, final)

    def study_name(self, variant: Variant, kind: str) -> str:
        base = f"{self.spec.name}/{variant.name}"
        return base if kind == SEARCH else f"{base}/final"

    def study(self, variant: Variant, kind: str) -> optuna.Study:
        return self.studies[variant.name][0 if kind == SEARCH else 1]

    def trials(self, variant: Variant, kind: str, states=None) -> list[FrozenTrial]:
        study = self.study(variant, kind)
        return sorted(study.get_trials(deepcopy=False, states=states), key=lambda t: t.number)

    def study_id(self, study: optuna.Study) -> int:
        """The storage's id of ``study`` (what the storage API takes)."""
        if study.study_name not in self._study_ids:
            self._study_ids[study.study_name] = \
                self.storage.get_study_id_from_name(study.study_name)
        return self._study_ids[study.study_name]

    def trial_id(self, study: optuna.Study, number: int) -> int:
        """The storage's id of trial ``number`` of ``study`` (ids never change: cached)."""
        key = (self.study_id(study), number)
        if key not in self._trial_ids:
            self._trial_ids[key] = self.storage.get_trial_id_from_study_id_trial_number(*key)
        return self._trial_ids[key]

    def tally(self, variant: Variant, kind: str) -> Tally:
        return tally(self.trials(variant, kind), retries=self.spec.retries,
                     direction=self.spec.direction)

    def quota(self, kind: str) -> int:
        return self.spec.trials_per_variant if kind == SEARCH else len(self.spec.seeds)

    def search_done(self, variant: Variant) -> bool:
        t = self.tally(variant, SEARCH)
        return t.pending == 0 and t.done >= self.quota(SEARCH)

    def all_done(self) -> bool:
        for v in self.spec.variants:
            for kind in (SEARCH, FINAL):
                t = self.tally(v, kind)
                if t.pending or t.done < self.quota(kind):
                    return False
        return True

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, spec: StudySpec, url: str | StorageURL) -> StudyRun:
        """Opens the storage and creates (or, resuming, checks and updates) the studies.

        Raises:
            ConfigError: The storage holds this study from an incompatible study file.
            StorageError: The storage cannot be opened.
        """
        parsed = url if isinstance(url, StorageURL) else parse_storage_url(url)
        storage = open_storage(parsed, heartbeat_interval=spec.heartbeat_interval,
                               grace_period=spec.grace_period)
        stored = stored_spec(storage, spec.name)
        if stored is not None:
            old = StudySpec.from_dict(stored)
            changed = _diff(old.fingerprint(), spec.fingerprint())
            if changed:
                raise ConfigError(
                    f"study {spec.name!r} in {parsed.display} was started from a different "
                    f"study file (changed: {', '.join(changed[:8])}); resuming it would mix "
                    "trials of two searches. Restore those settings, or give the study a new "
                    "name (study.name=...)"
                )
            if spec.trials_per_variant < old.trials_per_variant:
                raise ConfigError(
                    f"study {spec.name!r} already has {old.trials_per_variant} trials per "
                    f"variant; the budget can grow but not shrink (got "
                    f"{spec.trials_per_variant})"
                )
        direction = spec.direction or "minimize"
        root = optuna.create_study(study_name=spec.name, storage=storage, direction=direction,
                                   load_if_exists=True)
        set_study_attr(storage, storage.get_study_id_from_name(spec.name), SPEC_ATTR,
                       spec.to_dict())
        root.set_user_attr(SUMMARY_ATTR, summary_line(spec))
        for v in spec.variants:
            for kind in (SEARCH, FINAL):
                optuna.create_study(study_name=f"{spec.name}/{v.name}" + (
                    "/final" if kind == FINAL else ""), storage=storage, direction=direction,
                    load_if_exists=True)
        return cls(spec, storage, parsed)

    @classmethod
    def attach(cls, url: str | StorageURL, name: str, *, wait_s: float = 0.0) -> StudyRun:
        """Joins a study that ``rnnbench study run`` created (what a remote worker does).

        Args:
            url: The study's storage.
            name: The study name.
            wait_s: Wait up to this long for the study to be created (SLURM starts every
                task at once: workers may come up before the launcher has made the study).

        Raises:
            ConfigError: No such study in the storage.
            StorageError: The storage cannot be opened.
        """
        parsed = url if isinstance(url, StorageURL) else parse_storage_url(url)
        deadline = time.monotonic() + wait_s
        while parsed.path is not None and not parsed.path.exists():
            if time.monotonic() >= deadline:
                raise ConfigError(f"storage file {parsed.path} does not exist; start the "
                                  "study with rnnbench study run first")
            time.sleep(1.0)
        storage = open_storage(parsed, create=False)
        while True:
            try:
                stored = stored_spec(storage, name)
            except ConfigError:  # the launcher made the study but not yet its spec
                if time.monotonic() >= deadline:
                    raise
                stored = None
            if stored is not None or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        if stored is None:
            known = sorted(rnnbench_studies(storage))
            raise ConfigError(
                f"storage {parsed.display} holds no rnnbench study {name!r} (studies there: "
                f"{', '.join(known) or 'none'}); start it with rnnbench study run STUDY.yaml "
                f"--storage {parsed.display}"
            )
        spec = StudySpec.from_dict(stored)
        if parsed.heartbeat_native:  # reopen with the study's heartbeat settings
            storage = open_storage(parsed, heartbeat_interval=spec.heartbeat_interval,
                                   grace_period=spec.grace_period, create=False)
        return cls(spec, storage, parsed)

    # ------------------------------------------------------------------ budget
    def prepare(self) -> dict[str, int]:
        """Creates the WAITING trials that are missing (first run, grown budget, new seeds)
        and re-queues lost trials whose retry was never recorded. Idempotent.

        Run by the launcher before it starts workers; one launcher per study at a time.

        Returns:
            ``{variant: trials added}``.
        """
        added: dict[str, int] = {}
        for v in self.spec.variants:
            n = 0
            for kind in (SEARCH, FINAL):
                study = self.study(v, kind)
                trials = self.trials(v, kind)
                superseded = {t.user_attrs.get("retried_from") for t in trials} - {None}
                for t in trials:
                    if (t.state == TrialState.FAIL and t.number not in superseded
                            and retryable(t, self.spec.retries)):
                        self.requeue(study, t)
                        n += 1
                t = self.tally(v, kind)
                if kind == SEARCH:
                    slots = [x.user_attrs.get("slot", -1) for x in trials]
                    nxt = max(slots, default=-1) + 1
                    for k in range(self.quota(SEARCH) - (t.done + t.pending)):
                        study.add_trial(optuna.create_trial(
                            state=TrialState.WAITING,
                            user_attrs={"variant": v.name, "kind": SEARCH, "slot": nxt + k}))
                        n += 1
                else:
                    have = {x.user_attrs.get("seed") for x in trials}
                    for seed in self.spec.seeds:
                        if seed not in have:
                            study.add_trial(optuna.create_trial(
                                state=TrialState.WAITING,
                                user_attrs={"variant": v.name, "kind": FINAL, "seed": seed}))
                            n += 1
            added[v.name] = n
        return added

    def requeue(self, study: optuna.Study, failed: FrozenTrial) -> bool:
        """Queues ``failed`` again with the same parameters (and grid point) unless its retry
        is queued already (after an outage two processes may each believe they failed it)."""
        if any(t.user_attrs.get("retried_from") == failed.number
               for t in study.get_trials(deepcopy=False)):
            return False
        keep = ("variant", "kind", "slot", "seed", "source_trial")
        attrs = {k: failed.user_attrs[k] for k in keep if k in failed.user_attrs}
        cause = failed.user_attrs.get("fail_kind", LOST)
        attrs["retried_from"] = failed.number
        attrs["retry_cause"] = cause
        attrs["retry"] = int(failed.user_attrs.get("retry", 0)) + (1 if cause == LOST else 0)
        system = {k: failed.system_attrs[k] for k in _COPIED_SYSTEM_ATTRS
                  if k in failed.system_attrs}
        study.add_trial(optuna.create_trial(
            state=TrialState.WAITING, params=dict(failed.params),
            distributions=dict(failed.distributions), user_attrs=attrs, system_attrs=system))
        return True

    def fail_and_requeue(self, study: optuna.Study, trial_id: int, *, kind: str,
                         reason: str) -> bool:
        """Marks a RUNNING trial FAIL (``fail_kind`` = ``kind``) and queues its retry when
        allowed. Returns ``False`` if another process finished the trial first."""
        storage = self.storage
        frozen = storage.get_trial(trial_id)
        if frozen.state.is_finished():
            return False
        probe = copy.copy(frozen)
        probe.user_attrs = {**frozen.user_attrs, "fail_kind": kind}
        again = retryable(probe, self.spec.retries)
        if kind == LOST and not again:
            tries = frozen.user_attrs.get("retry", 0)
            reason += f"; not retried (already retried {tries} time(s))"
        try:
            storage.set_trial_user_attr(trial_id, "fail_kind", kind)
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            return False  # another sweeper (or the worker itself) got there first
        if again:
            self.requeue(study, storage.get_trial(trial_id))
        return True

    # ------------------------------------------------------------------ lost trials
    def sweep(self, *, dead_pids: Iterable[int] = (), interrupted: bool = False) -> list[str]:
        """Fails every RUNNING trial whose worker is gone, and queues its retry.

        A worker is gone when it ran on this host and its process no longer exists (or was
        reused), when its heartbeat is older than the grace period, or when it claimed a trial
        and never recorded itself. ``dead_pids``: pids known dead (e.g. killed by the
        launcher); ``interrupted``: record those as interrupted, not lost.

        Returns:
            ``"{variant} #{number}: {reason}"`` for each trial failed here.
        """
        dead = set(dead_pids)
        now = time.time()
        out = []
        for v in self.spec.variants:
            for kind in (SEARCH, FINAL):
                study = self.study(v, kind)
                running = self.trials(v, kind, states=(TrialState.RUNNING,))
                if not running:
                    continue
                stale = self._stale_numbers(study)
                # Right after a storage outage (these reads may have waited one out) every
                # heartbeat looks old: none could beat. Judge by heartbeats and unstarted claims
                # once the storage has been back for a grace period (dead local pids at once).
                timely = storage_up_for(self.storage) >= self.spec.grace_period
                for t in running:
                    reason = self._lost_reason(t, now, stale, dead, timely=timely)
                    if reason is None:
                        continue
                    how = INTERRUPTED if interrupted and t.user_attrs.get("worker_pid") in dead \
                        else LOST
                    if self.fail_and_requeue(study, self.trial_id(study, t.number), kind=how,
                                             reason=reason):
                        out.append(f"{v.name} #{t.number}: {reason}")
        return out

    def _stale_numbers(self, study: optuna.Study) -> set[int]:
        """Numbers of the trials of ``study`` whose Optuna heartbeat is stale (RDB only)."""
        if not self.url.heartbeat_native:
            return set()
        try:
            ids = stale_trial_ids(self.storage, self.study_id(study))
            return {self.storage.get_trial_number_from_id(i) for i in ids}
        except Exception:  # noqa: BLE001 - a sweep must never stop a worker
            return set()

    def _lost_reason(self, t: FrozenTrial, now: float, stale: set[int],
                     dead: set[int], *, timely: bool = True) -> str | None:
        pid = t.user_attrs.get("worker_pid")
        host = t.user_attrs.get("worker_host")
        who = f"worker pid {pid} on {host}"
        if pid is not None and host == HOST:
            if pid in dead or not alive(int(pid), t.user_attrs.get("worker_start")):
                return f"{who} died while running it (killed or crashed)"
            return None
        if not timely:
            return None
        if t.number in stale:
            return f"no heartbeat from {who} for over {self.spec.grace_period} s"
        beat = t.system_attrs.get(HEARTBEAT_ATTR)
        started = t.datetime_start.timestamp() if t.datetime_start else now
        if not self.url.heartbeat_native and beat is not None and \
                now - float(beat) > self.spec.grace_period:
            return f"no heartbeat from {who} for over {self.spec.grace_period} s"
        if pid is None and now - started > self.spec.grace_period:
            return "claimed by a worker that never started it (worker lost)"
        return None


def proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return False  # a zombie: killed, not yet reaped by its parent
    return start is None or fields[19] == start


# ---------------------------------------------------------------------- heartbeat
class Heartbeat:
    """Beats for one running trial from a daemon thread until stopped."""

    def __init__(self, run: StudyRun, trial_id: int) -> None:
        self.run, self.trial_id = run, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="heartbeat")

    def _beat(self) -> None:
        if self.run.url.heartbeat_native:
            self.run.storage.record_heartbeat(self.trial_id)
        else:
            self.run.storage.set_trial_system_attr(self.trial_id, HEARTBEAT_ATTR, time.time())

    def _loop(self) -> None:
        while True:
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - finished trial or a storage hiccup
                pass
            if self._stop.wait(self.run.spec.heartbeat_interval):
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


__all__ = [
    "ERROR", "FINAL", "HEARTBEAT_ATTR", "HOST", "INTERRUPTED", "LOST", "NONFINITE", "NO_BEST",
    "RESULTS_ATTR", "SEARCH", "SPEC_ATTR", "SUMMARY_ATTR", "Heartbeat", "StudyRun", "Tally",
    "alive", "proc_start", "retryable", "rnnbench_studies", "set_study_attr", "stored_spec",
    "study_attr", "summary_line", "tally",
]
