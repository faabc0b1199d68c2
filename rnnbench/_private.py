"""Every private name of a third-party library that rnnbench relies on, and why.

Public API first: a name is listed here only where the library offers no public way to do
the same thing. Code elsewhere goes through the helpers below instead of touching the private
names itself, and ``tests/test_private.py`` fails as soon as an installed version drops one.
This module imports none of the libraries (the layer contract keeps optuna inside
``rnnbench.studies`` and wandb inside the tracking module); the helpers take their objects.

A name is ``"module:attr.attr"``; an attribute path may step into a mapping by key.
"""

from __future__ import annotations

import importlib
from typing import Any

# ---------------------------------------------------------------------- optuna
OPTUNA: dict[str, str] = {
    "optuna.storages:RDBStorage._get_stale_trial_ids": (
        "Which RUNNING trials' heartbeats are older than the grace period, judged by the "
        "database server's clock (so clock skew between machines cannot fail a live trial). "
        "The public optuna.storages.fail_stale_trials marks them FAIL itself, and a finished "
        "trial is read-only, so the sweep could no longer record why it failed (fail_kind, "
        "fail_reason) before the transition, which is what makes a sweeper that dies between "
        "FAIL and re-queue recoverable (see rnnbench.studies.ledger)."
    ),
    # The storage that waits out a database restart (rnnbench.studies.retry) overrides these:
    # Optuna wraps every RDB storage a Study uses in its trial cache (_CachedStorage), which
    # reaches the database through these private methods, not through the public ones.
    "optuna.storages:RDBStorage._get_trials": (
        "Every read of a study's trials (Study.get_trials, the samplers, the pruners) goes "
        "through the trial cache to this method; it is retried through a restart."
    ),
    "optuna.storages:RDBStorage._create_new_trial": (
        "Study.add_trial (a search slot, a retry) reaches the database here through the trial "
        "cache; the retrying storage repeats it through a restart (made safe to repeat by the "
        "next entry)."
    ),
    "optuna.storages:RDBStorage._get_prepared_new_trial": (
        "The one place inside the transaction that adds a trial, after Optuna locked the "
        "study's row: the retrying storage looks there for a trial made from the same template "
        "and returns it instead, so an insert whose commit landed unseen (or Optuna's own "
        "retry of it) cannot add a search slot or a retry twice. Called with (study_id, "
        "template_trial, session)."
    ),
    "optuna.storages._rdb.models:TrialModel": (
        "The trials table, queried in that transaction (see _get_prepared_new_trial)."
    ),
    "optuna.storages._rdb.models:TrialUserAttributeModel": (
        "The trial user attributes table: one query in that transaction finds the trial whose "
        "variant/kind/slot/seed/retried_from attributes match the template's."
    ),
    "optuna.storages:RDBStorage._set_trial_param": (
        "Trial.suggest_* records a sampled value here through the trial cache; retried through "
        "a restart (an upsert on (trial, parameter): a second landing changes nothing)."
    ),
    "optuna.storages:RDBStorage._get_best_trial_id": (
        "Study.best_trial reads the best trial's id here through the trial cache; retried "
        "through a restart like every other read."
    ),
    "optuna.storages:_CachedStorage": (
        "The trial cache Optuna puts in front of an RDB storage: tests/studies/test_retry.py "
        "reads which private storage methods it calls, so that a new one in a later Optuna "
        "is noticed instead of silently bypassing the retries."
    ),
}

# The private RDBStorage methods Optuna's trial cache calls (see OPTUNA above), which the
# retrying storage overrides alongside the public ones.
CACHED_BACKEND_CALLS = ("_get_trials", "_create_new_trial", "_set_trial_param",
                        "_get_best_trial_id", "_get_stale_trial_ids")


def stale_trial_ids(storage: Any, study_id: int) -> list[int]:
    """Trial ids of ``study_id`` whose heartbeat is stale, on a storage with Optuna's
    heartbeat (an RDB storage opened with ``heartbeat_interval``); else ``[]``."""
    get = getattr(storage, "_get_stale_trial_ids", None)
    return list(get(study_id)) if get is not None else []


# ---------------------------------------------------------------------- wandb
WANDB: dict[str, str] = {
    "wandb:Settings.model_fields.x_disable_meta": (
        "The only setting that stops a run recording the process's command line (sys.argv: "
        "`study worker --storage URL` typed by a user carries the storage password) with the "
        "rest of the system metadata; W&B marks x_ settings experimental."
    ),
    "wandb.proto.wandb_internal_pb2:Record": (
        "Reads offline run files (run-*.wandb) without the network, so tests and reports can "
        "check what a run recorded; wandb has no public reader of its own files."
    ),
}

# Settings of every run: no command line, no system metadata (see WANDB above).
WANDB_NO_METADATA: dict[str, Any] = {"x_disable_meta": True}

# ---------------------------------------------------------------------- lightning
LIGHTNING: dict[str, str] = {
    "lightning.pytorch.trainer.connectors.logger_connector.logger_connector:"
    "_LoggerConnector.should_update_logs": (
        "Whether Lightning writes step metrics after this step, read through the trainer's "
        "private _logger_connector: on those steps only does the module read the loss back "
        "from the GPU (a host sync); Lightning exposes log_every_n_steps but not the decision."
    ),
}
# Instance attributes (set in __init__, so not resolvable on the class): checked on real
# objects by tests/test_private.py.
LIGHTNING_INSTANCE: dict[str, str] = {
    "LightningOptimizer()._on_before_step": (
        "The plain training loop (one device, full precision, no hook listeners) steps the "
        "raw torch optimiser to skip Lightning's wrapping (about 0.2 ms of host time per step, "
        "which a launch-bound GPU step at B = 20 feels); Lightning advances global_step in "
        "these two hooks and has no public way to advance it (rnnbench.module, graph_policy)."
    ),
    "LightningOptimizer()._on_after_step": (
        "The pair of _on_before_step, called after the raw optimiser step for the same reason "
        "(Lightning's step-count bookkeeping and profiler hooks)."
    ),
    "Trainer()._logger_connector": "the holder of should_update_logs above",
    "Trainer().fit_loop.epoch_loop._batches_that_stepped": (
        "The number of optimizer steps that reached the loggers, which a step checkpoint "
        "records so a resumed run cuts metrics.csv at exactly the rows it covers "
        "(rnnbench.checkpointing); global_step counts the same steps only mid-epoch."
    ),
    "torchmetrics.MeanMetric()._update_count": (
        "Restored with a metric's state in a checkpoint so a resumed mid-epoch run knows the "
        "metric was updated (torchmetrics warns and returns NaN for a metric it thinks empty)."
    ),
}

# ---------------------------------------------------------------------- the registry
PRIVATE: dict[str, dict[str, str]] = {"optuna": OPTUNA, "wandb": WANDB, "lightning": LIGHTNING}


def resolve(name: str) -> Any:
    """The object a registry name designates.

    Raises:
        ImportError: The module is gone.
        AttributeError: An attribute (or key) on the path is gone.
    """
    module, _, path = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in path.split(".") if path else []:
        if hasattr(obj, part):
            obj = getattr(obj, part)
        elif isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            raise AttributeError(f"{name}: {part!r} is gone from {type(obj).__name__}")
    return obj


__all__ = ["CACHED_BACKEND_CALLS", "LIGHTNING", "LIGHTNING_INSTANCE", "OPTUNA", "PRIVATE",
           "WANDB", "WANDB_NO_METADATA", "resolve", "stale_trial_ids"]
