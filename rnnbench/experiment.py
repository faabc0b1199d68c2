"""Old home of the config and run code, kept so existing imports keep working.

The typed config schema and its composition live in :mod:`rnnbench.config`; building and
running a model lives in :mod:`rnnbench.train`.
"""

from rnnbench.config import (  # noqa: F401
    MODEL_KEYS,
    OPTIM_KEYS,
    SECTIONS,
    TASK_KEYS_FROM_MODEL,
    TOP_LEVEL,
    ConfigError,
    compose,
    config_root,
    deep_merge,
    load_config,
    parse_override,
    validate_config,
)
from rnnbench.runlog import latest_run_dir  # noqa: F401
from rnnbench.train import (  # noqa: F401
    RunResult,
    build,
    build_module,
    progress_refresh_rate,
    run,
    trainer_kwargs,
)
