"""Optuna comparison studies: search spaces, workers, storages, pruning, W&B per trial.

Names are loaded on first use, so ``rnnbench --help`` (and a worker that must set its thread
count before torch is imported) pays nothing for importing this package.
"""

from __future__ import annotations

from rnnbench._lazy import lazy_exports

_EXPORTS = {
    "StudySpec": "spec", "Variant": "spec", "load_study": "spec", "parse_study": "spec",
    "Param": "space", "SearchSpace": "space", "build_space": "space",
    "StorageError": "storage", "StorageURL": "storage", "open_storage": "storage",
    "parse_storage_url": "storage", "default_storage_url": "storage",
    "StudyRun": "ledger", "Tally": "ledger", "Worker": "worker", "make_sampler": "samplers",
    "make_pruner": "samplers", "trial_config": "trials",
    "PruningCallback": "pruning", "NonFiniteMetricError": "pruning",
    "MissingMetricError": "pruning",
    "make_wandb_logger": "tracking", "read_offline_run": "tracking",
    "StudyProgress": "progress",
    "launch_study": "pool", "plan_workers": "pool", "preflight": "checks",
    "collect": "results", "write_results": "results", "variant_rows": "results",
    "param_importances": "results", "results_table": "results",
    "STORAGE_ENV": "storage", "mask_password": "storage", "check_storage": "storage",
    "run_baselines": "baselines", "evaluate_baseline": "baselines",
    "stored_baselines": "baselines",
    "StudyStatus": "status", "study_status": "status", "statuses_in": "status",
    "user_threads": "pool",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
