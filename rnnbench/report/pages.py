"""The report pages: ``report.md`` and the self-contained ``report.html`` (no network)."""

from __future__ import annotations

import base64
import html
import re
from typing import Any

COLUMNS = (
    "Columns: *params (hidden)* parameters of the whole model (hidden units; for a baseline, "
    "the numbers it fitted); *best* the best search trial's validation value and *best "
    "hyper-parameters* the values it was found with (the final runs re-use them); *final* "
    "mean ± sample std over the n final seeds and their 95% t-interval; *vs best* the verdict "
    "of Welch's test against the bold variant (beats / falls short at p < 0.05, else "
    "matches); *trials c/p/f* complete / pruned / failed search trials; *wall time* summed "
    "trial durations (a population's members share its wall time); *tokens/s* median "
    "training throughput; *vs* a published figure or the "
    "best baseline: beats / matches / falls short by the row's 95% interval (none for n < 2). "
    "Rows marked (baseline) are models without recurrence fitted on the training split and "
    "scored by the same metric. Raw numbers: `report.csv`; `rnnbench report --help` "
    "describes the command.")


def settings(table: Any, results: dict[str, Any]) -> list[str]:
    """The study's settings as Markdown list items (without the ``- ``)."""
    from rnnbench.report.published import SOURCES

    out = [
        f"metric: `{table.metric}` ({table.direction}); final runs tested on "
        f"`{table.test_metric}`",
        f"{table.trials_per_variant} search trials per variant (sampler "
        f"`{(results.get('sampler') or {}).get('name', '?')}`, pruner "
        f"`{(results.get('pruner') or {}).get('name', '?')}`); the best configuration of each "
        f"re-run with seeds {', '.join(map(str, table.seeds)) or 'none'}",
        f"storage: `{results.get('storage', '?')}`"
        + ("" if results.get("complete", True) else " (**study not finished**)"),
    ]
    if table.paper:
        src = table.paper["source"]
        out.append(f"published: {SOURCES.get(src, src)} ({table.paper['dataset']})" + (
            f", every trained variant held against its {table.paper['against']} row"
            if "against" in table.paper else ""))
    return out


def markdown_page(table: Any, results: dict[str, Any], figures: list[Any]) -> str:
    """``report.md``: settings, the table, notes, the figures (PNG files beside it)."""
    from rnnbench.report.formats import to_markdown

    lines = [f"# Study `{table.study}`", ""]
    if table.unfinished:
        lines += [f"**Unfinished.** {table.unfinished}"
                  + (f" Resume it with: `{table.resume}`" if table.resume else ""), ""]
    if table.description:
        lines += [table.description, ""]
    lines += [f"- {s}" for s in settings(table, results)]
    lines += ["", "## Comparison", "", to_markdown(table)]
    if table.notes:
        lines += [f"- {n}" for n in table.notes] + [""]
    lines += [COLUMNS, ""]
    for fig in figures:
        lines += [f"## {fig.title}", ""]
        if "png" in fig.files:
            lines += [f"![{fig.title}]({fig.name}.png)", ""]
        lines += [f"- {n}" for n in fig.notes] + ([""] if fig.notes else [])
    return "\n".join(lines).rstrip() + "\n"


def inline(text: str) -> str:
    """Markdown's ``code``, **bold** and *emphasis* of the report's own sentences as HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", out)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
code { font-size: 90%; background: #f3f3f3; padding: 0 .2em; }
.unfinished { border-left: 4px solid #d08000; background: #fff6e0; padding: .5em 1em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { cursor: pointer; background: #f7f7f7; position: sticky; top: 0; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tr.best td { font-weight: bold; }
tr.baseline td { color: #666; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
"""

# Click a header to sort by it (again: the other way); rows without a value stay last.
# Numeric cells sort by their data-sort value, the others by their text.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col], k = cell.getAttribute("data-sort");
        return k === null ? cell.textContent.trim() : parseFloat(k);
      }
      function empty(k) { return k === "" || k === "-" || (typeof k === "number" && isNaN(k)); }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (empty(x) || empty(y)) { return empty(x) - empty(y); }
        var c = typeof x === "number" && typeof y === "number" ? x - y
          : String(x).localeCompare(String(y));
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def html_table(table: Any) -> str:
    """The comparison table as a sortable HTML table (the cells of the other formats)."""
    from rnnbench.report.formats import table_rows

    headers, cells, keys = table_rows(table)
    out = ['<table class="sortable" id="comparison">', "<thead><tr>"]
    out += [f'<th scope="col" title="click to sort">{html.escape(h)}</th>' for h in headers]
    out.append("</tr></thead><tbody>")
    for row, key, base in zip(cells, keys, table.data["baseline"]):
        cls = " ".join(c for c, on in (("best", row[0] == table.best), ("baseline", base)) if on)
        out.append(f'<tr class="{cls}">' if cls else "<tr>")
        for text, k in zip(row, key):
            attr = "" if k is None else f' data-sort="{k!r}"'
            out.append(f"<td{attr}>{html.escape(text)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _figure(fig: Any) -> str:
    out = [f"<h2>{html.escape(fig.title)}</h2>"]
    if "png" in fig.files:
        data = base64.b64encode(fig.files["png"]).decode("ascii")
        out.append(f'<figure><img src="data:image/png;base64,{data}" '
                   f'alt="{html.escape(fig.title)}"></figure>')
    if fig.notes:
        out.append("<ul>" + "".join(f"<li>{inline(n)}</li>" for n in fig.notes) + "</ul>")
    return "\n".join(out)


def html_page(table: Any, results: dict[str, Any], figures: list[Any]) -> str:
    """``report.html``: the same content as ``report.md`` in one file that opens offline: the
    figures embedded as PNG data, the table sortable by a few lines of inline script, no
    resource from the network."""
    title = f"Study {table.study}"
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>",
             "<body>", f"<h1>Study <code>{html.escape(table.study)}</code></h1>"]
    if table.unfinished:
        resume = (f" Resume it with: <code>{html.escape(table.resume)}</code>"
                  if table.resume else "")
        parts.append(f'<p class="unfinished"><strong>Unfinished.</strong> '
                     f"{inline(table.unfinished)}{resume}</p>")
    if table.description:
        parts.append(f"<p>{inline(table.description)}</p>")
    parts.append("<ul>" + "".join(f"<li>{inline(s)}</li>" for s in settings(table, results))
                 + "</ul>")
    parts += ["<h2>Comparison</h2>", f"<p>{html.escape(table.title)}</p>", html_table(table)]
    if table.notes:
        parts.append("<ul>" + "".join(f"<li>{inline(n)}</li>" for n in table.notes) + "</ul>")
    parts.append(f"<p>{inline(COLUMNS)}</p>")
    parts += [_figure(f) for f in figures]
    parts += [f"<script>{SORT_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


__all__ = ["COLUMNS", "html_page", "html_table", "inline", "markdown_page", "settings"]
