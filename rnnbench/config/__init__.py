"""The typed run-config schema (OmegaConf structured configs) and its composition from YAML.

One dataclass per section, each field with its default, its type and its rule. A config is
composed as: schema defaults < ``defaults:`` groups (``configs/<group>/<name>.yaml``) < the
file < its ``quick:`` section (with ``--quick``) < command-line overrides. Overrides are
dotted (``optim.lr=1e-3``) or switch a group (``model=lstm_2x200``); values may interpolate
(``data.eval_batch_size=${data.batch_size}``). OmegaConf types every value (``1e-3`` is a
float), struct mode turns a typo into an error naming the key, and the rules beside the
fields refuse values that would train nothing (``lr <= 0``).

The composed config is handed on as a plain ``dict`` (what the rest of the package and the
study machinery patch and pass around), and saved as ``config.yaml`` in every run folder:
``rnnbench fit runs/NAME/version_K/config.yaml`` runs it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnbench.config.compose import (
    compose,
    config_root,
    deep_merge,
    parse_override,
    presets,
    read_yaml,
    resolve_config_path,
)
from rnnbench.config.schema import (
    GROUPS,
    MODEL_KEYS,
    OPTIM_KEYS,
    SCHEMA,
    SECTIONS,
    TASK_KEYS_FROM_MODEL,
    TOP_LEVEL,
    CheckpointConfig,
    ConfigError,
    LoggingConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainerConfig,
    finite,
    non_negative,
    one_of,
    positive,
    unit_interval,
)
from rnnbench.config.validate import (
    TRAINER_ARGS,
    did_you_mean,
    save_config,
    to_yaml,
    validate_config,
)


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    root: Path | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Composes and validates a run config (see the module docstring for the order).

    Returns:
        The config as a plain dict with every schema field filled in.

    Raises:
        ConfigError: Missing file, bad YAML, unknown key or group, wrong type, broken rule.
    """
    return validate_config(compose(path, overrides, root=root, quick=quick))


__all__ = [
    "GROUPS", "MODEL_KEYS", "OPTIM_KEYS", "SCHEMA", "SECTIONS", "TASK_KEYS_FROM_MODEL",
    "TOP_LEVEL", "TRAINER_ARGS", "CheckpointConfig", "ConfigError", "LoggingConfig",
    "ModelConfig", "OptimConfig", "RunConfig", "TrainerConfig", "compose", "config_root",
    "deep_merge", "did_you_mean", "finite", "load_config", "non_negative", "one_of",
    "parse_override", "positive", "presets", "read_yaml", "resolve_config_path", "save_config",
    "to_yaml", "unit_interval", "validate_config",
]
