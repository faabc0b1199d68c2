"""Render a study's report: the comparison table and figures, written atomically."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

FORMATS = ("terminal", "markdown", "csv", "latex", "html")


def build_report(source: Any, *, formats: list[str], plots: bool = True,
                 paper: dict[str, str] | None = None) -> tuple[Any, dict[str, bytes]]:
    """Renders the table and figures of a study in memory.

    Args:
        source: A :class:`rnnbench.report.tables.StudySource`.
        formats: Subset of ``terminal, markdown, csv, latex, html`` (terminal writes no
            file; ``html`` is one self-contained ``report.html``, figures embedded).
        plots: Render the figures (PNG and SVG).
        paper: ``{"source", "dataset"}``; default the one stored with the study.

    Returns:
        ``(table, {file name: content})``.
    """
    from rnnbench.report.pages import html_page, markdown_page
    from rnnbench.report.source import unfinished_note
    from rnnbench.report.tables import build_table, to_csv, to_latex

    table = build_table(source.results, paper or source.paper)
    table.unfinished, table.resume = unfinished_note(source) or (None, None)
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
        files["report.md"] = markdown_page(table, source.results, figures).encode()
    if "html" in formats:
        files["report.html"] = html_page(table, source.results, figures).encode()
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


def _escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _console():
    from rich.console import Console

    # A pipe or file would get Rich's 80 columns, too narrow for the table (14 columns with
    # a paper and a baseline).
    return Console(width=None if sys.stdout.isatty() else 260)


def report_study(
    study: str,
    *,
    storage: str | None = None,
    folder: str | Path | None = None,
    formats: list[str] = ("terminal", "markdown", "csv", "html"),
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
    console = _console()
    if not table.any_complete:
        console.print(to_rich(table))
        _print_unfinished(console, table)
        counts = "; ".join(f"{r.variant}: {r.complete} complete, {r.pruned} pruned, "
                           f"{r.failed} failed" for r in table.data.itertuples())
        err = ReportError(
            f"study {table.study!r} has no complete trial yet ({counts}), so there is "
            "nothing to compare; the counts are shown above and no file was written"
            + ("; it is unfinished: resume it with the command above" if table.unfinished
               else ""))
        err.table_shown = True  # so that study run prints no second table
        raise err
    if "terminal" in formats:
        console.print(to_rich(table))
        _print_unfinished(console, table)
    if files:
        written = write_report(files, out)
        print(f"report: {out}/ " + ", ".join(p.name for p in written))
        return out
    return None


def _print_unfinished(console: Any, table: Any) -> None:
    """Flags an unfinished study under its table, with the command that resumes it."""
    if table.unfinished:
        console.print(f"[bold yellow]unfinished:[/bold yellow] {_escape(table.unfinished)}",
                      highlight=False)
        if table.resume:
            # On a line of its own, unwrapped, so that it can be copied as it is.
            console.print(f"  {table.resume}", highlight=False, markup=False,
                          soft_wrap=True)


__all__ = ["FORMATS", "build_report", "report_study", "write_report"]
