"""Composing a run config: defaults groups < file < quick < overrides (and group switches)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from rnnbench.config.schema import GROUPS, ConfigError
from rnnbench.config.validate import _first_line, did_you_mean

PRESET_GROUPS = ("experiment", "study")  # where a config given by name alone is looked up


def config_root() -> Path:
    """The presets: ``configs/`` as shipped in the installed package (``rnnbench/presets``),
    else the ``configs/`` folder of this checkout, else the one in the working folder."""
    package = Path(__file__).resolve().parents[1]  # rnnbench/
    for root in (package / "presets", package.parent / "configs"):
        if (root / "experiment").is_dir():
            return root
    return Path.cwd() / "configs"


def presets(root: Path | None = None) -> dict[str, Path]:
    """``{name: file}`` of the experiment and study presets (experiment wins a clash)."""
    root = root or config_root()
    out: dict[str, Path] = {}
    for group in reversed(PRESET_GROUPS):
        out.update({p.stem: p for p in sorted((root / group).glob("*.yaml"))})
    return out


def resolve_config_path(path: str | Path, root: Path | None = None) -> Path:
    """The file a config argument names: a file that exists (a local file wins), else
    ``NAME.yaml`` in the working folder, else the preset ``NAME`` (``chung2014_jsb``).

    Raises:
        ConfigError: Neither a file nor a preset (the message lists the presets).
    """
    given = Path(path)
    if given.is_file() or given.is_dir():
        return given  # (read_yaml says what is wrong with a folder)
    text = str(path)
    name = given.stem if given.suffix in (".yaml", ".yml") else given.name
    if given.parent == Path(".") and name:
        local = Path(f"{name}.yaml")
        if local.is_file():
            return local
        found = presets(root).get(name)
        if found is not None:
            return found
    known = sorted(presets(root))
    raise ConfigError(
        f"config file {text} does not exist, and it names no preset"
        f"{did_you_mean(name, known)}; presets (give the name alone, e.g. "
        f"rnnbench fit quickstart): {', '.join(known) or 'none'}"
    )


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merges ``over`` into a copy of ``base`` (``over`` wins)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file's mapping; a missing, unreadable or non-mapping file is a ConfigError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read ({err})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data


def parse_override(text: str) -> dict[str, Any]:
    """``"model.hidden_size=650"`` -> ``{"model": {"hidden_size": 650}}``, typed as OmegaConf
    reads a value (``1e-3`` is a float; ``${...}`` interpolates)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if "=" not in text or text.startswith("="):
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key = text.split("=", 1)[0].strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r}: {key!r} is not a dotted key like optim.lr")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist([text]), resolve=False)
    except (OmegaConfBaseException, yaml.YAMLError, ValueError) as err:
        raise ConfigError(f"override {text!r} cannot be read: {_first_line(err)}") from None


def _split_overrides(overrides: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Group switches (``model=lstm_2x200``) apart from dotted overrides."""
    groups: dict[str, str] = {}
    rest: list[str] = []
    for text in overrides:
        key, _, value = text.partition("=")
        if key.strip() in GROUPS and value and not value.lstrip().startswith(("{", "[")):
            groups[key.strip()] = value.strip()
        else:
            rest.append(text)
    return groups, rest


def _group_file(root: Path, group: str, name: Any) -> dict[str, Any]:
    """``{group}/{name}.yaml``: from ``./configs/`` when it is there (a local file wins),
    else from the presets."""
    if group not in GROUPS:
        raise ConfigError(f"defaults names unknown group {group!r}; groups: "
                          f"{', '.join(GROUPS)}")
    roots = list(dict.fromkeys([(Path.cwd() / "configs").resolve(), root.resolve()]))
    if isinstance(name, str):
        for where in roots:
            if (where / group / f"{name}.yaml").is_file():
                return read_yaml(where / group / f"{name}.yaml")
    known = sorted({p.stem for where in roots for p in (where / group).glob("*.yaml")})
    raise ConfigError(
        f"{group}={name}: there is no {root / group / f'{name}.yaml'}"
        f"{did_you_mean(str(name), known)}; known {group} configs: "
        f"{', '.join(known) or 'none'}"
    )


def compose(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    root: Path | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """The raw (unvalidated) composition of defaults groups, file, quick and overrides."""
    root = root or config_root()
    file_cfg: dict[str, Any] = {}
    cfg: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path, root)
        file_cfg = read_yaml(path)
        cfg["name"] = path.stem
    switched, dotted = _split_overrides(overrides)
    defaults = file_cfg.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults must be a mapping like "
                          "{model: lstm_2x200, data: ptb}, got {defaults!r}")
    for group, name in {**defaults, **switched}.items():
        cfg = deep_merge(cfg, {group: _group_file(root, group, name)})
    quick_cfg = file_cfg.get("quick")
    cfg = deep_merge(cfg, {k: v for k, v in file_cfg.items() if k not in ("defaults", "quick")})
    if quick:
        if not isinstance(quick_cfg, dict):
            raise ConfigError(
                f"--quick: {path} has no quick: section (a mapping of overrides that makes a "
                "short version of the run); run it without --quick"
            )
        cfg = deep_merge(cfg, quick_cfg)
    for text in dotted:
        cfg = deep_merge(cfg, parse_override(text))
    return cfg
