"""Report figures (matplotlib, Agg): learning curves, optimisation history, importance, size."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rnnbench.report.stats import is_nonnegative
from rnnbench.report.tables import ReportTable, read_log

# fANOVA fitted to fewer trials splits on noise: from 2 trials one parameter takes it all.
MIN_IMPORTANCE_TRIALS = 8
# An axis of parameter counts spans at least this fraction of the largest count either side,
# so that matched budgets (1,953 and 1,968) look matched, not 15 parameters apart.
MIN_PARAM_SPAN = 0.1


@dataclass
class Figure:
    """One rendered figure: ``{"png": bytes, "svg": bytes}`` plus what the report says."""

    name: str
    title: str
    files: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # files only; never a window, also without a display
    import matplotlib.pyplot as plt

    return plt


def _render(fig: Any, name: str, title: str, notes: list[str] | None = None) -> Figure:
    plt = _pyplot()
    out = Figure(name, title, notes=list(notes or []))
    fig.tight_layout()
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        meta = {"Date": None} if fmt == "svg" else {}  # reproducible SVGs
        fig.savefig(buf, format=fmt, dpi=120, metadata=meta)
        out.files[fmt] = buf.getvalue()
    plt.close(fig)
    return out


def floor_at_zero(ax: Any, metric: str | None) -> None:
    """Starts the y axis at 0 where a non-negative metric's autoscaled range dips below."""
    if is_nonnegative(metric) and ax.get_ylim()[0] < 0:
        ax.set_ylim(bottom=0)


def clipped_errors(means: list[float], stds: list[float], metric: str | None
                   ) -> list[list[float]]:
    """Asymmetric ``yerr`` ``[[below...], [above...]]``: mean - std stops at 0 for a
    non-negative metric (a std larger than the mean does not make the metric negative)."""
    below = [min(s, m) if is_nonnegative(metric) and m >= 0 else s
             for m, s in zip(means, stds)]
    return [below, list(stds)]


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    plt = _pyplot()
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _curve(log: pd.DataFrame, metric: str) -> pd.Series | None:
    """The metric per epoch (1-based, like the pruner's steps) from one CSV log."""
    if log is None or metric not in log or "epoch" not in log:
        return None
    rows = log[["epoch", metric]].dropna()
    if rows.empty:
        return None
    s = rows.groupby("epoch")[metric].last()
    s.index = s.index.astype(int) + 1
    return s


def _baselines(results: dict[str, Any], key: str) -> list[tuple[str, float, int]]:
    """``(name, mean of key over its seeds, n)`` of each baseline that has the value."""
    out = []
    for row in results["variants"]:
        if not row.get("baseline"):
            continue
        stat = (row["final"].get("summary") or {}).get(key) or {}
        if stat.get("n"):
            out.append((row["variant"], float(stat["mean"]), int(stat["n"])))
    return out


def _draw_baselines(ax: Any, lines: list[tuple[str, float, int]], label: bool = True) -> None:
    """Baselines as dashed horizontal lines: they have no epochs, trials or size axis."""
    for j, (name, value, n) in enumerate(lines):
        ax.axhline(value, color="grey", ls=("--", ":", "-.")[j % 3], lw=1.2,
                   label=f"{name} (baseline, n={n})" if label else None)


def learning_curves(results: dict[str, Any]) -> Figure:
    """Validation metric against epoch per variant: mean over the final seeds, min-max band,
    thin lines for the single seeds; baselines as dashed horizontal lines."""
    plt = _pyplot()
    metric = results["metric"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    notes, drawn = [], 0
    baselines = _baselines(results, metric)
    _draw_baselines(ax, baselines)
    for i, row in enumerate(results["variants"]):
        if row.get("baseline"):
            continue
        curves = [c for r in row["final"]["runs"] if r["state"] == "COMPLETE"
                  for c in [_curve(read_log(r.get("run_dir")), metric)] if c is not None]
        if not curves:
            notes.append(f"{row['variant']}: no final run logged {metric}")
            continue
        frame = pd.concat(curves, axis=1)  # (epochs, seeds)
        color = f"C{i % 10}"
        mean = frame.mean(axis=1)
        ax.plot(mean.index, mean.values, color=color, marker="o", ms=3,
                label=f"{row['variant']} (n={frame.shape[1]})")
        if frame.shape[1] > 1:
            ax.fill_between(frame.index, frame.min(axis=1), frame.max(axis=1), color=color,
                            alpha=0.2, linewidth=0)
        drawn += 1
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"{results['study']}: {metric} of the final runs (mean, min-max over seeds)")
    floor_at_zero(ax, metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if drawn or baselines:
        ax.legend(fontsize=8)
    if not drawn:
        ax.text(0.5, 0.5, "no final run logged " + metric, ha="center", va="center",
                transform=ax.transAxes)
    return _render(fig, "learning_curves", "Learning curves", notes)


def optimization_history(results: dict[str, Any]) -> Figure:
    """Per variant: each search trial's value by trial number and the best so far, beside
    the baselines' values (dashed)."""
    metric = results["metric"]
    maximize = results.get("direction") == "maximize"
    variants = [r["variant"] for r in results["variants"] if not r.get("baseline")]
    baselines = _baselines(results, metric)
    fig, axes = _grid(max(len(variants), 1))
    for i, (name, ax) in enumerate(zip(variants, axes)):
        _draw_baselines(ax, baselines)
        rows = sorted((t for t in results.get("trials", [])
                       if t["variant"] == name and t["kind"] == "search"),
                      key=lambda t: t["number"])
        done = [t for t in rows if t["state"] == "COMPLETE" and t["value"] is not None]
        counts = {s: sum(t["state"] == s for t in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
        if done:
            x = [t["number"] for t in done]
            y = [t["value"] for t in done]
            ax.scatter(x, y, color=f"C{i % 10}", s=18, label="trial value", zorder=3)
            best = (pd.Series(y).cummax() if maximize else pd.Series(y).cummin()).tolist()
            ax.step(x, best, where="post", color="black", lw=1.2, label="best so far")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no complete trial", ha="center", va="center",
                    transform=ax.transAxes)
        for t in rows:
            if t["state"] in ("PRUNED", "FAIL"):
                ax.axvline(t["number"], color="red" if t["state"] == "FAIL" else "grey",
                           lw=0.8, ls=":", zorder=1)
        ax.set_title(f"{name}: {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
                     f"{counts['FAIL']} failed", fontsize=9)
        ax.set_xlabel("trial number")
        ax.set_ylabel(metric)
        ax.xaxis.get_major_locator().set_params(integer=True)
        floor_at_zero(ax, metric)
    fig.suptitle(f"{results['study']}: optimisation history "
                 "(dotted: pruned grey, failed red)", fontsize=10)
    return _render(fig, "history", "Optimisation history")


def _complete_search(results: dict[str, Any], variant: str) -> int:
    return sum(t["variant"] == variant and t["kind"] == "search" and t["state"] == "COMPLETE"
               for t in results.get("trials", []))


def importance(run: Any, results: dict[str, Any]) -> Figure:
    """Per variant: Optuna's hyper-parameter importance (default evaluator, fANOVA) over the
    complete search trials.

    A variant with fewer than :data:`MIN_IMPORTANCE_TRIALS` complete trials, or whose searched
    parameters do not vary, is left out with a note saying why; with none left the figure has
    no image (``files`` empty), only its notes. Needs the storage (``run``).
    """
    from rnnbench.studies.results import param_importances

    out = Figure("importance", "Hyper-parameter importance")
    if run is None:
        out.notes.append("parameter importance needs the study storage (only results.json "
                         "found)")
        return out
    shown = []
    for v in run.spec.variants:
        n = _complete_search(results, v.name)
        if n < MIN_IMPORTANCE_TRIALS:
            out.notes.append(
                f"{v.name}: {n} complete search trial(s), no importance: it needs >= "
                f"{MIN_IMPORTANCE_TRIALS}, since fANOVA fitted to fewer splits on noise (from "
                "2 trials one parameter gets all of it)")
            continue
        values, note = param_importances(run, v)
        if values is None:
            out.notes.append(str(note))
        else:
            shown.append((v.name, n, values))
    if not shown:
        return out
    fig, axes = _grid(len(shown), width=4.2, height=2.6)
    for i, ((name, n, values), ax) in enumerate(zip(shown, axes)):
        names = list(values)[::-1]  # the most important on top
        ax.barh(names, [values[k] for k in names], height=0.5, color=f"C{i % 10}")
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"importance for {results['metric']}")
        ax.set_title(f"{name} ({n} complete trials)", fontsize=9)
    fig.suptitle(f"{results['study']}: hyper-parameter importance (fANOVA)", fontsize=10)
    return _render(fig, out.name, out.title, out.notes)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _param_axis(ax: Any, counts: list[float]) -> None:
    """Parameter counts from 0.9x the smallest to 1.1x the largest at least, with thousands
    separators: a 15-parameter gap between matched budgets stays small on the page."""
    from matplotlib.ticker import FuncFormatter

    if counts:
        low, high = ax.get_xlim()
        ax.set_xlim(min(low, (1 - MIN_PARAM_SPAN) * min(counts)),
                    max(high, (1 + MIN_PARAM_SPAN) * max(counts)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))


def metric_vs_params(table: ReportTable) -> Figure:
    """Final test metric (mean +- sample std over seeds) against parameter count, with the
    published figures when a paper is given and the baselines as dashed lines."""
    plt = _pyplot()
    test = table.test_metric or table.metric
    d = table.data
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    drawn = 0
    base = d[d["baseline"]] if "baseline" in d else d.iloc[:0]
    _draw_baselines(ax, [(r["variant"], r[f"{test}_mean"], int(r[f"{test}_n"]))
                         for _, r in base.iterrows() if r[f"{test}_n"]])
    for i, (_, r) in enumerate(d.iterrows()):
        mean, n = r[f"{test}_mean"], r[f"{test}_n"]
        if r.get("baseline") or not n or pd.isna(r["num_parameters"]):
            continue
        std = r[f"{test}_std"] if n > 1 else 0.0
        ax.errorbar([r["num_parameters"]], [mean], yerr=clipped_errors([mean], [std], test),
                    fmt="o", capsize=4,
                    color=f"C{i % 10}", label=f"{r['variant']} (n={int(n)})")
        ax.annotate(r["variant"], (r["num_parameters"], mean), textcoords="offset points",
                    xytext=(6, 4), fontsize=8)
        drawn += 1
    if table.paper and "published" in d:
        pub = d[~d["baseline"]].dropna(subset=["published"])
        if not pub.empty:
            ax.scatter(pub["num_parameters"], pub["published"], marker="*", s=90,
                       color="black", label=f"{table.paper['source']} (published)")
    _param_axis(ax, [r["num_parameters"] for _, r in d.iterrows()
                     if not r.get("baseline") and _finite(r["num_parameters"])])
    floor_at_zero(ax, test)
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{test} (final runs, mean ± std)")
    ax.set_title(f"{table.study}: {test} vs parameter count")
    if drawn or len(base):
        ax.legend(fontsize=8)
    if not drawn:
        ax.text(0.5, 0.5, f"no final run has {test}", ha="center", va="center",
                transform=ax.transAxes)
    return _render(fig, "metric_vs_params", f"{test} vs parameter count")


def all_figures(table: ReportTable, results: dict[str, Any], run: Any = None) -> list[Figure]:
    """Every report figure, rendered in memory (nothing is written here)."""
    return [learning_curves(results), optimization_history(results), importance(run, results),
            metric_vs_params(table)]


__all__ = ["MIN_IMPORTANCE_TRIALS", "Figure", "all_figures", "clipped_errors", "floor_at_zero",
           "importance", "learning_curves", "metric_vs_params",
           "optimization_history"]
