"""Old home of the config and run code, kept so existing imports keep working.

The typed config schema and its composition live in :mod:`rnnbench.config`; building and
running a model lives in :mod:`rnnbench.train`. Names load on first use, so importing this
module for ``ConfigError`` costs no Lightning.
"""

from rnnbench._lazy import lazy_exports

_CONFIG = ("MODEL_KEYS", "OPTIM_KEYS", "SECTIONS", "TASK_KEYS_FROM_MODEL", "TOP_LEVEL",
           "ConfigError", "compose", "config_root", "deep_merge", "load_config",
           "parse_override", "validate_config")
_TRAIN = ("RunResult", "build", "build_module", "progress_refresh_rate", "run",
          "trainer_kwargs")

__getattr__, __dir__, __all__ = lazy_exports("rnnbench", globals(), {
    **{name: "config" for name in _CONFIG}, **{name: "train" for name in _TRAIN},
    "latest_run_dir": "runlog",
})
