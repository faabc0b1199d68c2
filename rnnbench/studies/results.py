"""Study results from the storage alone: per-variant table, every trial, mean +- std."""

from __future__ import annotations

import csv
import json
import math
import statistics
import warnings
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from rnnbench.studies.ledger import POPULATION_ATTR, RESULTS_ATTR, StudyRun, set_study_attr
from rnnbench.studies.spec import Variant
from rnnbench.studies.trials import FINAL, SEARCH

RESULTS_VERSION = 1
TRIAL_COLUMNS = (
    "study", "variant", "kind", "number", "state", "value", "seed", "slot", "params",
    "num_parameters", "hidden_size", "best_epoch", "fail_kind", "fail_reason", "retried_from",
    "retry_of_count", "duration_s", "population", "run_dir", "wandb_run_id",
)


def _finite(x: Any) -> float | None:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _trial_row(run: StudyRun, variant: str, kind: str, t: FrozenTrial) -> dict[str, Any]:
    a = t.user_attrs
    duration = None
    if t.datetime_start and t.datetime_complete:
        duration = round((t.datetime_complete - t.datetime_start).total_seconds(), 3)
    return {
        "study": run.spec.name, "variant": variant, "kind": kind, "number": t.number,
        "state": t.state.name, "value": _finite(t.value) if t.values else None,
        "seed": a.get("seed"), "slot": a.get("slot"), "params": dict(t.params),
        "num_parameters": a.get("num_parameters"), "hidden_size": a.get("hidden_size"),
        "best_epoch": a.get("best_epoch"), "fail_kind": a.get("fail_kind"),
        "fail_reason": a.get("fail_reason") or a.get("prune_reason"),
        "retried_from": a.get("retried_from"), "retry_of_count": a.get("retry", 0),
        "duration_s": duration, "population": t.system_attrs.get(POPULATION_ATTR),
        "run_dir": a.get("run_dir"),
        "wandb_run_id": a.get("wandb_run_id"), "metrics": a.get("metrics") or {},
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    ok = [r for r in runs if r["state"] == "COMPLETE"]
    keys = sorted({k for r in ok for k in r["metrics"]})
    out = {}
    for key in keys:
        values = [r["metrics"][key] for r in ok if _finite(r["metrics"].get(key)) is not None]
        if not values:
            continue
        out[key] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,  # sample std
            "n": len(values),
        }
    return out


def collect(run: StudyRun, sizes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything a comparison table needs, read from the storage (no W&B, no logs).

    Args:
        run: The study.
        sizes: Optional ``{variant: {"hidden_size", "num_parameters"}}`` of the base config,
            used when a variant's best trial does not give them (else any trial's are).

    Returns:
        The ``results.json`` mapping (format in ``docs/studies.md``).
    """
    spec = run.spec
    metric = spec.metric or ""
    test_metric = spec.test_metric or ("test/" + metric.split("/", 1)[1] if "/" in metric
                                        else None)
    variants, trials = [], []
    for v in spec.variants:
        rows = {kind: [_trial_row(run, v.name, kind, t) for t in run.trials(v, kind)]
                for kind in (SEARCH, FINAL)}
        trials += rows[SEARCH] + rows[FINAL]
        search = run.tally(v, SEARCH)
        superseded = {r["retried_from"] for r in rows[FINAL]} - {None}
        finals = [r for r in rows[FINAL] if r["number"] not in superseded
                  and r["state"] not in ("WAITING", "RUNNING")]
        best = search.best
        best_row = next((r for r in rows[SEARCH] if best and r["number"] == best.number), None)
        # The size of the best trial, else the pre-flight's, else any trial's.
        sized = [r for r in [best_row] + rows[SEARCH] + rows[FINAL]
                 if r and r["num_parameters"] is not None]
        size = dict((sizes or {}).get(v.name, {}))
        if sized and (sized[0] is best_row or not size):
            size = {"hidden_size": sized[0]["hidden_size"],
                    "num_parameters": sized[0]["num_parameters"]}
        summary = _summary(finals)
        failed = [r for r in rows[SEARCH] + rows[FINAL] if r["state"] == "FAIL"]
        variants.append({
            "variant": v.name, **v.model(), **size,
            "trials": {"budget": spec.trials_per_variant, "done": search.done,
                       "complete": search.complete, "pruned": search.pruned,
                       "failed": search.failed, "retried": search.retried,
                       "pending": search.pending},
            "failures": [{"kind": r["kind"], "number": r["number"],
                          "fail_kind": r["fail_kind"], "reason": r["fail_reason"],
                          "retried": r["number"] in
                          ({x["retried_from"] for x in rows[r["kind"]]} - {None})}
                         for r in failed],
            "best": None if best is None else {
                "number": best.number, "value": _finite(best.value),
                "params": dict(best.params), "best_epoch": best.user_attrs.get("best_epoch")},
            "final": {
                "seeds": list(spec.seeds),
                "runs": [{k: r[k] for k in ("number", "seed", "state", "value", "metrics",
                                            "fail_reason", "run_dir", "num_parameters",
                                            "hidden_size")} for r in finals],
                "summary": summary,
                "metric": summary.get(metric),
                "test_metric": summary.get(test_metric) if test_metric else None,
            },
        })
    variants += baseline_variants(run, metric, test_metric)
    return {
        "version": RESULTS_VERSION,
        "study": spec.name,
        "description": spec.description,
        "storage": run.url.display,
        "metric": metric,
        "test_metric": test_metric,
        "direction": spec.direction,
        "trials_per_variant": spec.trials_per_variant,
        "seeds": list(spec.seeds),
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "complete": run.all_done(),
        "variants": variants,
        "trials": trials,
    }


def _baseline_variant(spec: Any, name: str, slot: dict[str, Any], metric: str,
                      test_metric: str | None) -> dict[str, Any]:
    """One baseline as a ``results.json`` variant entry: a budget of one "trial" (its fit),
    one final run per seed, ``"baseline": true``."""
    seeds = [str(s) for s in (list(spec.seeds) or [int(spec.config.get("seed", 0) or 0)])]
    rows = [slot["seeds"][s] for s in seeds if s in slot.get("seeds", {})]
    runs = [{"number": i, "seed": r["seed"], "state": r["state"], "value": _finite(r["value"]),
             "metrics": r["metrics"], "fail_reason": r["fail_reason"], "run_dir": None,
             "num_parameters": r["num_parameters"], "hidden_size": None,
             "duration_s": r.get("duration_s")} for i, r in enumerate(rows)]
    ok = [r for r in rows if r["state"] == "COMPLETE"]
    summary = _summary(runs)
    values = [v for v in (_finite(r["value"]) for r in ok) if v is not None]
    first = ok[0] if ok else (rows[0] if rows else {})
    return {
        "variant": name, "baseline": True, "cell": None, "num_layers": None,
        "bidirectional": None, "hidden_size": None,
        "num_parameters": first.get("num_parameters"),
        "description": first.get("description", ""), "options": first.get("options", {}),
        "published_as": first.get("published_as"),
        "trials": {"budget": 1, "done": 1 if rows else 0, "complete": 1 if ok else 0,
                   "pruned": 0, "failed": 1 if rows and not ok else 0, "retried": 0,
                   "pending": 0 if rows else 1},
        "failures": [{"kind": SEARCH, "number": i, "fail_kind": "error",
                      "reason": r["fail_reason"], "retried": False}
                     for i, r in enumerate(rows) if r["state"] != "COMPLETE"],
        "best": None if not values else {
            "number": 0, "value": statistics.fmean(values), "params": first.get("options", {}),
            "best_epoch": None},
        "final": {
            "seeds": list(spec.seeds), "runs": runs, "summary": summary,
            "metric": summary.get(metric),
            "test_metric": summary.get(test_metric) if test_metric else None,
        },
        "wall_time_s": sum(r.get("duration_s") or 0.0 for r in rows),
    }


def baseline_variants(run: StudyRun, metric: str, test_metric: str | None
                      ) -> list[dict[str, Any]]:
    """The ``study.baselines`` rows stored with the study, in the study file's order."""
    from rnnbench.studies.baselines import stored_baselines

    if not getattr(run.spec, "baselines", None):
        return []
    stored = stored_baselines(run)
    return [_baseline_variant(run.spec, e["name"], stored[e["name"]], metric, test_metric)
            for e in run.spec.baselines if e["name"] in stored]


def param_importances(run: StudyRun, variant: Variant
                      ) -> tuple[dict[str, float] | None, str | None]:
    """Optuna's hyper-parameter importance (default evaluator, fANOVA) of one variant over its
    complete search trials, for the searched parameters that vary.

    Returns:
        ``({param: importance}, None)``, or ``(None, why not)`` below 2 complete trials, when
        no searched parameter varies, or when the evaluator fails.
    """
    import optuna

    done = [t for t in run.trials(variant, SEARCH) if t.state == TrialState.COMPLETE]
    if len(done) < 2:
        return None, f"{variant.name}: fewer than 2 complete trials, no importance"
    varying = sorted({k for t in done for k in t.params
                      if len({repr(x.params.get(k)) for x in done}) > 1})
    if not varying:
        return None, f"{variant.name}: no searched parameter varies, no importance"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(run.study(variant, SEARCH),
                                                           params=varying), None
    except Exception as err:  # noqa: BLE001 - a figure is not worth failing the report
        return None, f"{variant.name}: importance failed ({type(err).__name__}: {err})"


# results.csv: one row per variant (the columns of variant_rows that docs/studies.md lists).
RESULTS_CSV_COLUMNS = (
    "variant", "cell", "num_layers", "bidirectional", "hidden_size", "num_parameters", "budget",
    "complete", "pruned", "failed", "retried", "best_trial", "best_value", "best_params",
    "n_seeds", "baseline",
)


def variant_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per variant of a ``results.json`` mapping: what it is, its size, its trial
    counts, its best search trial and its final runs' mean and sample std.

    Every per-variant table reads these from here: ``results.csv``, the launcher's table and
    ``rnnbench report`` (which adds its statistics), so no two of them can disagree.

    Baselines (``study.baselines``) come as rows with ``baseline`` true, after the variants.

    Returns:
        Dicts with the keys of :data:`RESULTS_CSV_COLUMNS`, plus ``done``, ``fail_kinds``
        (why search trials failed for good), ``final_failed`` and, for ``M`` the study's
        metric and test metric, ``M_mean``, ``M_std``, ``M_n``.
    """
    rows = []
    for r in results["variants"]:
        t, best, final = r["trials"], r["best"] or {}, r["final"]
        row = {
            "variant": r["variant"], "baseline": bool(r.get("baseline")),
            "cell": r.get("cell"), "num_layers": r.get("num_layers"),
            "bidirectional": r.get("bidirectional"), "hidden_size": r.get("hidden_size"),
            "num_parameters": r.get("num_parameters"), "budget": t["budget"],
            "done": t["done"], "complete": t["complete"], "pruned": t["pruned"],
            "failed": t["failed"], "retried": t["retried"],
            "fail_kinds": sorted({str(f["fail_kind"]) for f in r["failures"]
                                  if not f["retried"] and f["kind"] == SEARCH}),
            "best_trial": best.get("number"), "best_value": best.get("value"),
            "best_params": dict(best.get("params") or {}),
            "n_seeds": (final["metric"] or {}).get("n", 0),
            "final_failed": sum(x["state"] == "FAIL" for x in final["runs"]),
        }
        for key, which in ((results["metric"], "metric"),
                           (results["test_metric"], "test_metric")):
            stat = final[which] or {}
            row.update({f"{key}_mean": stat.get("mean"), f"{key}_std": stat.get("std"),
                        f"{key}_n": stat.get("n", 0)})
        rows.append(row)
    return rows


def _fmt_final(row: dict[str, Any], key: str) -> str:
    n = row[f"{key}_n"]
    if not n:
        return "failed" if row["final_failed"] else "-"
    std = row[f"{key}_std"]
    return f"{row[f'{key}_mean']:.4f}" + (f" +- {std:.4f}" if std is not None else "") + \
        f" (n={n})"


def write_results(run: StudyRun, out_dir: str | Path,
                  sizes: dict[str, dict[str, Any]] | None = None, *,
                  results: dict[str, Any] | None = None) -> dict[str, Path]:
    """Writes ``results.json``, ``results.csv`` (one row per variant) and ``trials.csv``
    (one row per trial) to ``out_dir`` and stores the results in the root study's system
    attribute ``rnnbench:results`` (so the storage alone rebuilds every table).

    Returns:
        ``{"json": path, "csv": path, "trials": path}``.
    """
    results = results or collect(run, sizes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv",
             "trials": out / "trials.csv"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(paths["json"])  # never half-written
    metric, test_metric = results["metric"], results["test_metric"]
    columns = [*RESULTS_CSV_COLUMNS, f"{metric}_mean", f"{metric}_std",
               f"{test_metric}_mean", f"{test_metric}_std"]
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for row in variant_rows(results):
            w.writerow({**row, "best_params": json.dumps(row["best_params"])})
    with open(paths["trials"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*TRIAL_COLUMNS, "metrics"])
        w.writeheader()
        for row in results["trials"]:
            w.writerow({**row, "params": json.dumps(row["params"]),
                        "metrics": json.dumps(row["metrics"])})
    try:
        stored = {k: v for k, v in results.items() if k != "trials"}
        set_study_attr(run.storage, run.storage.get_study_id_from_name(run.spec.name),
                       RESULTS_ATTR, json.loads(json.dumps(stored, default=str)))
    except Exception:  # noqa: BLE001 - the files are written; the attribute is a copy
        pass
    return paths


def results_table(results: dict[str, Any]):
    """A Rich table: one row per variant, final mean +- std over seeds."""
    from rich.table import Table

    metric, test_metric = results["metric"], results["test_metric"]
    table = Table(title=f"study {results['study']}: {results['trials_per_variant']} trials "
                  f"per variant, best config re-run over {len(results['seeds'])} seed(s)")
    for col, kw in (("variant", {}), ("hidden", {"justify": "right"}),
                    ("params", {"justify": "right"}), ("done", {"justify": "right"}),
                    ("pruned", {"justify": "right"}), ("failed", {"justify": "right"}),
                    (f"best {metric}", {"justify": "right"}),
                    (f"final {metric}", {"justify": "right"}),
                    (f"final {test_metric}", {"justify": "right"}),
                    ("best hyper-parameters", {})):
        table.add_column(col, **kw)
    for r in variant_rows(results):
        params = r["num_parameters"]
        failed = str(r["failed"])
        if r["failed"] and r["fail_kinds"]:
            failed += " (" + ", ".join(r["fail_kinds"]) + ")"
        table.add_row(
            r["variant"] + (" (baseline)" if r["baseline"] else ""),
            str(r["hidden_size"] or "-"),
            f"{params:,}" if isinstance(params, int) else "-",
            f"{r['done']}/{r['budget']}", str(r["pruned"]), failed,
            f"{r['best_value']:.4f}" if r["best_value"] is not None else "none completed",
            _fmt_final(r, metric), _fmt_final(r, test_metric),
            ", ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(r["best_params"].items()))
            or "-",
        )
    return table


def _fmt_param(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


__all__ = ["RESULTS_CSV_COLUMNS", "baseline_variants", "collect", "param_importances",
           "results_table", "variant_rows", "write_results"]
