"""A worker trains K claimed trials of one variant as one population: search trials
(``study.population``) or final re-runs (``study.final_population``).

Each member is an ordinary Optuna trial: its values come from the study's sampler (a final
re-run's are its variant's best search trial's, pinned as a solo re-run's are), its
intermediate values are reported after every epoch and the pruner is asked about it alone
(a pruned member stops costing compute), and its outcome and user attributes are the ones a
solo trial records (same keys, same states). Configs that cannot share one model (other
shapes, windowed sequences, unsupported trainer options) run solo, said in one log line.
Final members read their own seeds' data orders, are tested with their best-validation
weights and leave that state as ``checkpoints/best.ckpt`` in their run folders, as solo
final re-runs do.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial

from rnnbench.studies.ledger import (
    ERROR,
    HOST,
    NO_BEST,
    NONFINITE,
    POPULATION_ATTR,
    Heartbeat,
    proc_start,
)
from rnnbench.studies.outcome import score_trial
from rnnbench.studies.pruning import MissingMetricError
from rnnbench.studies.samplers import make_sampler
from rnnbench.studies.spec import StudySpec, Variant
from rnnbench.studies.trials import FINAL, SEARCH, trial_config, trial_dir
from rnnbench.tracking import finish, run_attrs

if TYPE_CHECKING:
    from rnnbench.studies.worker import TrialOutcome, Worker

AUTO_CAP = 256  # study.population: auto never trains more members than this at once


def population_size(spec: StudySpec, variant: Variant | None = None,
                    budget: int | None = None) -> int:
    """How many search trials of ``variant`` a worker trains together.

    ``auto``: as many as fit in half the device's free memory (``budget`` bytes when given),
    from one member's bytes measured by :func:`rnnbench.population.member_bytes` (a worker
    asks once per variant), at most ``AUTO_CAP``. Without a variant: the largest any variant
    may get (whether populations are on at all), the cap for ``auto``.
    """
    raw = declared_population(spec, variant)
    if isinstance(raw, dict):
        return max([AUTO_CAP if v == "auto" else int(v) for v in raw.values()] or [1])
    if raw != "auto":
        return int(raw)
    if variant is None:
        return AUTO_CAP
    from rnnbench.population import member_bytes, memory_budget
    from rnnbench.population_member import member_device

    cfg = trial_config(spec, variant, {}, seed=int(spec.config.get("seed", 0) or 0))
    need = member_bytes(cfg)
    have = memory_budget(member_device(cfg)) if budget is None else int(budget)
    return max(1, min(AUTO_CAP, have // max(need, 1)))


def declared_population(spec: StudySpec, variant: Variant | None) -> int | str | dict:
    """``study.population`` as written for ``variant`` (a count or ``auto``; missing from a
    per-variant mapping: 1), or, without a variant, as written."""
    raw = spec.population
    if variant is None or not isinstance(raw, dict):
        return raw
    return raw.get(variant.name, 1)


def _reporter(trial: optuna.Trial, metric: str) -> Callable[[int, dict], str | None]:
    """A member's epoch callback: report ``metric``, return why the pruner stops it."""

    def report(epoch: int, metrics: dict[str, float]) -> str | None:
        value = metrics.get(metric)
        if value is None:
            logged = sorted(k for k in metrics if k.startswith("val/"))
            raise MissingMetricError(f"the study metric {metric} was not logged; this task "
                                     f"logs {', '.join(logged) or 'no validation metric'}")
        trial.report(float(value), epoch)
        if trial.should_prune():
            return f"pruned after epoch {epoch} with {metric} = {value:.6g}"
        return None

    return report


def _members(worker: Worker, variant: Variant, claims: list[tuple[Any, FrozenTrial]],
             kind: str = SEARCH) -> tuple[list[dict[str, Any]], list[TrialOutcome]]:
    """Each claimed trial's attributes, sampled values and run config (what a solo trial
    sets before fitting); trials whose values make no valid config fail here."""
    from rnnbench.studies.worker import TrialOutcome

    run, spec = worker.run, worker.run.spec
    members, failed = [], []
    for study, frozen in claims:
        tid = run.trial_id(study, frozen.number)
        for key, value in (("worker_host", HOST), ("worker_pid", os.getpid()),
                           ("worker_start", proc_start(os.getpid())),
                           ("worker_id", worker.worker_id)):
            run.storage.set_trial_user_attr(tid, key, value)
        seed = int(frozen.user_attrs.get("seed", spec.config.get("seed", 0) or 0))
        run_dir = trial_dir(worker.output_dir, variant, kind, frozen.number, seed)
        if kind == FINAL:
            refused = worker._pin_best(variant, frozen, tid)
            if refused:
                out = TrialOutcome(variant.name, kind, frozen.number, "FAIL", reason=refused)
                worker._finish(study, tid, out, {"fail_kind": NO_BEST, "fail_reason": refused})
                failed.append(out)
                continue
            study.sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            study.sampler = make_sampler(spec, variant, frozen.number)
        trial = optuna.Trial(study, tid)
        try:
            values = spec.space_for(variant).suggest(trial)
            cfg = trial_config(spec, variant, values, seed=seed, kind=kind)
        except Exception as err:  # noqa: BLE001 - recorded as the solo trial's error would be
            out, at = TrialOutcome(variant.name, kind, frozen.number, "FAIL"), {}
            worker._on_error(err, out, at, run_dir)
            worker._finish(study, tid, out, at)
            failed.append(out)
            continue
        run.storage.set_trial_user_attr(tid, "run_dir", str(run_dir))
        members.append(dict(study=study, frozen=frozen, tid=tid, trial=trial, seed=seed,
                            values=values, cfg=cfg, run_dir=run_dir, variant=variant))
    return members, failed


def run_population(worker: Worker, variant: Variant, claims: list[tuple[Any, FrozenTrial]],
                   kind: str = SEARCH) -> list[TrialOutcome]:
    """Trains claimed trials ``[(study, frozen)]`` of ``variant`` as one population; ``kind``
    says whether they are search trials or final re-runs."""
    from rnnbench.population import Population, PopulationUnsupported
    from rnnbench.studies.worker import TrialOutcome

    run, spec = worker.run, worker.run.spec
    members, failed = _members(worker, variant, claims, kind)
    if len(members) <= 1:
        return failed + [worker.run_trial(variant, kind, m["study"], m["frozen"])
                         for m in members]
    numbers = ", ".join(f"#{m['frozen'].number}" for m in members)
    what = "final re-runs" if kind == FINAL else "trials"
    worker.log(f"start {variant.name} population of {len(members)}: {what} {numbers}")
    outcomes = [TrialOutcome(variant.name, kind, m["frozen"].number, "FAIL") for m in members]
    attrs: list[dict[str, Any]] = [{} for _ in members]
    with contextlib.ExitStack() as stack:
        for m in members:
            stack.enter_context(Heartbeat(run, m["tid"]))
        try:
            pop = Population([m["cfg"] for m in members], keep_best=kind == FINAL,
                             callbacks=[_reporter(m["trial"], spec.metric) for m in members])
        except PopulationUnsupported as err:
            worker.log(f"{variant.name} {what} {numbers} run one at a time: {err}")
            stack.close()
            return failed + [worker.run_trial(variant, kind, m["study"], m["frozen"])
                             for m in members]
        except Exception as err:  # noqa: BLE001 - every member's outcome is recorded
            for m, out, at in zip(members, outcomes, attrs):
                worker._on_error(err, out, at, m["run_dir"])
        else:
            for m in members:  # only trials that did train together say so
                run.storage.set_trial_system_attr(m["tid"], POPULATION_ATTR, len(members))
            _fit(worker, pop, members, outcomes, attrs, kind)
    for m, out, at in zip(members, outcomes, attrs):
        worker._finish(m["study"], m["tid"], out, at)
        label = (f"final seed {m['seed']} " if kind == FINAL else "trial ") + f"#{out.number}"
        worker.log(f"{out.state.lower()} {variant.name} {label}" + (
            f": {spec.metric} = {out.value:.6g}" if out.value is not None else "")
            + (f" ({out.reason})" if out.reason else ""))
    return failed + outcomes


def _fit(worker: Worker, pop: Any, members: list[dict], outcomes: list, attrs: list,
         kind: str = SEARCH) -> None:
    """Fits the population (final re-runs: and tests it, keeping each member's best state)
    and turns each member's result into its outcome and attributes."""
    from rnnbench.config import save_config

    spec = worker.run.spec
    for m in members:
        Path(m["run_dir"]).mkdir(parents=True, exist_ok=True)
        save_config(m["cfg"], m["run_dir"])
        for key, value in (("num_parameters", pop.members[0].result.num_parameters),
                           ("hidden_size", pop.members[0].result.hidden_size)):
            worker.run.storage.set_trial_user_attr(m["tid"], key, value)
    worker._in_trial = True
    try:
        if worker.stop.is_set():
            raise KeyboardInterrupt
        results = pop.fit()
        if kind == FINAL:
            pop.test(members[0]["cfg"]["trainer"].get("limit_test_batches"))
            for k, m in enumerate(members):
                if results[k].state == "COMPLETE" and m["cfg"].get("checkpoint", {}).get(
                        "enabled", True):
                    pop.save_best(k, Path(m["run_dir"]) / "checkpoints" / "best.ckpt")
    except BaseException as err:  # noqa: BLE001 - every member's outcome is recorded
        for m, out, at in zip(members, outcomes, attrs):
            worker._on_error(err, out, at, m["run_dir"])
        return
    finally:
        worker._in_trial = False
    for m, res, out, at in zip(members, results, outcomes, attrs):
        _write_log(Path(m["run_dir"]) / "metrics.csv", res.log)
        at.update(_wandb(worker, m, res, kind))
        if res.state == "PRUNED":
            out.state, out.reason = "PRUNED", res.reason
            at["prune_reason"] = res.reason
            continue
        if res.state == "FAIL":
            out.reason = res.reason
            at.update(fail_kind=NONFINITE if res.fail_kind == "nonfinite" else ERROR,
                      fail_reason=res.reason[:2000])
            continue
        score_trial(spec.metric, res, res.best_value, res.best_epoch, out, at)


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    """A member's epochs as the ``metrics.csv`` a solo run writes (what reports read)."""
    if not rows:
        return
    from rnnbench.atomic import write_atomic

    keys = ["epoch", "step", *sorted({k for r in rows for k in r} - {"epoch", "step"})]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            out = csv.DictWriter(fh, fieldnames=keys)
            out.writeheader()
            out.writerows(rows)

    write_atomic(path, write, durable=True)


def _wandb(worker: Worker, member: dict, res: Any, kind: str = SEARCH) -> dict[str, Any]:
    """The member's own W&B run, written after the population's fit (one run at a time)."""
    m = member
    logger = worker._wandb_logger(m["cfg"], m["variant"], kind, m["frozen"].number,
                                  m["seed"], m["values"])
    if logger is None:
        return {}
    try:
        for epoch, value in sorted(res.history.items()):
            logger.log_metrics({worker.run.spec.metric: value, "epoch": epoch}, step=epoch)
        if res.metrics:
            logger.log_metrics(dict(res.metrics))
        return run_attrs(logger)
    finally:
        finish()


__all__ = ["AUTO_CAP", "declared_population", "population_size", "run_population"]
