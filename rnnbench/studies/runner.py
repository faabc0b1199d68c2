"""Compatibility shim: the study runner now lives in one module per concern.

``samplers`` (sampler and pruner factories, trial seeds), ``trials`` (a trial's run config),
``ledger`` (the study in its storage: budgets, tallies, lost workers, heartbeats) and
``worker`` (claiming and training trials). Every name this module had is re-exported here.
"""

from __future__ import annotations

from rnnbench.studies.ledger import (
    _COPIED_SYSTEM_ATTRS,
    ERROR,
    HEARTBEAT_ATTR,
    HOST,
    INTERRUPTED,
    LOST,
    NO_BEST,
    NONFINITE,
    RESULTS_ATTR,
    SPEC_ATTR,
    Heartbeat,
    StudyRun,
    Tally,
    _diff,
    alive,
    proc_start,
    retryable,
    stored_spec,
    tally,
)
from rnnbench.studies.samplers import _GridSampler, make_pruner, make_sampler, trial_seed
from rnnbench.studies.samplers import quiet_optuna as _quiet_optuna
from rnnbench.studies.trials import FINAL, SEARCH, all_values, trial_config
from rnnbench.studies.worker import (
    DDP_ENV,
    TrialOutcome,
    Worker,
    _multi_device,
    _restore_env,
    _TrialRecorder,
    run_ddp_rank,
)
from rnnbench.tracking import run_attrs as _wandb_attrs

# The private names of the former module, under their former names.
_Heartbeat, _alive, _proc_start, _stored_spec = Heartbeat, alive, proc_start, stored_spec

__all__ = [
    "DDP_ENV", "ERROR", "FINAL", "HEARTBEAT_ATTR", "HOST", "INTERRUPTED", "LOST", "NONFINITE",
    "NO_BEST", "RESULTS_ATTR", "SEARCH", "SPEC_ATTR", "StudyRun", "Tally", "TrialOutcome",
    "Worker", "_COPIED_SYSTEM_ATTRS", "_GridSampler", "_Heartbeat", "_TrialRecorder", "_alive",
    "_diff", "_multi_device", "_proc_start", "_quiet_optuna", "_restore_env", "_stored_spec",
    "_wandb_attrs", "all_values", "make_pruner", "make_sampler", "retryable", "run_ddp_rank",
    "tally", "trial_config", "trial_seed",
]
