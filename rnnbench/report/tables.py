"""The comparison table of one study: open it, build one row per variant, render it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from rnnbench.report.published import load_published, lookup
from rnnbench.report.stats import (
    ALPHA,
    metric_direction,
    summarize,
    verdict_vs_value,
    verdict_welch,
)

TOKENS = "train/tokens_per_s"
DASH = "-"


class ReportError(Exception):
    """A study cannot be found, opened or reported; the message is one paragraph for users."""


# ---------------------------------------------------------------------- opening a study
@dataclass
class StudySource:
    """What a report is built from.

    Attributes:
        results: The ``results.json`` mapping (``rnnbench.studies.collect``).
        run: The study in its storage, or ``None`` when only ``results.json`` was found (no
            optimisation history beyond the trial list, no parameter importance).
        folder: The study's output folder (``report/`` goes there by default), if known.
        paper: ``{"source", "dataset"}`` stored with the study (``study.paper``), if any.
    """

    results: dict[str, Any]
    run: Any = None
    folder: Path | None = None
    paper: dict[str, str] | None = None


def _storage_files(folder: Path) -> list[Path]:
    return [folder / f for f in ("study.journal", "study.db") if (folder / f).exists()]


def _studies_in(storage: Any) -> dict[str, dict[str, Any]]:
    """``{name: stored spec}`` of every rnnbench study (root studies) in an open storage."""
    from rnnbench.studies.ledger import rnnbench_studies

    return rnnbench_studies(storage)


def _folders_in(parent: Path) -> list[str]:
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and (
        _storage_files(p) or (p / "results.json").exists()))


def open_source(study: str, *, storage: str | None = None, folder: str | Path | None = None,
                runs_dir: str | Path = "runs") -> StudySource:
    """Finds a study the way ``rnnbench report`` does.

    Args:
        study: A study name, or a study output folder (holding ``study.db`` /
            ``study.journal`` and/or ``results.json``).
        storage: A storage URL (as ``rnnbench study run --storage``); ``study`` is the name.
        folder: The study output folder; ``study`` is the name.
        runs_dir: Where a bare name is looked for: ``{runs_dir}/{study}/``.

    Raises:
        ReportError: No such study (the message lists the ones that exist), or the storage
            cannot be opened.
    """
    from rnnbench.config import ConfigError
    from rnnbench.studies.ledger import StudyRun
    from rnnbench.studies.storage import default_storage_url, open_storage, parse_storage_url

    name: str | None = study
    if storage is None and folder is None:
        if Path(study).is_dir() and (_storage_files(Path(study))
                                     or (Path(study) / "results.json").exists()):
            folder, name = Path(study), None
        else:
            folder = Path(runs_dir) / study
            if not folder.is_dir():  # run from another folder: where `study run` recorded it
                from rnnbench.studies.status import find_study

                entry = find_study(study)
                folder = Path(entry["folder"]) if entry else folder
            if not folder.is_dir():
                known = _folders_in(Path(runs_dir))
                raise ReportError(
                    f"no study {study!r}: {folder} does not exist (studies in {runs_dir}/: "
                    f"{', '.join(known) or 'none'}). Give the study's output folder, or its "
                    "storage with --storage URL, or the folder with --dir FOLDER"
                )
    folder = Path(folder) if folder is not None else None
    try:
        if storage is None:
            assert folder is not None
            if not folder.is_dir():
                raise ReportError(f"study folder {folder} does not exist")
            if not _storage_files(folder):
                return _from_results_json(folder, name)
            storage = default_storage_url(folder, 1)  # the existing journal or database
        parsed = parse_storage_url(storage)
        if parsed.path is not None and not parsed.path.exists():
            raise ReportError(f"storage file {parsed.path} does not exist")
        known = _studies_in(open_storage(parsed, create=False))
        if name is None:
            if len(known) != 1:
                raise ReportError(
                    f"{parsed.display} holds {len(known)} rnnbench studies "
                    f"({', '.join(sorted(known)) or 'none'}); name one: rnnbench report NAME "
                    f"--storage {parsed.display}")
            (name,) = known
        if name not in known:
            raise ReportError(
                f"no study {name!r} in {parsed.display}; studies there: "
                f"{', '.join(sorted(known)) or 'none'}")
        run = StudyRun.attach(parsed, name)
    except ConfigError as err:  # StorageError too
        raise ReportError(str(err)) from None
    from rnnbench.studies.results import collect

    if folder is None and parsed.path is not None:
        folder = parsed.path.parent
    elif folder is None:
        folder = run.spec.output_dir
    paper = getattr(run.spec, "paper", None) or known[name].get("paper")
    return StudySource(collect(run), run, folder, paper or None)


def _from_results_json(folder: Path, name: str | None) -> StudySource:
    path = folder / "results.json"
    if not path.exists():
        raise ReportError(f"{folder} holds no study: no study.db, study.journal or "
                          "results.json there")
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportError(f"cannot read {path}: {err}") from None
    if name is not None and results.get("study") != name:
        raise ReportError(f"no study {name!r} in {folder}; results.json there is of study "
                          f"{results.get('study')!r}")
    return StudySource(results, None, folder, None)


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
    """``"chung2014:jsb_chorales"`` -> ``{"source": ..., "dataset": ...}``.

    Raises:
        ReportError: Malformed, or no published figures for that pair (lists the known ones).
    """
    known = sorted({(p.source, p.dataset) for p in load_published()})
    source, _, dataset = text.partition(":")
    if (source, dataset) not in known:
        raise ReportError(f"--paper {text!r} names no published figures; use SOURCE:DATASET, "
                          "one of " + ", ".join(f"{s}:{d}" for s, d in known))
    return {"source": source, "dataset": dataset}


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
    key = r.get("published_as") or name
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
            durations = [x["duration_s"] for x in trials if x.get("duration_s") is not None]
        row = {
            **{k: base[k] for k in ("variant", "cell", "num_layers", "bidirectional",
                                    "hidden_size", "num_parameters")},
            f"best_{metric}": base["best_value"],
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


# ---------------------------------------------------------------------- formatting
def _isnum(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any, digits: int = 4) -> str:
    return f"{x:.{digits}g}" if _isnum(x) else DASH


def _duration(s: Any) -> str:
    if not _isnum(s):
        return DASH
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m {sec:02d}s" if m < 60 else f"{m // 60}h {m % 60:02d}m"


def _verdict_cell(verdict: str, n: int) -> str:
    return f"{verdict} (n={n})" if verdict else DASH


def display_name(table: ReportTable, row: Any) -> str:
    """A row's name as the tables show it: baselines are marked."""
    return f"{row['variant']} (baseline)" if row.get("baseline") else str(row["variant"])


def display_rows(table: ReportTable, pm: str = "±") -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells shared by the terminal, Markdown and LaTeX tables."""
    test, metric, d = table.test_metric, table.metric, table.data
    headers = ["variant", "params (hidden)", f"best {metric}", f"final {test}",
               "95% CI", "vs best (Welch)", "trials c/p/f", "wall time", "tokens/s"]
    if table.paper:
        headers += [f"{table.paper['source']} {test}", "diff", f"vs {table.paper['source']}"]
    if table.best_baseline:
        headers.append(f"vs {table.best_baseline}")
    cells = []
    for _, r in d.iterrows():
        params = f"{int(r['num_parameters']):,}" if _isnum(r["num_parameters"]) else DASH
        if _isnum(r["hidden_size"]):
            params += f" ({int(r['hidden_size'])})"
        n = int(r[f"{test}_n"])
        if n:
            final = f"{r[f'{test}_mean']:.4f}"
            final += f" {pm} {r[f'{test}_std']:.4f}" if n > 1 else ""
            final += f" (n={n})"
        else:
            final = "failed" if r["final_failed"] or r["failed"] else DASH
        ci = (f"[{r[f'{test}_ci95_low']:.4f}, {r[f'{test}_ci95_high']:.4f}]"
              if n > 1 else DASH)
        if r["variant"] == table.best:
            vs_best = "best"
        elif r["verdict_vs_best"]:
            p = r["p_value"]
            vs_best = f"{r['verdict_vs_best']} (p={'<0.001' if p < 1e-3 else f'{p:.3f}'})"
        else:
            vs_best = DASH
        if r["baseline"]:
            best = _num(r[f"best_{metric}"], 6) if r["complete"] else "failed"
            trials = DASH
        else:
            best = _num(r[f"best_{metric}"], 6) if r["complete"] else "none completed"
            trials = f"{r['complete']}/{r['pruned']}/{r['failed']}"
        tok = f"{r['tokens_per_s']:,.0f}" if _isnum(r["tokens_per_s"]) else DASH
        row = [display_name(table, r), params, best, final, ci, vs_best, trials,
               _duration(r["wall_time_s"]), tok]
        if table.paper:
            diff = r["published_diff"]
            row += [_num(r["published"]), f"{diff:+.4f}" if _isnum(diff) else DASH,
                    _verdict_cell(r["verdict_vs_published"], n)]
        if table.best_baseline:
            row.append("reference" if r["variant"] == table.best_baseline
                       else _verdict_cell(r["verdict_vs_baseline"], n))
        cells.append(row)
    return headers, cells


def to_rich(table: ReportTable):
    """A Rich table for the terminal."""
    from rich.table import Table

    headers, cells = display_rows(table)
    out = Table(title=table.title, caption="\n".join(table.notes) or None,
                caption_justify="left")
    for i, h in enumerate(headers):
        out.add_column(h, justify="left" if i == 0 else "right",
                       style="bold" if i == 0 else None, no_wrap=i == 0)
    for row, base in zip(cells, table.data["baseline"]):
        out.add_row(*row, style="green" if row[0] == table.best else ("dim" if base else None))
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(table: ReportTable) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    headers, cells = display_rows(table)
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    for row in cells:
        name = f"**{row[0]}**" if row[0] == table.best else row[0]
        lines.append("| " + " | ".join(_md_escape(c) for c in [name, *row[1:]]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: ReportTable) -> str:
    """The raw numbers, one row per variant (empty cells for missing values)."""
    return table.data.to_csv(index=False, float_format="%.6g")


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """Escapes LaTeX's special characters (``_`` in variant and metric names above all)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def to_latex(table: ReportTable) -> str:
    """A ``booktabs`` table (``\\usepackage{booktabs}``), written without jinja2."""
    headers, cells = display_rows(table, pm="PLUSMINUS")

    def cell(text: str) -> str:
        text = latex_escape(text).replace("PLUSMINUS", r"$\pm$")
        return text.replace("<0.001", r"$<$0.001")

    spec = "l" + "r" * (len(headers) - 1)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(cell(h) for h in headers) + r" \\", r"\midrule"]
    for row in cells:
        parts = [cell(c) for c in row]
        if row[0] == table.best:
            parts[0] = rf"\textbf{{{parts[0]}}}"
        lines.append(" & ".join(parts) + r" \\")
    caption = latex_escape(table.title)
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}",
              rf"\label{{tab:{table.study}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


__all__ = ["ReportError", "ReportTable", "StudySource", "build_table", "display_name",
           "display_rows", "latex_escape", "open_source", "parse_paper", "read_log", "to_csv",
           "to_latex", "to_markdown", "to_rich"]
