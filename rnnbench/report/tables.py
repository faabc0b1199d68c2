"""The comparison table of one study: one row per variant with its statistics and verdicts.

Opening a study lives in :mod:`rnnbench.report.source`, the text formats in
:mod:`rnnbench.report.formats`; their names are re-exported here, where they used to live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from rnnbench.report.formats import (
    DASH,
    display_name,
    display_rows,
    latex_escape,
    table_rows,
    to_csv,
    to_latex,
    to_markdown,
    to_rich,
)
from rnnbench.report.published import load_published, lookup, rows_of
from rnnbench.report.source import ReportError, StudySource, open_source
from rnnbench.report.stats import (
    ALPHA,
    metric_direction,
    summarize,
    verdict_vs_value,
    verdict_welch,
)

TOKENS = "train/tokens_per_s"


# ---------------------------------------------------------------------- the logs
@lru_cache(maxsize=512)
def _read_log_cached(path: str, mtime: float) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None


def read_log(run_dir: str | Path | None) -> pd.DataFrame | None:
    """The Lightning CSV log ``{run_dir}/metrics.csv`` of one trial, or ``None``."""
    if not run_dir:
        return None
    path = Path(run_dir) / "metrics.csv"
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    return _read_log_cached(str(path), mtime)


def _tokens_per_s(row: dict[str, Any], trials: list[dict[str, Any]]) -> float | None:
    """Median ``train/tokens_per_s`` over the final runs' logs (else the search trials')."""
    for dirs in ([r["run_dir"] for r in row["final"]["runs"]],
                 [t["run_dir"] for t in trials if t["kind"] == "search"]):
        values = []
        for d in dirs:
            log = read_log(d)
            if log is not None and TOKENS in log:
                values += log[TOKENS].dropna().tolist()
        if values:
            return float(pd.Series(values).median())
    return None


# ---------------------------------------------------------------------- the table
@dataclass
class ReportTable:
    """One study's comparison table.

    Attributes:
        data: One row per variant, raw numbers (what ``report.csv`` holds); the columns are
            described in ``docs/report.md``.
        best: The variant the p-values compare against (best final validation mean among the
            trained variants).
        best_baseline: The baseline the verdict column compares against (best final
            validation mean among the baselines), if the study has any.
        test_direction: ``minimize``/``maximize`` of the test metric (``None``: unknown, no
            verdicts).
        notes: Sentences shown under the table (failures, missing data, the test used).
        unfinished: What is left of an unfinished study (``None``: finished); set by
            :func:`rnnbench.report.render.build_report`.
        resume: The command that resumes it, when known.
    """

    study: str
    metric: str
    test_metric: str | None
    direction: str
    data: pd.DataFrame
    best: str | None
    paper: dict[str, str] | None = None
    notes: list[str] = field(default_factory=list)
    description: str = ""
    trials_per_variant: int = 0
    seeds: list[int] = field(default_factory=list)
    best_baseline: str | None = None
    test_direction: str | None = None
    unfinished: str | None = None
    resume: str | None = None

    @property
    def has_baselines(self) -> bool:
        return bool(self.data["baseline"].any()) if "baseline" in self.data else False

    @property
    def title(self) -> str:
        return (f"study {self.study}: {self.trials_per_variant} trials per variant, best "
                f"configuration re-run over {len(self.seeds)} seed(s)")

    @property
    def any_complete(self) -> bool:
        """Whether a trained variant (not a baseline) completed a search trial."""
        return bool(((self.data["complete"] > 0) & ~self.data["baseline"]).any())


def parse_paper(text: str) -> dict[str, str]:
    """``"chung2014:jsb_chorales"`` -> ``{"source": ..., "dataset": ...}``; a third part,
    ``"bai2018:jsb_chorales:tcn"``, holds every trained variant against that published row.

    Raises:
        ReportError: Malformed, or no published figures for that pair (lists the known ones)
            or that row.
    """
    known = sorted({(p.source, p.dataset) for p in load_published()})
    source, _, rest = text.partition(":")
    dataset, _, against = rest.partition(":")
    if (source, dataset) not in known:
        raise ReportError(f"--paper {text!r} names no published figures; use SOURCE:DATASET, "
                          "one of " + ", ".join(f"{s}:{d}" for s, d in known))
    rows = rows_of(source, dataset)
    if against and against not in rows:
        raise ReportError(f"--paper {text!r}: {source} has no {dataset} row {against!r}; its "
                          f"rows: {', '.join(rows)}")
    return {"source": source, "dataset": dataset, **({"against": against} if against else {})}


def _values(row: dict[str, Any], key: str | None) -> list[float]:
    if not key:
        return []
    out = []
    for r in row["final"]["runs"]:
        v = (r.get("metrics") or {}).get(key)
        if r["state"] == "COMPLETE" and isinstance(v, (int, float)) and math.isfinite(v):
            out.append(float(v))
    return out


def _published(paper: dict[str, str], name: str, r: dict[str, Any], short: str):
    """The published test figure of one row: the paper's own, else (for a baseline) the one
    stored for it under any source for the same data set (KN5: Mikolov et al. 2011)."""
    # study.paper.against: every trained variant against one published row (a target).
    key = r.get("published_as") or (name if r.get("baseline") else paper.get("against", name))
    pub = lookup(paper["source"], paper["dataset"], key, short, "test")
    if pub is None and r.get("baseline"):
        pub = next((p for p in load_published() if (p.dataset, p.variant, p.metric, p.split)
                    == (paper["dataset"], key, short, "test")), None)
    return pub


def _best(finals: dict[str, tuple[list[float], list[float]]], names: list[str],
          sign: float) -> str | None:
    ranked = sorted(((sign * summarize(finals[n][0] or finals[n][1]).mean, n) for n in names
                     if finals[n][0] or finals[n][1]), key=lambda x: x[0])
    return ranked[0][1] if ranked else None


def build_table(results: dict[str, Any], paper: dict[str, str] | None = None) -> ReportTable:
    """One row per variant from a ``results.json`` mapping (and the trials' CSV logs): the
    study's own per-variant row (:func:`rnnbench.studies.results.variant_rows`) plus the
    statistics of the final runs, their verdicts, throughput and the published figures.

    Baselines (``"baseline": true``) are rows too, after the variants; the best trained
    variant and the best baseline are each chosen by their final validation mean.

    Over 60 lines: one pass builds every column of a row and the notes about it, so that a
    column's rule and its note stay side by side.

    Args:
        results: What :func:`rnnbench.studies.collect` returns.
        paper: ``{"source", "dataset"}``: add the published test figure, our difference and
            the verdict against it.
    """
    from rnnbench.studies.results import variant_rows

    metric, test = results["metric"], results.get("test_metric")
    direction = results.get("direction") or "minimize"
    sign = -1.0 if direction == "maximize" else 1.0
    short = test.split("/", 1)[1] if test and "/" in test else None
    test_dir = metric_direction(test, known={metric.split("/", 1)[-1]: direction})
    rows, notes = [], []
    trials_by_variant: dict[str, list[dict[str, Any]]] = {}
    for t in results.get("trials", []):
        trials_by_variant.setdefault(t["variant"], []).append(t)
    finals = {r["variant"]: (_values(r, metric), _values(r, test)) for r in results["variants"]}
    is_base = {r["variant"]: bool(r.get("baseline")) for r in results["variants"]}
    best = _best(finals, [n for n in finals if not is_base[n]], sign)
    best_base = _best(finals, [n for n in finals if is_base[n]], sign)
    base_ref = summarize(finals[best_base][1]).mean if best_base else float("nan")
    missing_paper, other_sources = [], []
    for r, base in zip(results["variants"], variant_rows(results)):
        name = base["variant"]
        trials = trials_by_variant.get(name, [])
        s = summarize(finals[name][1])
        vs_best = vs_base = None
        if best is not None and name != best:
            vs_best = verdict_welch(finals[name][1], finals[best][1], test_dir,
                                    reference=best)
        if best_base is not None and name != best_base:
            vs_base = verdict_vs_value(s, base_ref, test_dir)
        if is_base[name]:
            durations = [x["duration_s"] for x in r["final"]["runs"]
                         if x.get("duration_s") is not None]
        else:
            # A population's members each last its whole wall time: each counts its share.
            durations = [x["duration_s"] / (x.get("population") or 1) for x in trials
                         if x.get("duration_s") is not None]
        row = {
            **{k: base[k] for k in ("variant", "cell", "num_layers", "bidirectional",
                                    "hidden_size", "num_parameters")},
            f"best_{metric}": base["best_value"], "best_params": base["best_params"],
            f"{test}_mean": s.mean, f"{test}_std": s.std, f"{test}_n": s.n,
            f"{test}_ci95_low": s.low, f"{test}_ci95_high": s.high,
            "p_value": vs_best.p if vs_best else float("nan"),
            "verdict_vs_best": (vs_best.verdict or "") if vs_best else "",
            "verdict_vs_baseline": (vs_base.verdict or "") if vs_base else "",
            **{k: base[k] for k in ("complete", "pruned", "failed", "budget", "final_failed")},
            "wall_time_s": sum(durations) if durations else float("nan"),
            "tokens_per_s": None if is_base[name] else _tokens_per_s(r, trials),
            "baseline": is_base[name],
        }
        if paper:
            pub = _published(paper, name, r, short or "")
            row["published"] = pub.value if pub else float("nan")
            row["published_diff"] = s.mean - pub.value if pub else float("nan")
            vs_pub = verdict_vs_value(s, pub.value if pub else None, test_dir)
            row["verdict_vs_published"] = vs_pub.verdict or ""
            if pub is None and not is_base[name]:
                missing_paper.append(name)
            elif pub is not None and pub.source != paper["source"]:
                other_sources.append(f"{name}: {pub.variant} of {pub.citation}")
        rows.append(row)
        if base["failed"]:
            first = next((f["reason"] for f in r["failures"] if f["reason"]), None)
            what = "baseline run(s)" if is_base[name] else "search trial(s)"
            notes.append(f"{name}: {base['failed']} {what} failed "
                         f"({', '.join(base['fail_kinds'])})"
                         + (f", e.g. {first[:160]}" if first else ""))
        if not base["complete"] and not is_base[name]:
            notes.append(f"{name}: no search trial completed, so it has no final runs")
        elif base["final_failed"] and not is_base[name]:
            notes.append(f"{name}: {base['final_failed']} final run(s) failed")
    data = pd.DataFrame(rows)
    data["tokens_per_s"] = data["tokens_per_s"].astype(float)
    if best is not None:
        how = "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)"
        notes.append(f"vs best: two-sided {how} of each row's final {test} against {best}, "
                     f"the variant with the best final {metric}: beats / falls short at "
                     f"p < {ALPHA}, else matches; needs >= 2 seeds per side")
    if test_dir is None:
        notes.append(f"no verdicts: the direction of {test} is unknown")
    else:
        notes.append(f"verdicts against a value (published, best baseline): beats / falls "
                     f"short when the row's 95% t-interval over its n seeds lies entirely on "
                     f"the better / worse side ({'lower' if test_dir == 'minimize' else 'higher'}"
                     " is better), matches when it contains the value; none for n < 2")
    if best_base is not None:
        r = next(x for x in results["variants"] if x["variant"] == best_base)
        notes.append(f"baselines (no recurrence, fitted on the training split, scored by the "
                     f"same metric): the best, {best_base} ({r.get('description') or ''}), "
                     f"reaches {test} {base_ref:.4g}")
    if paper and missing_paper:
        notes.append(f"{paper['source']} reports no {paper['dataset']} test {short} for "
                     + ", ".join(missing_paper))
    if other_sources:
        notes.append("published figures from another source: " + "; ".join(other_sources))
    if data.loc[~data["baseline"], "tokens_per_s"].isna().all():
        notes.append(f"tokens/s: no {TOKENS} in the trials' CSV logs")
    return ReportTable(
        study=results["study"], metric=metric, test_metric=test, direction=direction,
        data=data, best=best, paper=paper, notes=notes,
        description=results.get("description") or "",
        trials_per_variant=results.get("trials_per_variant", 0),
        seeds=list(results.get("seeds", [])), best_baseline=best_base,
        test_direction=test_dir)


__all__ = ["DASH", "ReportError", "ReportTable", "StudySource", "build_table", "display_name",
           "display_rows", "latex_escape", "open_source", "parse_paper", "read_log",
           "table_rows", "to_csv", "to_latex", "to_markdown", "to_rich"]
