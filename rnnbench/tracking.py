"""Weights & Biases: one run per trial, offline unless the user is logged in."""

from __future__ import annotations

import netrc
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rnnbench._private import WANDB_NO_METADATA
from rnnbench.config import ConfigError
from rnnbench.redact import mask_secrets

WANDB_KEYS = ("project", "entity", "mode", "dir", "tags", "notes")
# What a run must not record: the process's command line (``rnnbench study worker --storage
# URL`` typed by a user carries the storage password) and the rest of the system metadata
# (git remote URLs may carry tokens); no code or git state either. The run's config, metrics
# and console output are what W&B is for.
PRIVACY_SETTINGS: dict[str, Any] = {
    **WANDB_NO_METADATA,  # no wandb-metadata.json: no args, program, git, host facts
    "disable_git": True,
    "disable_code": True,
    "save_code": False,
}
MODES = ("online", "offline", "disabled")


def wandb_settings(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``cfg['logging']['wandb']`` as a mapping, or ``None`` when W&B is off.

    ``true`` means defaults; a mapping may give ``project``, ``entity``, ``mode``
    (online/offline/disabled), ``dir``, ``tags`` and ``notes``.

    Raises:
        ConfigError: Unknown keys or a bad mode.
    """
    raw = (cfg.get("logging") or {}).get("wandb")
    if raw is None or raw is False:
        return None
    if raw is True:
        return {}
    if isinstance(raw, str):
        raw = {"project": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"logging.wandb must be true, false or a mapping, got {raw!r}")
    unknown = set(raw) - set(WANDB_KEYS)
    if unknown:
        raise ConfigError(f"logging.wandb has unknown key(s) {sorted(unknown)}; allowed: "
                          f"{', '.join(WANDB_KEYS)}")
    if raw.get("mode") is not None and raw["mode"] not in MODES:
        raise ConfigError(f"logging.wandb.mode must be one of {', '.join(MODES)}, "
                          f"got {raw['mode']!r}")
    return dict(raw)


def logged_in() -> bool:
    """Whether W&B credentials exist locally (``WANDB_API_KEY`` or a netrc entry).

    Reads only local files: it never contacts the server.
    """
    if os.environ.get("WANDB_API_KEY", "").strip():
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    paths = [os.environ.get("NETRC")] if os.environ.get("NETRC") else []
    paths += [str(Path.home() / ".netrc"), str(Path.home() / "_netrc")]
    for path in paths:
        if not path or not os.path.isfile(path):
            continue
        try:
            if netrc.netrc(path).authenticators(host or "api.wandb.ai"):
                return True
        except (netrc.NetrcParseError, OSError):
            continue
    return False


def resolve_mode(settings: Mapping[str, Any] | None = None) -> str:
    """``online`` / ``offline`` / ``disabled``: ``WANDB_MODE`` wins, then the config's
    ``mode``, then online only if the user is logged in."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    if settings and settings.get("mode"):
        return str(settings["mode"])
    return "online" if logged_in() else "offline"


def make_wandb_logger(
    cfg: Mapping[str, Any],
    *,
    job_type: str,
    group: str | None = None,
    name: str | None = None,
    tags: Iterable[str] = (),
    config: Mapping[str, Any] | None = None,
    mode: str | None = None,
):
    """A Lightning ``WandbLogger`` for one run; the caller calls ``wandb.finish()`` after it.

    Any run still open in this process is finished first: Lightning's logger would otherwise
    reuse it and every trial would land in one run.

    Args:
        cfg: Composed run config; ``logging.wandb`` is ``true`` or a mapping (see
            :func:`wandb_settings`). The project defaults to ``rnnbench``.
        job_type: W&B job type (a study passes the variant, ``fit`` for single runs).
        group: W&B group (a study passes its name).
        name: Display name of the run.
        tags: Extra tags (the study tags final re-runs ``final``).
        config: The run's config as W&B shows it.
        mode: Force ``online``/``offline``/``disabled`` (default: :func:`resolve_mode`).

    Returns:
        lightning.pytorch.loggers.WandbLogger
    """
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    settings = wandb_settings(cfg) or {}
    if wandb.run is not None:
        wandb.finish()
    mode = mode or resolve_mode(settings)
    save_dir = settings.get("dir")
    if save_dir:
        Path(save_dir).mkdir(parents=True, exist_ok=True)
    all_tags = [*(settings.get("tags") or []), *tags]
    kwargs: dict[str, Any] = {
        "project": settings.get("project") or os.environ.get("WANDB_PROJECT") or "rnnbench",
        "entity": settings.get("entity"),
        "group": group,
        "job_type": job_type,
        "tags": list(dict.fromkeys(str(t) for t in all_tags)) or None,
        "notes": settings.get("notes"),
        # W&B keeps the config for good: no password or key in it, whatever the user wrote.
        "config": mask_secrets(dict(config)) if config is not None else None,
        "mode": mode,
        # Offline, wandb makes no network calls; online, a dead network fails after this
        # many seconds instead of hanging a worker.
        "settings": wandb.Settings(init_timeout=120, silent=True, **PRIVACY_SETTINGS),
        "reinit": "finish_previous",
    }
    return WandbLogger(
        name=name,
        save_dir=str(save_dir) if save_dir else None,  # None: WANDB_DIR, else ./wandb
        log_model=False,
        **{k: v for k, v in kwargs.items() if v is not None},
    )


# ------------------------------------------------------------------ reading offline runs
_BLOCK = 32768
_HEADER = 7


def _records(path: Path) -> Iterable[bytes]:
    """The raw records of a ``run-*.wandb`` file (W&B's LevelDB-style log)."""
    data = Path(path).read_bytes()
    ident, _magic, _version = struct.unpack("<4sHB", data[:_HEADER])
    if ident != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        space = _BLOCK - pos % _BLOCK
        if space < _HEADER:
            pos += space
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:
            pos += space
            continue
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:  # full record
            yield chunk
        elif kind == 2:  # first piece
            pending = chunk
        elif kind == 3:  # middle
            pending += chunk
        elif kind == 4:  # last
            yield pending + chunk
            pending = b""


def define_objective(logger: Any, metric: str, direction: str) -> None:
    """Makes the run's summary keep the best ``metric`` (``{"min": x}`` or ``{"max": x}``)
    instead of its last value. W&B trouble is ignored: it must not fail a run."""
    try:
        logger.experiment.define_metric(metric, summary="max" if direction == "maximize"
                                        else "min")
    except Exception:  # noqa: BLE001
        pass


def update_summary(logger: Any, values: Mapping[str, Any]) -> None:
    """Writes ``values`` (``None`` left out) to the run's summary; ignores W&B trouble."""
    try:
        logger.experiment.summary.update({k: v for k, v in values.items() if v is not None})
    except Exception:  # noqa: BLE001
        pass


def _merge_item(out: dict[str, Any], item: Any) -> None:
    import json

    path = list(item.nested_key) or [item.key]
    if path[0] == "_wandb":
        return
    node = out
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = json.loads(item.value_json)


def read_offline_run(run_dir: str | Path) -> dict[str, Any]:
    """What an offline W&B run recorded: project, group, job type, name, tags, config and
    summary.

    Reads ``run_dir/run-*.wandb`` (the file ``wandb sync`` uploads) without the network, so
    tests and ``rnnbench report`` can check offline runs.

    Returns:
        ``{"id", "project", "group", "job_type", "name", "tags", "config", "summary"}``; the
        config merges the run record with later ``config.update`` calls, the summary every
        summary update in order (the last value of each key wins).
    """
    import json

    from wandb.proto import wandb_internal_pb2 as pb  # private: see rnnbench/_private.py

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {run_dir}")
    out: dict[str, Any] = {"config": {}, "summary": {}}
    for raw in _records(files[0]):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "summary":
            for item in rec.summary.update:
                _merge_item(out["summary"], item)
            continue
        if kind == "run":
            r = rec.run
            out.update(id=r.run_id, project=r.project, group=r.run_group, job_type=r.job_type,
                       name=r.display_name, tags=list(r.tags))
            items = r.config.update
        elif kind == "config":
            items = rec.config.update
        else:
            continue
        for item in items:
            key = item.key or "/".join(item.nested_key)
            if key != "_wandb":
                out["config"][key] = json.loads(item.value_json)
    return out


def finish() -> None:
    """Ends the current W&B run, if any: a later run in this process must not land in it."""
    import sys

    if "wandb" in sys.modules:  # nothing to end when W&B was never imported
        import wandb

        wandb.finish()


def run_attrs(logger: Any) -> dict[str, Any]:
    """``{wandb_run_id, wandb_dir}`` of a started logger's run (what a trial records)."""
    exp = getattr(logger, "_experiment", None)
    if exp is None:
        return {}
    try:
        return {"wandb_run_id": exp.id, "wandb_dir": str(Path(exp.dir).parent)}
    except Exception:  # noqa: BLE001 - a disabled run has no files
        return {}


__all__ = ["define_objective", "finish", "logged_in", "make_wandb_logger", "read_offline_run",
           "resolve_mode", "run_attrs", "update_summary", "wandb_settings"]
