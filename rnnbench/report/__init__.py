"""Reports of comparison studies: tables, statistics, figures, pages and published references.

Names are loaded on first use, so ``rnnbench --help`` (and the study file parser, which reads
``published.csv``) pays nothing for pandas and matplotlib.
"""

from __future__ import annotations

from rnnbench._lazy import lazy_exports

_EXPORTS = {
    "Published": "published", "load_published": "published", "lookup": "published",
    "SOURCES": "published",
    "Summary": "stats", "summarize": "stats", "t_quantile": "stats", "welch_pvalue": "stats",
    "Verdict": "stats", "verdict_vs_value": "stats",
    "verdict_welch": "stats", "metric_direction": "stats",
    "ReportError": "tables", "ReportTable": "tables", "StudySource": "tables",
    "build_table": "tables", "open_source": "tables", "parse_paper": "tables",
    "read_log": "tables", "to_csv": "tables", "to_latex": "tables", "to_markdown": "tables",
    "to_rich": "tables",
    "Figure": "plots", "all_figures": "plots", "learning_curves": "plots",
    "optimization_history": "plots", "importance": "plots", "metric_vs_params": "plots",
    "build_report": "render", "write_report": "render", "report_study": "render",
    "resume_command": "source", "unfinished_note": "source",
    "html_page": "pages", "markdown_page": "pages", "table_rows": "formats",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
