"""Reports of comparison studies: tables, statistics, figures and published references.

Names are loaded on first use, so ``rnnbench --help`` (and the study file parser, which reads
``published.csv``) pays nothing for pandas and matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Published": "published", "load_published": "published", "lookup": "published",
    "SOURCES": "published",
    "Summary": "stats", "summarize": "stats", "t_quantile": "stats", "welch_pvalue": "stats",
    "bootstrap_pvalue": "stats",
    "ReportError": "tables", "ReportTable": "tables", "StudySource": "tables",
    "build_table": "tables", "open_source": "tables", "parse_paper": "tables",
    "read_log": "tables", "to_csv": "tables", "to_latex": "tables", "to_markdown": "tables",
    "to_rich": "tables",
    "Figure": "plots", "all_figures": "plots", "learning_curves": "plots",
    "optimization_history": "plots", "importance": "plots", "metric_vs_params": "plots",
    "build_report": "cli", "write_report": "cli", "report_study": "cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rnnbench.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rnnbench.report.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
