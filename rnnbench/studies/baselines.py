"""The baselines of a study (``study.baselines``): fitted and scored like a final run.

Each baseline is fitted on the training split of the study's own data and scored on its
validation and test splits by the task's own loss and metrics (the code the trained variants
are scored with, batch by batch, through the same data module), once per final seed, since
some data sets (adding, copy) are drawn from the seed. Options left open are chosen on the
validation split by the study metric. The rows are stored in the root study's system
attribute ``rnnbench:baselines``, so the storage alone rebuilds every table, and a resumed
study does not compute them again.
"""

from __future__ import annotations

import copy
import itertools
import math
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from rnnbench.config import ConfigError

BASELINES_ATTR = "rnnbench:baselines"


# ---------------------------------------------------------------------- the study option
def parse_baselines(raw: Any) -> list[dict[str, Any]]:
    """``study.baselines`` -> ``[{"name", "options"}]``, checked against the registry.

    Entries are names (``persistence``) or mappings (``{name: ar, order: [1, 2, 5]}``); an
    option given as a list is chosen on the validation split.

    Raises:
        ConfigError: An unknown baseline (with the known ones), an option it does not take,
            a baseline listed twice.
    """
    import inspect

    from rnnbench.baselines import get_baseline

    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raw = [raw]
    out: list[dict[str, Any]] = []
    for item in raw:
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(f"study.baselines entry {item!r} must be a baseline name or a "
                              "mapping with name (and its options), e.g. {name: ar, order: 5}")
        name = item["name"]
        try:
            cls = get_baseline(name)
        except KeyError as err:  # UnknownBaselineError: did you mean, and the list
            raise ConfigError(f"study.baselines: {err}") from None
        options = {k: v for k, v in item.items() if k != "name"}
        params = inspect.signature(cls.__init__).parameters
        unknown = sorted(set(options) - set(params) - {"self"})
        if unknown:
            takes = [p for p in params if p != "self"]
            raise ConfigError(f"study.baselines: {name} takes no option {unknown}; it takes "
                              f"{', '.join(takes) or 'none'}")
        if any(e["name"] == name for e in out):
            raise ConfigError(f"study.baselines lists {name} twice")
        out.append({"name": name, "options": copy.deepcopy(options)})
    return out


# ---------------------------------------------------------------------- scoring one seed
def _bundle(cfg: dict[str, Any], seed: int):
    from rnnbench.data.catalog import build_data

    try:
        return build_data(cfg["data"], seed=seed)
    except (ValueError, FileNotFoundError, OSError) as err:
        raise ConfigError(f"data: {err}") from None


def task_info(bundle: Any, cfg: dict[str, Any]):
    """The :class:`~rnnbench.baselines.TaskInfo` of a data bundle under a config."""
    from rnnbench.baselines import TaskInfo
    from rnnbench.tasks import TASKS

    options = {**bundle.task_kwargs, **(cfg.get("task") or {})}
    cls = TASKS.get(bundle.task)
    return TaskInfo(bundle.task, options, bool(cls and cls.streaming))


def scoring_task(bundle: Any, cfg: dict[str, Any]):
    """The task that scores the trained variants, built to score a baseline's outputs (its
    loss and metrics; its encoder and head are never used)."""
    from rnnbench.tasks import build_task

    kwargs = {**bundle.task_kwargs, **(cfg.get("task") or {})}
    if bundle.task == "lm":
        kwargs.setdefault("embedding_size", 1)
        kwargs["tie_weights"] = False
    return build_task(bundle.task, **kwargs)


def score(model: Any, task: Any, loader: Any, stage: str) -> dict[str, float]:
    """One pass of ``model`` over ``loader``, scored as the module scores a stage: the
    unit-weighted mean of the task's loss, its summary (perplexity, ...) and its extra
    metrics, named ``stage/name``."""
    import torch

    from rnnbench.data.batch import as_batch

    model.start()
    task.reset_metrics(stage)
    total, units = 0.0, 0.0
    with torch.no_grad():
        for raw in loader:
            batch = as_batch(raw)
            _, targets, mask, extras = task.unpack(batch)
            out = model.predict(batch).contiguous()  # as a head's output is
            loss, count = task.loss(out, targets, mask)
            total += float(loss) * float(count)
            units += float(count)
            task.update_metrics(stage, out, targets, mask, extras)
    if not units:
        raise ValueError(f"the {stage} split has no batches")
    mean = torch.tensor(total / units, dtype=torch.float64)
    metrics = {**task.summarize(mean), **task.compute_metrics(stage)}
    task.reset_metrics(stage)
    return {f"{stage}/{k}": float(v) for k, v in metrics.items()}


def _candidates(cls: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    grid = {k: v for k, v in cls.select.items() if k not in options}
    grid.update({k: v for k, v in options.items() if isinstance(v, (list, tuple))})
    fixed = {k: v for k, v in options.items() if k not in grid}
    keys = list(grid)
    return [{**fixed, **dict(zip(keys, combo))}
            for combo in itertools.product(*(list(grid[k]) for k in keys))]


def _better(a: float, b: float | None, direction: str) -> bool:
    if b is None or not math.isfinite(b):
        return math.isfinite(a)
    return a < b if direction == "minimize" else a > b


def evaluate_baseline(entry: Mapping[str, Any], cfg: dict[str, Any], *, seed: int,
                      metric: str, direction: str) -> dict[str, Any]:
    """Fits one baseline on the training split of ``cfg``'s data (built with ``seed``),
    chooses its open options on validation by ``metric``, and scores it on validation and
    test.

    Returns:
        ``{"seed", "state": "COMPLETE", "value" (the validation metric), "metrics",
        "options", "candidates", "num_parameters", "description", "published_as",
        "duration_s"}``.

    Raises:
        ConfigError: The baseline does not fit the task, or the metric is not logged.
        BaselineUnfit: No candidate could be fitted.
    """
    from rnnbench.baselines import BaselineUnfit, get_baseline

    t0 = time.perf_counter()
    cls = get_baseline(entry["name"])
    bundle = _bundle(cfg, seed)
    info = task_info(bundle, cfg)
    why = cls.check_task(info)
    if why:
        raise ConfigError(f"study.baselines: {why}")
    dm = bundle.datamodule
    task = scoring_task(bundle, cfg)
    tried, best, best_value, skipped = [], None, None, []
    for options in _candidates(cls, dict(entry.get("options") or {})):
        try:
            model = cls(**options)
            model.fit(dm.train_dataloader(), info)
        except (BaselineUnfit, ValueError) as err:
            skipped.append(f"{options}: {err}")
            continue
        metrics = score(model, task, dm.val_dataloader(), "val")
        if metric not in metrics:
            raise ConfigError(f"study.metric {metric!r} is not logged by the {info.name!r} "
                              f"task for baseline {cls.name!r}; it logs "
                              f"{', '.join(sorted(metrics))}")
        tried.append({"options": options, "value": metrics[metric]})
        if best is None or _better(metrics[metric], best_value, direction):
            best, best_value, val_metrics = model, metrics[metric], metrics
        last = model
    if best is None:
        raise BaselineUnfit(f"{cls.name}: no option could be fitted ({'; '.join(skipped)})")
    if best is not last:  # the task keeps what its last validation pass chose (a threshold)
        val_metrics = score(best, task, dm.val_dataloader(), "val")
    metrics = {**val_metrics, **score(best, task, dm.test_dataloader(), "test")}
    return {
        "seed": seed, "state": "COMPLETE", "value": metrics[metric], "metrics": metrics,
        "options": best.options(), "candidates": tried if len(tried) > 1 else [],
        "num_parameters": best.num_parameters, "description": best.describe(),
        "published_as": best.published_as(), "fail_reason": None,
        "duration_s": round(time.perf_counter() - t0, 3),
    }


# ---------------------------------------------------------------------- the study's rows
def _root_id(run: Any) -> int:
    return run.storage.get_study_id_from_name(run.spec.name)


def stored_baselines(run: Any) -> dict[str, dict[str, Any]]:
    """``{name: {"entry", "seeds": {seed: row}}}`` stored with the study (empty if none)."""
    try:
        from rnnbench.studies.ledger import study_attr

        stored = study_attr(run.storage, _root_id(run), BASELINES_ATTR)
    except KeyError:
        return {}
    return copy.deepcopy(stored or {})


def _seeds(spec: Any) -> list[int]:
    return list(spec.seeds) or [int(spec.config.get("seed", 0) or 0)]


def check_baselines(spec: Any) -> None:
    """Fails early when a baseline cannot score this study's task.

    Raises:
        ConfigError: What to fix.
    """
    from rnnbench.baselines import get_baseline

    if not spec.baselines:
        return
    cfg = copy.deepcopy(spec.config)
    info = task_info(_bundle(cfg, _seeds(spec)[0]), cfg)
    for entry in spec.baselines:
        why = get_baseline(entry["name"]).check_task(info)
        if why:
            raise ConfigError(f"study.baselines: {why}")


def run_baselines(run: Any, log: Callable[[str], Any] = print) -> dict[str, dict[str, Any]]:
    """Computes the study's baselines that are not stored yet (one row per final seed) and
    stores them in the root study's ``rnnbench:baselines`` attribute.

    A baseline that raises is stored as failed, with the reason; the study goes on.

    Returns:
        What :func:`stored_baselines` returns afterwards (``{}`` without baselines).

    Raises:
        ConfigError: A baseline cannot score this study's task (before anything is fitted).
    """
    spec = run.spec
    if not spec.baselines:
        return {}  # nothing to do: the storage is not touched
    check_baselines(spec)
    stored = stored_baselines(run)
    for entry in spec.baselines:
        name = entry["name"]
        slot = stored.get(name)
        if slot is None or slot.get("entry") != entry:  # new, or its options changed
            slot = {"entry": copy.deepcopy(entry), "seeds": {}}
        for seed in _seeds(spec):
            done = slot["seeds"].get(str(seed))
            if done and done["state"] == "COMPLETE":
                continue
            cfg = copy.deepcopy(spec.config)
            cfg["seed"] = seed
            t0 = time.perf_counter()
            try:
                row = evaluate_baseline(entry, cfg, seed=seed, metric=spec.metric,
                                        direction=spec.direction or "minimize")
            except ConfigError:
                raise
            except Exception as err:  # noqa: BLE001 - one baseline must not stop the study
                row = {"seed": seed, "state": "FAIL", "value": None, "metrics": {},
                       "options": entry.get("options") or {}, "candidates": [],
                       "num_parameters": None, "description": "", "published_as": None,
                       "fail_reason": f"{type(err).__name__}: {err}".strip()[:2000],
                       "traceback": traceback.format_exc()[-4000:],
                       "duration_s": round(time.perf_counter() - t0, 3)}
            slot["seeds"][str(seed)] = row
            shown = (f"{spec.metric} {row['value']:.6g}" if row["state"] == "COMPLETE"
                     else f"failed: {row['fail_reason']}")
            log(f"baseline {name} (seed {seed}): {shown} in {row['duration_s']:.1f} s")
        stored[name] = slot
        from rnnbench.studies.ledger import set_study_attr

        set_study_attr(run.storage, _root_id(run), BASELINES_ATTR, stored)
    return stored


__all__ = ["BASELINES_ATTR", "check_baselines", "evaluate_baseline", "parse_baselines",
           "run_baselines", "score", "scoring_task", "stored_baselines", "task_info"]
