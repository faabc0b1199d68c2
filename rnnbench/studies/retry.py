"""Riding out a database restart: an RDB storage that retries its calls through transient
errors without running a trial twice, adding one twice, or losing one.

A server storage (PostgreSQL) that restarts or fails over drops every connection and refuses
new ones for a few seconds. :class:`RetryingRDBStorage` waits that out: a call that fails with
a transient error (:func:`is_transient`) is tried again with backoff until the storage has
been unreachable for ``patience`` seconds, counted from the first failure of the outage (so a
worker making many calls during one long outage gives up once, not once per call).

Only calls that can be repeated are repeated as they are: reads, and writes that set a value
(an attribute, a parameter, an intermediate value, a heartbeat), whose second landing changes
nothing. The two writes that cannot be repeated blindly look first at what the failed attempt
left behind, because a commit can land while its acknowledgement is lost:

- ``set_trial_state_values``: claiming (WAITING -> RUNNING) is tried again only while the trial
  is still WAITING; if it is RUNNING the claim is refused (``False``), whoever made it, so no
  trial is ever run twice. A claim of ours that did land is swept later as "claimed by a
  worker that never started it" and queued again. Finishing is tried again while the trial is
  RUNNING; it succeeds if the trial already has the state asked for, and raises
  ``UpdateFinishedTrialError`` if it finished otherwise (another process declared it lost).
- adding a trial (``study.add_trial``: a search slot, a final seed, a retry) first looks, in
  the same transaction and under Optuna's lock on the study, for a trial made from the same
  template (same variant, kind, slot, seed and ``retried_from``) and returns that one, so a
  slot or a retry is never added twice however often the insert is repeated.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from rnnbench._private import CACHED_BACKEND_CALLS
from rnnbench.redact import redact
from rnnbench.studies.storage import DEFAULT_PATIENCE_S, MAX_WAIT_S, error_line, is_transient

_log = logging.getLogger("rnnbench.studies.storage")

# Backoff between tries: 0.5 s doubling up to MAX_WAIT_S (8 s), or the heartbeat interval if
# shorter (open_storage), so that beats resume within one interval of the server's return.
FIRST_WAIT_S = 0.5
# The user attributes that tell the trials rnnbench adds apart (see StudyRun.prepare/requeue):
# a search slot, a final re-run's seed, and the trial a retry replaces.
TRIAL_IDENTITY = ("variant", "kind", "slot", "seed", "retried_from")


def _identity(trial: FrozenTrial | None) -> tuple | None:
    """What tells a trial rnnbench added apart from every other, or ``None`` (not ours)."""
    if trial is None or not any(k in trial.user_attrs for k in TRIAL_IDENTITY[2:]):
        return None
    return tuple(trial.user_attrs.get(k) for k in TRIAL_IDENTITY)


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose calls wait out a server restart (see the module docstring).

    Args:
        url: The SQLAlchemy URL.
        patience: Seconds of unreachable storage after which a call raises its error.
        max_wait_s: The longest pause between two tries.
        **kwargs: What ``RDBStorage`` takes (``engine_kwargs``, ``heartbeat_interval``, ...).
    """

    def __init__(self, url: str, *, patience: float = DEFAULT_PATIENCE_S,
                 max_wait_s: float = MAX_WAIT_S, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.patience = float(patience)
        self.max_wait_s = float(max_wait_s)
        self._down_since: float | None = None  # monotonic: first failure of this outage
        self._up_since = -math.inf  # monotonic: when the last outage ended

    # ------------------------------------------------------------------ the outage clock
    def down_for(self) -> float:
        """Seconds since the storage became unreachable (0 when the last call got through)."""
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def up_for(self) -> float:
        """Seconds since the last outage ended (``inf`` if this process saw none)."""
        return time.monotonic() - self._up_since

    def _reached(self) -> None:
        since = self._down_since
        if since is not None:
            self._down_since, self._up_since = None, time.monotonic()
            _log.warning("the study storage is reachable again after %.1f s",
                         self._up_since - since)

    def _pause(self, err: BaseException, wait: float) -> float:
        """After a transient error: sleeps and returns the next pause, or re-raises ``err``
        when the storage has been unreachable for ``patience`` seconds."""
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            _log.warning("the study storage is unreachable (%s); retrying for up to %.0f s",
                         redact(error_line(err), str(self.url)), self.patience)
        left = self.patience - (now - self._down_since)
        if left <= 0:
            raise err
        # This thread's session may hold a connection the server dropped: start afresh.
        self.scoped_session.remove()
        time.sleep(min(wait, left))
        return min(2 * wait, self.max_wait_s)

    def _patiently(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        wait = min(FIRST_WAIT_S, self.max_wait_s)
        while True:
            try:
                out = call(*args, **kwargs)
            except Exception as err:
                if not is_transient(err):
                    raise
                wait = self._pause(err, wait)
                continue
            self._reached()
            return out

    # ------------------------------------------------------------------ the two writes
    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Any = None) -> bool:
        wait = min(FIRST_WAIT_S, self.max_wait_s)
        while True:
            try:
                done = super().set_trial_state_values(trial_id, state, values)
            except Exception as err:
                if not is_transient(err):
                    raise
                wait = self._pause(err, wait)
            else:
                self._reached()
                return done
            # The attempt failed, but its commit may have landed: look before trying again.
            now = self._patiently(super().get_trial, trial_id).state
            if state == TrialState.RUNNING:
                if now != TrialState.WAITING:
                    return False  # claimed: maybe by us, but never run it twice
            elif now == state:
                return True
            elif now.is_finished():
                raise UpdateFinishedTrialError(
                    f"trial {trial_id} became {now.name} while this process was setting it "
                    f"{state.name}")

    def _create_new_trial(self, study_id: int,
                          template_trial: FrozenTrial | None = None) -> FrozenTrial:
        # Safe to repeat: see _get_prepared_new_trial. Read back, so that a trial found rather
        # than made enters Optuna's trial cache as it is stored (perhaps claimed already).
        made = self._patiently(super()._create_new_trial, study_id, template_trial)
        return self._patiently(super().get_trial, made._trial_id)

    def _get_prepared_new_trial(self, study_id: int, template_trial: FrozenTrial | None,
                                session: Any) -> Any:
        """Adds the trial, unless one made from the same template is in the study already.

        Runs inside the transaction that adds it, after Optuna locked the study's row, so the
        look and the insert are one step for every process adding trials to the study: an
        attempt whose commit landed unseen, Optuna's own retry of a failed insert, ours, or
        two processes queueing the same retry all leave one trial.
        """
        key = _identity(template_trial)
        if key is not None:
            found = _find_trial(session, study_id, key)
            if found is not None:
                return found
        return super()._get_prepared_new_trial(study_id, template_trial, session)


def _find_trial(session: Any, study_id: int, key: tuple) -> Any:
    """The trial model of ``study_id`` whose identity is ``key``, or ``None`` (one query)."""
    from optuna.storages._rdb import models

    attr = models.TrialUserAttributeModel
    rows = (session.query(attr.trial_id, attr.key, attr.value_json)
            .join(models.TrialModel, models.TrialModel.trial_id == attr.trial_id)
            .filter(models.TrialModel.study_id == study_id, attr.key.in_(TRIAL_IDENTITY))
            .all())
    seen: dict[int, dict[str, Any]] = {}
    for trial_id, name, value in rows:
        seen.setdefault(trial_id, {})[name] = json.loads(value)
    for trial_id in sorted(seen):
        if tuple(seen[trial_id].get(k) for k in TRIAL_IDENTITY) == key:
            return session.get(models.TrialModel, trial_id)
    return None


# The calls repeated as they are: reads, and writes whose second landing changes nothing
# (each is a unique-keyed upsert in Optuna's schema). Every other public call of RDBStorage
# reaches the database through one of these, and so does Optuna's trial cache, through the
# private ones (rnnbench._private.CACHED_BACKEND_CALLS; _create_new_trial is overridden above).
IDEMPOTENT = (
    "create_new_study",  # repeated after it landed: DuplicatedStudyError, which
    # create_study(load_if_exists=True), the only way rnnbench creates studies, loads
    "get_all_studies", "get_study_id_from_name", "get_study_name_from_id",
    "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "set_study_user_attr", "set_study_system_attr",
    "get_trial", "get_trial_id_from_study_id_trial_number", "get_trial_param",
    "get_trial_user_attrs", "get_trial_system_attrs", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "record_heartbeat",
    *(name for name in CACHED_BACKEND_CALLS if name != "_create_new_trial"),
)


def _repeated(name: str) -> Callable[..., Any]:
    plain = getattr(optuna.storages.RDBStorage, name)

    @functools.wraps(plain)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._patiently(plain, self, *args, **kwargs)

    return call


for _name in IDEMPOTENT:
    setattr(RetryingRDBStorage, _name, _repeated(_name))


class Patience:
    """Waits out transient storage errors in a polling loop (a worker's, the launcher's).

    ``wait(err)`` returns ``True`` after a pause while the storage has been unreachable for
    less than ``seconds`` (counted from the storage's own clock when it keeps one, so time a
    retrying storage already waited counts), ``False`` when it is time to give up. ``ok()``
    after a pass that reached the storage.
    """

    def __init__(self, storage: Any, seconds: float, pause_s: float = 1.0) -> None:
        self.storage, self.seconds, self.pause_s = storage, float(seconds), pause_s
        self._since: float | None = None

    def ok(self) -> None:
        self._since = None

    def down_for(self) -> float:
        own = 0.0 if self._since is None else time.monotonic() - self._since
        return max(own, getattr(self.storage, "down_for", lambda: 0.0)())

    def wait(self, err: BaseException) -> bool:
        if self._since is None:
            self._since = time.monotonic()
        if self.down_for() >= self.seconds:
            return False
        time.sleep(self.pause_s)
        return True

    def why(self, err: BaseException) -> str:
        """The line a loop that gives up on the storage says (redact it before showing)."""
        return (f"the study storage has been unreachable for {self.down_for():.0f} s "
                f"({error_line(err)})")

    def attempt(self, step: Callable[[], Any], *, wait: bool = True) -> str:
        """Runs ``step``, one pass of the loop over the storage. Returns ``""`` when it ran, or
        failed with a transient error while there is patience left (after a pause; the loop
        tries again next pass), else :meth:`why` it gives up."""
        try:
            step()
        except Exception as err:
            if not is_transient(err):
                raise
            return "" if wait and self.wait(err) else self.why(err)
        self.ok()
        return ""


def patience_of(storage: Any, grace_period: float) -> float:
    """How long a loop waits for ``storage`` to come back: its own patience, else 3 x
    ``grace_period``."""
    return float(getattr(storage, "patience", 3 * grace_period))


def storage_up_for(storage: Any) -> float:
    """Seconds since ``storage`` last recovered from an outage (``inf``: never down)."""
    up = getattr(storage, "up_for", None)
    return math.inf if up is None else up()


__all__ = ["IDEMPOTENT", "TRIAL_IDENTITY", "Patience", "RetryingRDBStorage", "is_transient",
           "patience_of", "storage_up_for"]
