"""Storage calls through a database outage: which errors are transient, which calls are
repeated, and that a claim, a finish or an added trial lands exactly once.

Most tests make an SQLite storage fail the way a restarting server does (``Faults``): a
statement refused before it runs, or a commit that lands and is then reported failed (the
connection dropped before the acknowledgement). The last one restarts a real PostgreSQL server
of its own (root and PostgreSQL's server binaries; skipped otherwise).
"""

from __future__ import annotations

import inspect
import re
import threading
import time

import optuna
import pytest
import sqlalchemy
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.trial import TrialState
from sqlalchemy import event

from rnnbench._private import CACHED_BACKEND_CALLS
from rnnbench.studies.ledger import LOST, StudyRun
from rnnbench.studies.retry import IDEMPOTENT, RetryingRDBStorage
from rnnbench.studies.storage import is_transient, open_storage, parse_storage_url
from rnnbench.studies.trials import SEARCH

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _dropped(statement: str = "SELECT 1") -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError(
        statement, {}, Exception("server closed the connection unexpectedly"))


def _chained(inner: BaseException, outer: BaseException | None = None) -> BaseException:
    """``outer`` raised from ``inner``, as Optuna re-raises a driver's error."""
    outer = outer or StorageInternalError("An exception is raised during the commit.")
    try:
        try:
            raise inner
        except BaseException as err:
            raise outer from err
    except BaseException as err:  # noqa: BLE001
        return err


class Faults:
    """Makes a storage's database fail like a restarting server, on demand.

    Attributes:
        refuse: Statements to fail before they run (the server is down).
        lose: Commits to land and then report failed (dropped before the acknowledgement).
        down: While true, every statement fails.
        then: Called once, just before the next refused statement fails.
    """

    def __init__(self, storage) -> None:
        self.refuse = self.lose = self.hits = 0
        self.down = False
        self.then = None
        event.listen(storage.engine, "before_cursor_execute", self._statement)
        event.listen(storage.engine, "commit", self._commit)

    def _statement(self, conn, cursor, statement, params, context, executemany) -> None:
        if self.down or self.refuse > 0:
            self.refuse, self.hits = max(0, self.refuse - 1), self.hits + 1
            then, self.then = self.then, None
            if then is not None:
                then()
            raise _dropped(statement)

    def _commit(self, conn) -> None:
        if self.lose > 0:
            self.lose, self.hits = self.lose - 1, self.hits + 1
            conn.connection.dbapi_connection.commit()  # it lands...
            raise _dropped("COMMIT")  # ...and the client hears otherwise


@pytest.fixture
def storage(tmp_path):
    """A retrying storage (patience 6 s, tries 0.1 s apart) on an SQLite file, its faults, and
    a study."""
    made = RetryingRDBStorage(f"sqlite:///{tmp_path}/s.db", patience=6.0, max_wait_s=0.1)
    study = optuna.create_study(storage=made, study_name="s")
    return made, Faults(made), study


def _waiting(study, **attrs) -> int:
    study.add_trial(optuna.create_trial(state=TrialState.WAITING,
                                        user_attrs={"variant": "v", "kind": SEARCH, **attrs}))
    return study.get_trials(deepcopy=False)[-1]._trial_id


# ---------------------------------------------------------------------- is_transient
@pytest.mark.parametrize(("err", "transient"), [
    (_dropped(), True),
    (_chained(_dropped()), True),  # Optuna's StorageInternalError from an OperationalError
    (sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
     True),
    (sqlalchemy.exc.DisconnectionError("connection invalidated"), True),
    (_chained(_dropped(), sqlalchemy.exc.InvalidRequestError("rollback")), True),
    (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
    (_chained(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("dup"))), False),
    (_chained(_dropped(), sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("d"))), False),
    (_chained(sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long"))), False),
    (UpdateFinishedTrialError("trial 3 is finished"), False),
    (ValueError("bad"), False),
])
def test_is_transient(err, transient):
    assert is_transient(err) is transient


def test_psycopg_errors_are_transient():
    psycopg = pytest.importorskip("psycopg")
    assert is_transient(psycopg.OperationalError("the database system is starting up"))
    assert is_transient(_chained(psycopg.errors.AdminShutdown("terminating connection")))
    assert not is_transient(psycopg.errors.UniqueViolation("duplicate key"))


# ---------------------------------------------------------------------- repeated calls
def test_idempotent_calls_are_retried_through_an_outage(storage):
    st, faults, study = storage
    tid = _waiting(study, slot=0)
    assert st.set_trial_state_values(tid, TrialState.RUNNING)
    calls = [
        lambda: st.set_trial_user_attr(tid, "worker_pid", 7),
        lambda: st.set_trial_system_attr(tid, "fixed_params", {"lr": 0.1}),
        lambda: st.set_trial_intermediate_value(tid, 1, 0.5),
        lambda: st.record_heartbeat(tid),
        lambda: study.get_trials(deepcopy=False),  # through Optuna's trial cache
        lambda: st.get_trial(tid),
        lambda: st.get_study_user_attrs(study._study_id),
    ]
    for call in calls:
        faults.refuse = 2
        call()
        assert faults.refuse == 0
        faults.lose = 1  # a write that landed unseen is simply written again
        call()
        assert faults.lose == 0
    trial = st.get_trial(tid)
    assert trial.user_attrs["worker_pid"] == 7 and trial.intermediate_values == {1: 0.5}
    assert trial.system_attrs["fixed_params"] == {"lr": 0.1}
    assert st.down_for() == 0.0 and st.up_for() < 30


def test_every_database_call_of_optuna_is_retried_or_handled():
    # Each RDBStorage method that opens a session is repeated, handled on its own, or unused.
    handled = {"set_trial_state_values", "_create_new_trial"}
    unused = {"delete_study"}
    for name, member in inspect.getmembers(optuna.storages.RDBStorage, inspect.isfunction):
        if "_create_scoped_session(" in inspect.getsource(member):
            assert name in set(IDEMPOTENT) | handled | unused, name
    # Optuna's trial cache reaches the storage through these private methods: a new one in a
    # later Optuna would bypass the retries.
    from optuna.storages._cached_storage import _CachedStorage

    private = set(re.findall(r"self\._backend\.(_\w+)\(", inspect.getsource(_CachedStorage)))
    assert private <= set(CACHED_BACKEND_CALLS), private - set(CACHED_BACKEND_CALLS)


def test_patience_is_counted_per_outage_not_per_call(tmp_path):
    st = RetryingRDBStorage(f"sqlite:///{tmp_path}/s.db", patience=1.5, max_wait_s=0.5)
    study = optuna.create_study(storage=st, study_name="s")
    faults = Faults(st)
    faults.down = True
    t0 = time.monotonic()
    with pytest.raises(StorageInternalError) as err:
        st.get_study_user_attrs(study._study_id)
    assert is_transient(err.value) and 1.5 <= time.monotonic() - t0 < 5
    assert st.down_for() >= 1.5
    t0 = time.monotonic()
    with pytest.raises(StorageInternalError):  # the same outage: no second wait
        st.get_trial(1)
    assert time.monotonic() - t0 < 0.5
    faults.down = False
    assert study.get_trials() == [] and st.down_for() == 0.0


# ---------------------------------------------------------------------- claims
def test_a_claim_refused_by_the_outage_is_retried(storage):
    st, faults, study = storage
    tid = _waiting(study, slot=0)
    faults.refuse = 2
    assert st.set_trial_state_values(tid, TrialState.RUNNING) is True
    assert st.get_trial(tid).state == TrialState.RUNNING
    assert st.set_trial_state_values(tid, TrialState.RUNNING) is False  # nobody else


def _one_trial_study(tiny, tmp_path):
    """One GRU search trial in SQLite, opened through the retrying storage (heartbeat 1 s,
    grace period 2 s): ``(storage, run)``."""
    spec = tiny("study.variants=[gru]", "study.trials_per_variant=1", "study.seeds=0",
                "study.heartbeat_interval=1", "study.grace_period=2")
    url = f"sqlite:///{tmp_path}/study.db"
    StudyRun.create(spec, url).prepare()
    st = RetryingRDBStorage(url, patience=6.0, max_wait_s=0.5, heartbeat_interval=1,
                            grace_period=2)
    return st, StudyRun(spec, st, parse_storage_url(url))


def test_a_claim_that_landed_unseen_is_not_taken_twice_and_is_requeued(tiny, tmp_path):
    st, run = _one_trial_study(tiny, tmp_path)
    spec = run.spec
    faults = Faults(st)
    (v,) = spec.variants
    study = run.study(v, SEARCH)
    (waiting,) = run.trials(v, SEARCH)
    tid = run.trial_id(study, waiting.number)
    faults.lose = 1  # our claim lands, but we hear it failed
    assert st.set_trial_state_values(tid, TrialState.RUNNING) is False
    assert st.get_trial(tid).state == TrialState.RUNNING
    assert st.set_trial_state_values(tid, TrialState.RUNNING) is False  # nor anyone else's
    # Nobody runs it: after the grace period (counted from the storage's return) the sweep
    # declares it lost and queues it again, once.
    assert run.sweep() == []
    time.sleep(2.2)
    (line,) = run.sweep()
    assert "claimed by a worker that never started it" in line
    assert run.sweep() == []
    trials = run.trials(v, SEARCH)
    assert [(t.state, t.user_attrs.get("fail_kind"), t.user_attrs.get("retried_from"))
            for t in trials] == [(TrialState.FAIL, LOST, None),
                                 (TrialState.WAITING, None, waiting.number)]
    assert run.tally(v, SEARCH).waiting == 1 and run.tally(v, SEARCH).done == 0


def test_the_sweep_waits_a_grace_period_after_an_outage(tiny, tmp_path):
    st, run = _one_trial_study(tiny, tmp_path)
    spec = run.spec
    (v,) = spec.variants
    study = run.study(v, SEARCH)
    tid = run.trial_id(study, 0)
    assert st.set_trial_state_values(tid, TrialState.RUNNING)
    st.record_heartbeat(tid)
    st.set_trial_user_attr(tid, "worker_host", "elsewhere")
    st.set_trial_user_attr(tid, "worker_pid", 1)
    time.sleep(2.5)  # its heartbeat is stale now...
    faults = Faults(st)
    faults.refuse = 1  # ...but this process has just seen the storage come back
    assert run.sweep() == []
    time.sleep(2.1)
    (line,) = run.sweep()
    assert "no heartbeat from worker pid 1 on elsewhere" in line


# ---------------------------------------------------------------------- finishing
@pytest.mark.parametrize("how", ["refused", "landed unseen"])
def test_a_finish_during_an_outage_is_recorded_once(storage, how):
    st, faults, study = storage
    tid = _waiting(study, slot=0)
    assert st.set_trial_state_values(tid, TrialState.RUNNING)
    if how == "refused":
        faults.refuse = 3
    else:
        faults.lose = 1
    study.tell(0, 2.5)
    trial = st.get_trial(tid)
    assert (trial.state, trial.value) == (TrialState.COMPLETE, 2.5) and faults.hits >= 1
    with pytest.raises(UpdateFinishedTrialError):  # finished: nothing more is written
        st.set_trial_user_attr(tid, "late", 1)


def test_a_finish_after_another_process_failed_the_trial_is_refused(storage, tmp_path):
    st, faults, study = storage
    tid = _waiting(study, slot=0)
    assert st.set_trial_state_values(tid, TrialState.RUNNING)
    other = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db")  # a sweeper elsewhere
    faults.refuse = 1
    faults.then = lambda: other.set_trial_state_values(tid, TrialState.FAIL)
    with pytest.raises(UpdateFinishedTrialError):
        st.set_trial_state_values(tid, TrialState.COMPLETE, [1.0])
    assert st.get_trial(tid).state == TrialState.FAIL


# ---------------------------------------------------------------------- adding trials
def test_a_trial_added_during_an_outage_is_added_once(storage, tmp_path):
    st, faults, study = storage
    for slot in range(3):
        faults.lose = 1  # the insert lands unseen; Optuna's own retry, then ours, repeat it
        _waiting(study, slot=slot)
    faults.refuse = 2
    _waiting(study, slot=3)
    faults.lose = 1
    _waiting(study, slot=0, retried_from=0)  # a retry is another trial than its slot
    faults.lose = 1
    _waiting(study, slot=0, retried_from=0)  # two sweepers queueing the same retry
    trials = study.get_trials()
    assert [(t.user_attrs["slot"], t.user_attrs.get("retried_from")) for t in trials] == [
        (0, None), (1, None), (2, None), (3, None), (0, 0)]
    assert all(t.state == TrialState.WAITING for t in trials)
    # Without the look before the insert, Optuna's storage adds a trial twice.
    plain = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/plain.db")
    bare = optuna.create_study(storage=plain, study_name="p")
    Faults(plain).lose = 1
    _waiting(bare, slot=0)
    assert len(bare.get_trials()) == 2


# ---------------------------------------------------------------------- polling loops
def test_a_polling_loop_waits_for_the_storage_then_gives_up():
    from rnnbench.studies.retry import Patience

    patience = Patience(object(), seconds=0.3, pause_s=0.05)  # a storage with no clock
    steps = []

    def down() -> None:
        steps.append(1)
        raise _chained(_dropped())

    assert patience.attempt(down) == ""  # paused: try again next pass
    t0 = time.monotonic()
    while not (why := patience.attempt(down)):
        assert time.monotonic() - t0 < 5
    assert why.startswith("the study storage has been unreachable for 0 s (OperationalError: "
                          "server closed the connection unexpectedly)")
    assert patience.attempt(lambda: None) == "" and patience.down_for() == 0.0
    assert patience.attempt(down, wait=False)  # no waiting: give up at once
    with pytest.raises(ValueError):  # anything else is not the storage's absence
        patience.attempt(lambda: int("x"))


# ---------------------------------------------------------------------- the worker
def test_a_worker_gives_up_once_the_storage_stays_down(tiny, tmp_path):
    from rnnbench.studies.worker import Worker

    spec = tiny("study.variants=[gru]", "study.trials_per_variant=1", "study.seeds=0")
    url = f"sqlite:///{tmp_path}/study.db"
    StudyRun.create(spec, url).prepare()
    st = RetryingRDBStorage(url, patience=1.0, max_wait_s=0.5)
    lines: list[str] = []
    worker = Worker(StudyRun(spec, st, parse_storage_url(url)), output_dir=tmp_path,
                    log=lines.append, poll_s=0.1)
    Faults(st).down = True
    t0 = time.monotonic()
    assert worker.loop() == []
    assert time.monotonic() - t0 < 10
    assert "unreachable for" in worker.gave_up and "giving up" in lines[-1]


def test_a_trial_the_outage_broke_is_lost_and_queued_again_not_an_error(tiny, tmp_path):
    from rnnbench.studies.worker import TrialOutcome, Worker

    spec = tiny("study.variants=[gru]", "study.trials_per_variant=1", "study.seeds=0")
    url = f"sqlite:///{tmp_path}/study.db"
    StudyRun.create(spec, url).prepare()
    st = RetryingRDBStorage(url, patience=1.0, max_wait_s=0.5)
    run = StudyRun(spec, st, parse_storage_url(url))
    worker = Worker(run, output_dir=tmp_path, log=lambda _: None)
    (v,) = spec.variants
    study = run.study(v, SEARCH)
    tid = run.trial_id(study, 0)
    assert st.set_trial_state_values(tid, TrialState.RUNNING)
    out, attrs = TrialOutcome(v.name, SEARCH, 0, "FAIL"), {}
    worker._on_error(_chained(_dropped("INSERT INTO trial_intermediate_values")), out, attrs,
                     tmp_path / "run")
    assert attrs["fail_kind"] == LOST and "unreachable" in out.reason
    assert not (tmp_path / "run" / "error.txt").exists()
    # The outcome cannot be written either: the trial stays RUNNING for a sweep to find.
    faults = Faults(st)
    faults.down = True
    assert worker._finish(study, tid, out, attrs) is False
    assert "will be declared lost" in out.reason
    faults.down = False
    assert st.get_trial(tid).state == TrialState.RUNNING
    # Written, it is queued again by the worker that failed it (and only once).
    assert worker._finish(study, tid, out, attrs) is True
    failed = st.get_trial(tid)
    assert failed.state == TrialState.FAIL and failed.user_attrs["fail_kind"] == LOST
    assert run.requeue(study, failed) is True and run.requeue(study, failed) is False
    # A result that arrives after the trial was failed is discarded, and says so.
    late = TrialOutcome(v.name, SEARCH, 0, "COMPLETE", value=1.0)
    assert worker._finish(study, tid, late, {"metrics": {}}) is False
    assert (late.state, late.value) == ("FAIL", None) and "result discarded" in late.reason


# ---------------------------------------------------------------------- a real restart
def _no_server_of_our_own() -> str | None:
    import os
    import shutil

    from .netns import pg_bindir

    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("runuser") is None:
        return "needs root and runuser to run a PostgreSQL server of its own"
    if pg_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl); run .ci/postgres.sh"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


def test_calls_made_while_postgresql_restarts_land_once():
    reason = _no_server_of_our_own()
    if reason:
        pytest.skip(reason)
    from .netns import PgCluster

    with PgCluster("127.0.0.1") as pg:
        st = open_storage(pg.url, heartbeat_interval=1, grace_period=5)  # patience 15 s
        assert isinstance(st, RetryingRDBStorage) and st.patience == 15 and st.max_wait_s == 1
        study = optuna.create_study(storage=st, study_name="r")
        first, second = _waiting(study, slot=0), _waiting(study, slot=1)
        assert st.set_trial_state_values(first, TrialState.RUNNING)
        done: dict[str, object] = {}

        def during_the_outage() -> None:
            st.record_heartbeat(first)
            done["reads"] = len(study.get_trials())
            st.set_trial_user_attr(first, "worker_pid", 7)
            study.tell(0, 1.5)
            done["claim"] = st.set_trial_state_values(second, TrialState.RUNNING)
            _waiting(study, slot=0, retried_from=0)

        pg.stop()  # every connection dropped, new ones refused
        thread = threading.Thread(target=during_the_outage)
        thread.start()
        time.sleep(2.0)
        pg.start()
        thread.join(timeout=60)
        assert not thread.is_alive()
        trials = optuna.load_study(study_name="r", storage=pg.url).get_trials()
        assert done == {"reads": 2, "claim": True}
        assert [(t.state, t.value, t.user_attrs.get("worker_pid")) for t in trials] == [
            (TrialState.COMPLETE, 1.5, 7), (TrialState.RUNNING, None, None),
            (TrialState.WAITING, None, None)]
        st.engine.dispose()
