"""The comparison table as text: terminal (Rich), Markdown, CSV and LaTeX."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnbench.report.tables import ReportTable

DASH = "-"


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


def format_params(params: Any) -> str:
    """``{"lr": 0.01234, "optimizer": "adam"}`` -> ``"lr=0.0123, optimizer=adam"``."""
    if not isinstance(params, dict) or not params:
        return DASH
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(params.items()))


def _key(x: Any) -> float:
    """What a numeric column sorts by; ``nan`` (sorted last) where the row has no value."""
    return float(x) if _isnum(x) else math.nan


def _final_cells(r: Any, test: str, pm: str) -> tuple[str, str]:
    n = int(r[f"{test}_n"])
    if n:
        final = f"{r[f'{test}_mean']:.4f}"
        final += f" {pm} {r[f'{test}_std']:.4f}" if n > 1 else ""
        final += f" (n={n})"
    else:
        final = "failed" if r["final_failed"] or r["failed"] else DASH
    ci = f"[{r[f'{test}_ci95_low']:.4f}, {r[f'{test}_ci95_high']:.4f}]" if n > 1 else DASH
    return final, ci


def _best_cell(r: Any, metric: str) -> str:
    if r["complete"]:
        return _num(r[f"best_{metric}"], 6)
    if r["baseline"]:
        return "failed"
    # A variant whose budget is not spent may still complete one: say which case it is.
    done = r["complete"] + r["pruned"] + r["failed"]
    return "none completed yet" if done < r["budget"] else "none completed"


def table_rows(table: ReportTable, pm: str = "±"
               ) -> tuple[list[str], list[list[str]], list[list[float | None]]]:
    """Headers, formatted cells and, per cell, the number it sorts by (``None``: a text
    column, sorted by its text; ``nan``: no value); shared by the terminal, Markdown, LaTeX
    and HTML tables."""
    test, metric, d = table.test_metric, table.metric, table.data
    headers = ["variant", "params (hidden)", f"best {metric}", "best hyper-parameters",
               f"final {test}", "95% CI", "vs best (Welch)", "trials c/p/f", "wall time",
               "tokens/s"]
    if table.paper:
        src = " ".join(table.paper[k] for k in ("source", "against") if k in table.paper)
        headers += [f"{src} {test}", "diff", f"vs {src}"]
    if table.best_baseline:
        headers.append(f"vs {table.best_baseline}")
    cells, keys = [], []
    for _, r in d.iterrows():
        params = f"{int(r['num_parameters']):,}" if _isnum(r["num_parameters"]) else DASH
        if _isnum(r["hidden_size"]):
            params += f" ({int(r['hidden_size'])})"
        n = int(r[f"{test}_n"])
        final, ci = _final_cells(r, test, pm)
        if r["variant"] == table.best:
            vs_best = "best"
        elif r["verdict_vs_best"]:
            p = r["p_value"]
            vs_best = f"{r['verdict_vs_best']} (p={'<0.001' if p < 1e-3 else f'{p:.3f}'})"
        else:
            vs_best = DASH
        trials = DASH if r["baseline"] else f"{r['complete']}/{r['pruned']}/{r['failed']}"
        tok = f"{r['tokens_per_s']:,.0f}" if _isnum(r["tokens_per_s"]) else DASH
        row = [display_name(table, r), params, _best_cell(r, metric),
               format_params(r.get("best_params")), final, ci, vs_best, trials,
               _duration(r["wall_time_s"]), tok]
        key = [None, _key(r["num_parameters"]), _key(r[f"best_{metric}"]), None,
               _key(r[f"{test}_mean"]), _key(r[f"{test}_ci95_low"]),
               -1.0 if r["variant"] == table.best else _key(r["p_value"]),
               math.nan if r["baseline"] else float(r["complete"]), _key(r["wall_time_s"]),
               _key(r["tokens_per_s"])]
        if table.paper:
            diff = r["published_diff"]
            row += [_num(r["published"]), f"{diff:+.4f}" if _isnum(diff) else DASH,
                    _verdict_cell(r["verdict_vs_published"], n)]
            key += [_key(r["published"]), _key(diff), None]
        if table.best_baseline:
            row.append("reference" if r["variant"] == table.best_baseline
                       else _verdict_cell(r["verdict_vs_baseline"], n))
            key.append(None)
        cells.append(row)
        keys.append(key)
    return headers, cells, keys


def display_rows(table: ReportTable, pm: str = "±") -> tuple[list[str], list[list[str]]]:
    """Headers and formatted cells shared by the terminal, Markdown and LaTeX tables."""
    headers, cells, _ = table_rows(table, pm)
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
    """The raw numbers, one row per variant (empty cells for missing values); the winning
    hyper-parameters as JSON."""
    data = table.data.copy()
    if "best_params" in data:
        data["best_params"] = [json.dumps(p, sort_keys=True) if isinstance(p, dict) and p else ""
                               for p in data["best_params"]]
    return data.to_csv(index=False, float_format="%.6g")


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



__all__ = ["DASH", "display_name", "display_rows", "format_params", "latex_escape",
           "table_rows", "to_csv", "to_latex", "to_markdown", "to_rich"]
