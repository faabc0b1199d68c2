"""Render a study's report: the comparison table and figures, written atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

FORMATS = ("terminal", "markdown", "csv", "latex")


def _markdown_report(table: Any, results: dict[str, Any], figures: list[Any]) -> str:
    """``report.md``: settings, the table, notes, the figures."""
    from rnnbench.report.published import SOURCES
    from rnnbench.report.tables import to_markdown

    lines = [f"# Study `{table.study}`", ""]
    if table.description:
        lines += [table.description, ""]
    lines += [
        f"- metric: `{table.metric}` ({table.direction}); final runs tested on "
        f"`{table.test_metric}`",
        f"- {table.trials_per_variant} search trials per variant (sampler "
        f"`{(results.get('sampler') or {}).get('name', '?')}`, pruner "
        f"`{(results.get('pruner') or {}).get('name', '?')}`); the best configuration of each "
        f"re-run with seeds {', '.join(map(str, table.seeds)) or 'none'}",
        f"- storage: `{results.get('storage', '?')}`"
        + ("" if results.get("complete", True) else " (**study not finished**)"),
    ]
    if table.paper:
        src = table.paper["source"]
        lines.append(f"- published: {SOURCES.get(src, src)} ({table.paper['dataset']})")
    lines += ["", "## Comparison", "", to_markdown(table)]
    if table.notes:
        lines += [f"- {n}" for n in table.notes] + [""]
    lines += [
        "Columns: *params (hidden)* parameters of the whole model (hidden units; for a "
        "baseline, the numbers it fitted); *best* the best search trial's validation value; "
        "*final* mean ± sample std over the n final seeds and their 95% t-interval; *vs best* "
        "the verdict of Welch's test against the bold variant (beats / falls short at "
        "p < 0.05, else matches); *trials c/p/f* complete / pruned / failed search trials; "
        "*wall time* summed trial durations; *tokens/s* median training throughput; *vs* a "
        "published figure or the best baseline: beats / matches / falls short by the row's "
        "95% interval (none for n < 2). Rows marked (baseline) are models without recurrence "
        "fitted on the training split and scored by the same metric. Raw numbers: "
        "`report.csv`. Details: `docs/report.md`.", ""]
    for fig in figures:
        lines += [f"## {fig.title}", ""]
        if "png" in fig.files:
            lines += [f"![{fig.title}]({fig.name}.png)", ""]
        lines += [f"- {n}" for n in fig.notes] + ([""] if fig.notes else [])
    return "\n".join(lines).rstrip() + "\n"


def build_report(source: Any, *, formats: list[str], plots: bool = True,
                 paper: dict[str, str] | None = None) -> tuple[Any, dict[str, bytes]]:
    """Renders the table and figures of a study in memory.

    Args:
        source: A :class:`rnnbench.report.tables.StudySource`.
        formats: Subset of ``terminal, markdown, csv, latex`` (terminal writes no file).
        plots: Render the figures (PNG and SVG).
        paper: ``{"source", "dataset"}``; default the one stored with the study.

    Returns:
        ``(table, {file name: content})``.
    """
    from rnnbench.report.tables import build_table, to_csv, to_latex

    table = build_table(source.results, paper or source.paper)
    files: dict[str, bytes] = {}
    figures = []
    if plots:
        from rnnbench.report.plots import all_figures

        figures = all_figures(table, source.results, source.run)
        for fig in figures:
            for fmt, data in fig.files.items():
                files[f"{fig.name}.{fmt}"] = data
    if "csv" in formats:
        files["report.csv"] = to_csv(table).encode()
    if "latex" in formats:
        files["report.tex"] = to_latex(table).encode()
    if "markdown" in formats:
        files["report.md"] = _markdown_report(table, source.results, figures).encode()
    return table, files


def _check_writable(out: Path) -> None:
    from rnnbench.report.tables import ReportError

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".rnnbench-probe-"):
            pass
    except OSError as err:
        raise ReportError(f"cannot write the report to {out}: {err.strerror or err}; choose "
                          "another folder with --out DIR") from None


def write_report(files: dict[str, bytes], out: str | Path) -> list[Path]:
    """Writes every file atomically: all go to temporary files first, then are renamed, so a
    failure leaves no half-written report.

    Raises:
        ReportError: The folder cannot be created or written.
    """
    from rnnbench.report.tables import ReportError

    out = Path(out)
    _check_writable(out)
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, _file_mode())  # mkstemp makes 0600; a report is for everyone
            temps.append((Path(tmp), out / name))
        for tmp, final in temps:
            os.replace(tmp, final)
    except OSError as err:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise ReportError(f"cannot write the report to {out}: {err}") from None
    return [final for _, final in temps]


def _file_mode() -> int:
    """The mode ``open()`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _console():
    from rich.console import Console

    # A pipe or file would get Rich's 80 columns, too narrow for the table.
    return Console(width=None if sys.stdout.isatty() else 200)


def report_study(
    study: str,
    *,
    storage: str | None = None,
    folder: str | Path | None = None,
    formats: list[str] = ("terminal", "markdown", "csv"),
    plots: bool = True,
    paper: dict[str, str] | None = None,
    out: str | Path | None = None,
) -> Path | None:
    """Renders one study's report (terminal table, files, plots); returns the output folder.

    Raises:
        ReportError: Unknown study, no complete trial, unwritable output folder.
    """
    from rnnbench.report.tables import ReportError, open_source, to_rich

    source = open_source(study, storage=storage, folder=folder)
    out = Path(out) if out else (source.folder or Path(".")) / "report"
    table, files = build_report(source, formats=list(formats), plots=plots, paper=paper)
    if not table.any_complete:
        _console().print(to_rich(table))
        counts = "; ".join(f"{r.variant}: {r.complete} complete, {r.pruned} pruned, "
                           f"{r.failed} failed" for r in table.data.itertuples())
        raise ReportError(
            f"study {table.study!r} has no complete trial yet ({counts}), so there is "
            "nothing to compare; the counts are shown above and no file was written")
    if "terminal" in formats:
        _console().print(to_rich(table))
    if files:
        written = write_report(files, out)
        print(f"report: {out}/ " + ", ".join(p.name for p in written))
        return out
    return None


__all__ = ["FORMATS", "build_report", "report_study", "write_report"]
