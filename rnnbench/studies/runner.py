"""Study workers: exact per-variant budgets, claiming trials, training them, crash recovery.

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
import json
import math
import os
import signal
import socket
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from rnnbench.experiment import ConfigError, validate_config
from rnnbench.studies.spec import StudySpec, Variant
from rnnbench.studies.storage import StorageURL, open_storage, parse_storage_url

SPEC_ATTR = "rnnbench:spec"
RESULTS_ATTR = "rnnbench:results"
HEARTBEAT_ATTR = "rnnbench:heartbeat"
SEARCH, FINAL = "search", "final"
# fail_kind of a FAIL trial
LOST, INTERRUPTED, NONFINITE = "lost", "interrupted", "nonfinite"
ERROR, NO_BEST = "error", "no_best"
DDP_ENV = "RNNBENCH_DDP_TRIAL"
HOST = socket.gethostname()
_COPIED_SYSTEM_ATTRS = ("grid_id", "search_space", "fixed_params")


def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


_quiet_optuna()


# ---------------------------------------------------------------------- samplers, pruners
class _GridSampler(optuna.samplers.GridSampler):
    # The budget decides when a variant is done; Study.stop() outside optimize() would raise.
    def after_trial(self, study, trial, state, values) -> None:  # noqa: D102
        return None


def trial_seed(spec: StudySpec, variant: Variant, number: int) -> int:
    """The sampler seed of one trial: fixed by (study seed, variant, trial number), so a
    study is reproducible with one worker and no two workers share a random stream."""
    base = int(spec.sampler.get("seed", 0) or 0)
    return (base * 1_000_003 + zlib.crc32(variant.name.encode()) + number) % (2**31 - 1)


def make_sampler(spec: StudySpec, variant: Variant, number: int):
    """A fresh Optuna sampler for one trial of ``variant`` (see :func:`trial_seed`)."""
    opts = {k: v for k, v in spec.sampler.items() if k not in ("name", "seed")}
    name = spec.sampler["name"]
    try:
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=trial_seed(spec, variant, number), **opts)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=trial_seed(spec, variant, number), **opts)
        # Every worker must shuffle the grid the same way: one seed for the whole variant.
        return _GridSampler(spec.space_for(variant).grid(),
                            seed=int(spec.sampler.get("seed", 0) or 0), **opts)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"study.sampler ({name}): {err}") from None


def make_pruner(spec: StudySpec):
    """The pruner of the search studies (each variant is pruned against itself only)."""
    opts = {k: v for k, v in spec.pruner.items() if k != "name"}
    name = spec.pruner["name"]
    try:
        if name == "none":
            return optuna.pruners.NopPruner()
        if name == "median":
            return optuna.pruners.MedianPruner(**opts)
        if "max_resource" not in opts and spec.max_epochs:
            opts["max_resource"] = spec.max_epochs  # steps reported are epochs 1..max_epochs
        return optuna.pruners.HyperbandPruner(**opts)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"study.pruner ({name}): {err}") from None


# ---------------------------------------------------------------------- trial configs
def trial_config(spec: StudySpec, variant: Variant, values: dict[str, Any], *, seed: int,
                 kind: str = SEARCH) -> dict[str, Any]:
    """The run config of one trial: the study's config, the variant, the sampled values.

    Raises:
        ConfigError: A sampled value makes an invalid config.
    """
    cfg = spec.space_for(variant).apply(spec.config, values)
    cfg["model"] = {**cfg.get("model", {}), **variant.model()}
    cfg["seed"] = int(seed)
    cfg.setdefault("logging", {})["progress_bar"] = False
    ckpt = dict(cfg.get("checkpoint") or {})
    # Search trials are compared on their reported metric and need no files; final re-runs
    # keep their best epoch so that the test split is evaluated there.
    ckpt["enabled"] = kind == FINAL
    cfg["checkpoint"] = ckpt
    cfg.pop("description", None)
    validate_config(cfg)
    return cfg


def all_values(spec: StudySpec, variant: Variant, params: dict[str, Any]) -> dict[str, Any]:
    """Searched values from ``params`` plus the fixed entries of the variant's space."""
    space = spec.space_for(variant)
    return {name: (params[name] if p.searched else copy.deepcopy(p.value))
            for name, p in space.params.items() if not p.searched or name in params}


# ---------------------------------------------------------------------- accounting
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
        # One shared wrapper (an RDB gets Optuna's trial cache) for the studies and for us.
        self.storage = storage = optuna.storages.get_storage(storage)
        self.url = url
        self.studies: dict[str, tuple[optuna.Study, optuna.Study]] = {}
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
        return sorted(self.storage.get_all_trials(study._study_id, deepcopy=False,
                                                  states=states), key=lambda t: t.number)

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
        stored = _stored_spec(storage, spec.name)
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
        root.set_user_attr(SPEC_ATTR, spec.to_dict())
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
                stored = _stored_spec(storage, name)
            except ConfigError:  # the launcher made the study but not yet its spec
                if time.monotonic() >= deadline:
                    raise
                stored = None
            if stored is not None or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        if stored is None:
            known = [s.study_name for s in storage.get_all_studies()
                     if SPEC_ATTR in s.user_attrs]
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
                        self._retry(study, t)
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

    def _retry(self, study: optuna.Study, failed: FrozenTrial) -> None:
        """Queues ``failed`` again with the same parameters (and grid point)."""
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
            self._retry(study, storage.get_trial(trial_id))
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
                stale = set()
                if self.url.heartbeat_native and hasattr(self.storage, "_get_stale_trial_ids"):
                    try:
                        stale = set(self.storage._get_stale_trial_ids(study._study_id))
                    except Exception:  # noqa: BLE001 - a sweep must never stop a worker
                        stale = set()
                for t in running:
                    reason = self._lost_reason(t, now, stale, dead)
                    if reason is None:
                        continue
                    how = INTERRUPTED if interrupted and t.user_attrs.get("worker_pid") in dead \
                        else LOST
                    if self.fail_and_requeue(study, t._trial_id, kind=how, reason=reason):
                        out.append(f"{v.name} #{t.number}: {reason}")
        return out

    def _lost_reason(self, t: FrozenTrial, now: float, stale: set[int],
                     dead: set[int]) -> str | None:
        pid = t.user_attrs.get("worker_pid")
        host = t.user_attrs.get("worker_host")
        who = f"worker pid {pid} on {host}"
        if pid is not None and host == HOST:
            if pid in dead or not _alive(int(pid), t.user_attrs.get("worker_start")):
                return f"{who} died while running it (killed or crashed)"
            return None
        if t._trial_id in stale:
            return f"no heartbeat from {who} for over {self.spec.grace_period} s"
        beat = t.system_attrs.get(HEARTBEAT_ATTR)
        started = t.datetime_start.timestamp() if t.datetime_start else now
        if not self.url.heartbeat_native and beat is not None and \
                now - float(beat) > self.spec.grace_period:
            return f"no heartbeat from {who} for over {self.spec.grace_period} s"
        if pid is None and now - started > self.spec.grace_period:
            return "claimed by a worker that never started it (worker lost)"
        return None


def _stored_spec(storage: Any, name: str) -> dict[str, Any] | None:
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    attrs = storage.get_study_user_attrs(study_id)
    if SPEC_ATTR not in attrs:
        raise ConfigError(f"the storage already holds an Optuna study named {name!r} that "
                          "rnnbench did not create; choose another study.name")
    return attrs[SPEC_ATTR]


def _proc_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def _alive(pid: int, start: str | None) -> bool:
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
class _Heartbeat:
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

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# ---------------------------------------------------------------------- the worker
@dataclass
class TrialOutcome:
    variant: str
    kind: str
    number: int
    state: str
    value: float | None = None
    reason: str = ""


@dataclass
class Worker:
    """Claims WAITING trials of one study and trains them, one at a time, until the budget
    of every variant is spent (then exits) or it is stopped.

    Args:
        run: The study (see :meth:`StudyRun.attach`).
        output_dir: Where trial logs go (``{output_dir}/trials/...``, ``.../final/...``).
        worker_id: A label for logs and trial attributes.
        log: Where progress lines go.
        poll_s: Seconds between looks at the storage while waiting for work.
    """

    run: StudyRun
    output_dir: Path
    worker_id: str = ""
    log: Callable[[str], None] = print
    poll_s: float = 1.0
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: list[TrialOutcome] = field(default_factory=list)
    _in_trial: bool = field(default=False, init=False, repr=False)
    _interrupting: bool = field(default=False, init=False, repr=False)

    # ------------------------------------------------------------------ signals
    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM: finish nothing new; interrupt the running trial, which is recorded
        FAIL (interrupted) and queued again, so the storage stays consistent."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop.set()
        if self._in_trial and not self._interrupting:
            self._interrupting = True
            raise KeyboardInterrupt

    def watch_parent(self, parent_pid: int) -> None:
        """Stops (interrupting the current trial) when the launching process goes away."""

        def loop() -> None:
            while not self.stop.wait(2.0):
                if os.getppid() != parent_pid:
                    self.log("launcher exited: stopping")
                    os.kill(os.getpid(), signal.SIGINT)
                    return

        threading.Thread(target=loop, daemon=True, name="parent-watch").start()

    # ------------------------------------------------------------------ loop
    def loop(self, max_trials: int | None = None) -> list[TrialOutcome]:
        """Runs trials until the study is done, ``max_trials`` ran, or :attr:`stop` is set."""
        run = self.run
        last_sweep = 0.0
        while not self.stop.is_set():
            if time.monotonic() - last_sweep > min(5.0, run.spec.heartbeat_interval):
                for line in run.sweep():
                    self.log(f"lost trial failed and re-queued: {line}")
                last_sweep = time.monotonic()
            claim = self.claim()
            if claim is not None:
                self.outcomes.append(self.run_trial(*claim))
                if max_trials and len(self.outcomes) >= max_trials:
                    break
                continue
            if run.all_done():
                break
            self.stop.wait(self.poll_s)
        return self.outcomes

    def claim(self) -> tuple[Variant, str, optuna.Study, FrozenTrial] | None:
        """Moves one WAITING trial to RUNNING (atomically; see the module docstring).

        Search trials first, least-advanced variant first; a variant's final re-runs only
        once its search is over.
        """
        run = self.run
        tallies = {v.name: run.tally(v, SEARCH) for v in run.spec.variants}
        order = sorted(run.spec.variants,
                       key=lambda v: tallies[v.name].done + tallies[v.name].running)
        for v in order:
            if tallies[v.name].waiting:
                got = self._claim_in(v, SEARCH)
                if got:
                    return got
        for v in run.spec.variants:
            t = tallies[v.name]
            if t.pending == 0 and t.done >= run.quota(SEARCH):
                got = self._claim_in(v, FINAL)
                if got:
                    return got
        return None

    def _claim_in(self, v: Variant, kind: str):
        run = self.run
        for t in run.trials(v, kind, states=(TrialState.WAITING,)):
            try:
                if run.storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                    return v, kind, run.study(v, kind), run.storage.get_trial(t._trial_id)
            except UpdateFinishedTrialError:
                continue
        return None

    # ------------------------------------------------------------------ one trial
    def run_trial(self, variant: Variant, kind: str, study: optuna.Study,
                  frozen: FrozenTrial) -> TrialOutcome:
        """Trains one claimed trial and records its outcome in the storage."""
        run, spec, storage = self.run, self.run.spec, self.run.storage
        tid, number = frozen._trial_id, frozen.number
        for key, value in (("worker_host", HOST), ("worker_pid", os.getpid()),
                           ("worker_start", _proc_start(os.getpid())),
                           ("worker_id", self.worker_id)):
            storage.set_trial_user_attr(tid, key, value)
        what = f"final seed {frozen.user_attrs.get('seed')}" if kind == FINAL else "trial"
        label = f"{variant.name} {what} #{number}"
        self.log(f"start {label}")
        with _Heartbeat(run, tid):
            outcome = self._train(variant, kind, study, frozen)
        self.log(f"{outcome.state.lower()} {label}" + (
            f": {spec.metric} = {outcome.value:.6g}" if outcome.value is not None else "")
            + (f" ({outcome.reason})" if outcome.reason else ""))
        return outcome

    def _finish(self, study, trial, outcome: TrialOutcome, attrs: dict[str, Any]) -> TrialOutcome:
        storage = self.run.storage
        try:
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial._trial_id, key, value)
            if outcome.state == "COMPLETE":
                study.tell(trial, outcome.value)
            else:
                study.tell(trial, state=TrialState[outcome.state])
        except UpdateFinishedTrialError:
            outcome.reason = "another process declared this trial lost; result discarded"
        return outcome

    def _train(self, variant: Variant, kind: str, study: optuna.Study,
               frozen: FrozenTrial) -> TrialOutcome:
        from rnnbench.experiment import run as run_experiment
        from rnnbench.module import NonFiniteLossError
        from rnnbench.studies.pruning import NonFiniteMetricError, PruningCallback

        run, spec, storage = self.run, self.run.spec, self.run.storage
        tid, number = frozen._trial_id, frozen.number
        out = TrialOutcome(variant.name, kind, number, "FAIL")
        seed = int(frozen.user_attrs.get("seed", spec.config.get("seed", 0) or 0))
        if kind == FINAL:
            study.sampler = optuna.samplers.RandomSampler(seed=seed)
            if not frozen.params and "fixed_params" not in frozen.system_attrs:
                counts = run.tally(variant, SEARCH)
                if counts.best is None:
                    out.reason = (f"no search trial of {variant.name} completed "
                                  f"({counts.failed} failed, {counts.pruned} pruned): "
                                  "nothing to re-run")
                    return self._finish(study, optuna.Trial(study, tid), out,
                                        {"fail_kind": NO_BEST, "fail_reason": out.reason})
                storage.set_trial_system_attr(tid, "fixed_params", dict(counts.best.params))
                storage.set_trial_user_attr(tid, "source_trial", counts.best.number)
        else:
            study.sampler = make_sampler(spec, variant, number)
        trial = optuna.Trial(study, tid)
        sub = "final" if kind == FINAL else "trials"
        tag = f"{number:04d}" + (f"-seed{seed}" if kind == FINAL else "")
        run_dir = self.output_dir / sub / variant.name / tag
        attrs: dict[str, Any] = {}
        wandb_logger = None
        env_before = dict(os.environ)
        try:
            values = spec.space_for(variant).suggest(trial)
            cfg = trial_config(spec, variant, values, seed=seed, kind=kind)
            storage.set_trial_user_attr(tid, "run_dir", str(run_dir))
            pruning = PruningCallback(trial, spec.metric, direction=spec.direction or "minimize")
            wandb_logger = self._wandb_logger(cfg, variant, kind, number, seed, values)
            callbacks = [pruning, _TrialRecorder(storage, tid, wandb_logger)]
            if _multi_device(cfg):
                os.environ[DDP_ENV] = json.dumps({
                    "storage": run.url.text, "study": spec.name, "trial_id": tid,
                    "variant": variant.name, "kind": kind, "seed": seed,
                    "run_dir": str(run_dir)})
            self._in_trial = True
            try:
                if self.stop.is_set():  # stopped while the trial was being set up
                    raise KeyboardInterrupt
                result = run_experiment(cfg, callbacks=callbacks,
                                        loggers=[wandb_logger] if wandb_logger else [],
                                        test=kind == FINAL, run_dir=run_dir)
            finally:
                self._in_trial = False
            value = pruning.best_value
            if value is None:
                value = result.metrics.get(spec.metric)
            metrics = {k: v for k, v in result.metrics.items()
                       if k.startswith(("val/", "test/")) and math.isfinite(v)}
            if value is not None and math.isfinite(value) and spec.metric in metrics:
                # The run's logged metric is its last epoch's; the trial's value (and the
                # checkpoint the test split is scored on) is its best epoch's.
                metrics[f"{spec.metric}_last"] = metrics[spec.metric]
                metrics[spec.metric] = float(value)
            attrs.update(metrics=metrics, wall_time_s=round(result.wall_time_s, 3),
                         num_parameters=result.num_parameters, hidden_size=result.hidden_size,
                         best_epoch=pruning.best_epoch)
            if value is None or not math.isfinite(value):
                out.reason = f"{spec.metric} was never logged as a finite number"
                attrs.update(fail_kind=ERROR, fail_reason=out.reason)
            else:
                out.state, out.value = "COMPLETE", float(value)
        except optuna.TrialPruned as err:
            out.state, out.reason = "PRUNED", str(err)
            attrs["prune_reason"] = str(err)
        except (NonFiniteLossError, NonFiniteMetricError) as err:
            out.reason = str(err)
            attrs.update(fail_kind=NONFINITE, fail_reason=out.reason)
        except BaseException as err:  # noqa: BLE001 - every outcome is recorded
            if self.stop.is_set() or not isinstance(err, Exception):
                # Ctrl-C / SIGTERM / launcher gone (Lightning turns Ctrl-C into SystemExit):
                # not the trial's fault, so it is queued again without using a retry.
                self.stop.set()
                out.reason = "interrupted (Ctrl-C, SIGTERM or the launcher stopped)"
                attrs.update(fail_kind=INTERRUPTED, fail_reason=out.reason)
                self._finish(study, trial, out, attrs)
                try:
                    run._retry(study, storage.get_trial(tid))
                except Exception:  # noqa: BLE001 - `study run` re-queues it on the next run
                    pass
                return out
            # An error may quote the storage URL (a driver's message): never its password.
            out.reason = run.url.redact(f"{type(err).__name__}: {err}".strip())
            attrs.update(fail_kind=ERROR, fail_reason=out.reason[:2000])
            try:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(run.url.redact(traceback.format_exc()))
            except OSError:
                pass
        finally:
            if wandb_logger is not None:
                attrs.update(_wandb_attrs(wandb_logger))
                import wandb

                wandb.finish()
            _restore_env(env_before)
        return self._finish(study, trial, out, attrs)

    def _wandb_logger(self, cfg, variant: Variant, kind: str, number: int, seed: int,
                      values: dict[str, Any]):
        from rnnbench.studies.tracking import make_wandb_logger, wandb_settings

        if wandb_settings(cfg) is None:
            return None
        spec = self.run.spec
        config = {
            **values, "study": spec.name, "variant": variant.name, **variant.model(),
            "trial": number, "kind": kind, "seed": seed, "metric": spec.metric,
            "config": cfg,
        }
        name = f"{variant.name}#{number}" + (f"-seed{seed}" if kind == FINAL else "")
        for mode in (None, "offline"):
            logger = make_wandb_logger(cfg, job_type=variant.name, group=spec.name, name=name,
                                       tags=(kind,), config=config, mode=mode)
            try:
                logger.experiment  # noqa: B018 - start the run now, not inside fit
                return logger
            except Exception as err:  # noqa: BLE001 - W&B trouble must not fail a trial
                import wandb

                wandb.finish()
                self.log(f"W&B run could not start ({type(err).__name__}: {err}); "
                         + ("retrying offline" if mode is None else "training without W&B"))
        return None


def _wandb_attrs(logger: Any) -> dict[str, Any]:
    exp = getattr(logger, "_experiment", None)
    if exp is None:
        return {}
    try:
        return {"wandb_run_id": exp.id, "wandb_dir": str(Path(exp.dir).parent)}
    except Exception:  # noqa: BLE001 - a disabled run has no files
        return {}


def _multi_device(cfg: dict[str, Any]) -> bool:
    devices = cfg.get("trainer", {}).get("devices", 1)
    num_nodes = cfg.get("trainer", {}).get("num_nodes", 1)
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    return (isinstance(devices, int) and devices > 1) or devices == -1 or (num_nodes or 1) > 1


def _restore_env(before: dict[str, str]) -> None:
    # Lightning's DDP launcher sets MASTER_ADDR, LOCAL_RANK, WORLD_SIZE... in this process; a
    # later trial would take them for an externally launched job and wait for ranks forever.
    for key in list(os.environ):
        if key not in before:
            del os.environ[key]
    for key, value in before.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001
        pass


class _TrialRecorder(L.Callback):
    """Writes the model's size to the trial (and the W&B config) when fitting starts."""

    def __init__(self, storage: Any, trial_id: int, wandb_logger: Any) -> None:
        self.storage, self.trial_id, self.wandb_logger = storage, trial_id, wandb_logger

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        size = {"num_parameters": int(pl_module.num_parameters()),
                "hidden_size": int(pl_module.hparams.hidden_size)}
        for key, value in size.items():
            self.storage.set_trial_user_attr(self.trial_id, key, value)
        if self.wandb_logger is not None:
            self.wandb_logger.experiment.config.update(size, allow_val_change=True)


def run_ddp_rank() -> int:
    """Entry of a DDP rank > 0 that Lightning started by re-running ``study worker``.

    Rank 0 recorded the trial's parameters before fitting; this rank reads them (read-only:
    only rank 0 writes to the storage) and runs the same config, following rank 0's pruning
    decisions.
    """
    from rnnbench.experiment import run as run_experiment
    from rnnbench.studies.pruning import PruningCallback

    info = json.loads(os.environ[DDP_ENV])
    parsed = parse_storage_url(info["storage"])
    storage = open_storage(parsed, create=False)
    spec = StudySpec.from_dict(_stored_spec(storage, info["study"]) or {})
    variant = spec.variant(info["variant"])
    frozen = storage.get_trial(int(info["trial_id"]))
    params = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
    cfg = trial_config(spec, variant, all_values(spec, variant, params), seed=info["seed"],
                       kind=info["kind"])
    try:
        run_experiment(cfg, callbacks=[PruningCallback(None, spec.metric,
                                                       direction=spec.direction or "minimize")],
                       test=info["kind"] == FINAL, run_dir=info["run_dir"])
    except optuna.TrialPruned:
        pass
    return 0


__all__ = [
    "FINAL", "SEARCH", "StudyRun", "Tally", "TrialOutcome", "Worker", "all_values",
    "make_pruner", "make_sampler", "retryable", "run_ddp_rank", "tally", "trial_config",
    "trial_seed",
]
