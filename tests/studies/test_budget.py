"""Exact per-variant budgets, atomic claims, lost-worker sweeps and retries (no training)."""

from __future__ import annotations

import multiprocessing
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from rnnbench.experiment import ConfigError
from rnnbench.studies.ledger import HEARTBEAT_ATTR, StudyRun
from rnnbench.studies.trials import FINAL, SEARCH
from rnnbench.studies.worker import Worker


def _spec(tiny, *overrides):
    return tiny("study.metric=val/nll", "study.direction=minimize", *overrides)


def _states(run, variant, kind):
    return [t.state for t in run.trials(variant, kind)]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _claim_as(run, pid, host=None):
    """Claims one trial and records a (dead or foreign) worker as its owner."""
    variant, kind, study, frozen = Worker(run, output_dir=None).claim()
    tid = run.trial_id(study, frozen.number)
    run.storage.set_trial_user_attr(tid, "worker_pid", pid)
    run.storage.set_trial_user_attr(tid, "worker_host", host or "vm-elsewhere"
                                    if host else __import__("socket").gethostname())
    return variant, kind, study, frozen, tid


def test_prepare_creates_the_budget_once(tiny, tmp_path):
    spec = _spec(tiny)
    run = StudyRun.create(spec, f"journal:{tmp_path}/s.journal")
    assert run.prepare() == {"rnn_tanh": 5, "lstm": 5, "gru": 5}
    for v in spec.variants:
        assert _states(run, v, SEARCH) == [TrialState.WAITING] * 3
        assert [t.user_attrs["seed"] for t in run.trials(v, FINAL)] == [1, 2]
    assert run.prepare() == {"rnn_tanh": 0, "lstm": 0, "gru": 0}
    # resuming from the same file changes nothing; a grown budget adds only the difference
    again = StudyRun.create(_spec(tiny, "study.trials_per_variant=5", "study.seeds=[1, 2, 7]"),
                            run.url)
    assert again.prepare() == {"rnn_tanh": 3, "lstm": 3, "gru": 3}
    assert [t.user_attrs["slot"] for t in again.trials(spec.variants[0], SEARCH)] == \
        [0, 1, 2, 3, 4]


def test_resume_refuses_a_different_search(tiny, tmp_path):
    url = f"journal:{tmp_path}/s.journal"
    StudyRun.create(_spec(tiny), url).prepare()
    with pytest.raises(ConfigError, match="budget can grow but not shrink"):
        StudyRun.create(_spec(tiny, "study.trials_per_variant=2"), url)
    with pytest.raises(ConfigError, match=r"changed: .*space\.lr\.high"):
        StudyRun.create(_spec(tiny, "study.space.lr.high=0.5"), url)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(f"{tmp_path}/s.journal"))
    optuna.create_study(study_name="foreign", storage=storage)
    with pytest.raises(ConfigError, match="rnnbench did not create"):
        StudyRun.create(_spec(tiny, "study.name=foreign"), url)
    with pytest.raises(ConfigError, match="holds no rnnbench study 'nope'"):
        StudyRun.attach(url, "nope")


def _claim_all(url: str, name: str, queue) -> None:
    run = StudyRun.attach(url, name)
    worker = Worker(run, output_dir=None)
    got = []
    while (claim := worker.claim()) is not None:
        got.append((claim[0].name, claim[1], claim[3].number))
    queue.put(got)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_concurrent_claims_never_run_a_slot_twice(tiny, tmp_path, kind):
    url = f"journal:{tmp_path}/s.journal" if kind == "journal" else f"sqlite:///{tmp_path}/s.db"
    spec = _spec(tiny, "study.trials_per_variant=6")
    StudyRun.create(spec, url).prepare()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, spec.name, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [c for _ in procs for c in queue.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
    # every search slot claimed exactly once; finals wait for their variant's search
    assert len(claimed) == len(set(claimed)) == 18
    assert {c[1] for c in claimed} == {SEARCH}


def test_dead_worker_trial_fails_and_is_retried_once(tiny, tmp_path):
    spec = _spec(tiny, "study.variants=[lstm]")
    run = StudyRun.create(spec, f"journal:{tmp_path}/s.journal")
    run.prepare()
    lstm = spec.variants[0]
    _, _, _, first, _ = _claim_as(run, _dead_pid())
    lost = run.sweep()
    assert len(lost) == 1 and "died while running it" in lost[0]
    assert run.sweep() == []  # nothing twice
    trials = run.trials(lstm, SEARCH)
    failed = trials[first.number]
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_kind"] == "lost"
    retry = [t for t in trials if t.user_attrs.get("retried_from") == first.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert retry[0].user_attrs["retry"] == 1 and retry[0].user_attrs["slot"] == \
        first.user_attrs["slot"]
    t = run.tally(lstm, SEARCH)
    assert (t.retried, t.waiting, t.failed, t.done) == (1, 3, 0, 0)
    # the retry's worker dies too: FAIL for good (retries: 1), counted toward the budget
    for _ in range(3):
        v, kind, study, frozen, tid = _claim_as(run, _dead_pid())
        if frozen.user_attrs.get("retried_from") is not None:
            break
        study.tell(frozen.number, 1.0)
    run.sweep()
    final = run.storage.get_trial(tid)
    assert final.state == TrialState.FAIL and "not retried" in final.user_attrs["fail_reason"]
    t = run.tally(lstm, SEARCH)
    assert (t.failed, t.retried, t.pending) == (1, 1, 0)
    assert t.done == spec.trials_per_variant


def test_orphaned_failure_is_requeued_by_prepare(tiny, tmp_path):
    # A sweeper killed between marking a trial FAIL and queueing its retry leaves an orphan.
    spec = _spec(tiny, "study.variants=[gru]")
    run = StudyRun.create(spec, f"journal:{tmp_path}/s.journal")
    run.prepare()
    _, _, _, _, tid = _claim_as(run, _dead_pid())
    run.storage.set_trial_user_attr(tid, "fail_kind", "lost")
    run.storage.set_trial_state_values(tid, TrialState.FAIL)
    assert run.tally(spec.variants[0], SEARCH).orphans == 1
    assert not run.all_done()
    run.prepare()
    t = run.tally(spec.variants[0], SEARCH)
    assert (t.orphans, t.retried, t.waiting) == (0, 1, 3)


def test_stale_heartbeat_fails_remote_trials(tiny, tmp_path):
    for url in (f"sqlite:///{tmp_path}/s.db", f"journal:{tmp_path}/s.journal"):
        spec = _spec(tiny, "study.variants=[gru]", "study.heartbeat_interval=1",
                     "study.grace_period=2")
        run = StudyRun.create(spec, url)
        run.prepare()
        _, _, _, _, tid = _claim_as(run, 12345, host="another-node")
        if run.url.heartbeat_native:
            run.storage.record_heartbeat(tid)
        else:
            run.storage.set_trial_system_attr(tid, HEARTBEAT_ATTR, time.time())
        assert run.sweep() == []  # a foreign pid is never judged by this host's process table
        time.sleep(3.5)
        lost = run.sweep()
        assert len(lost) == 1 and "no heartbeat from worker pid 12345 on another-node" in lost[0]
