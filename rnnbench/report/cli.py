"""Old home of the report renderer: kept so ``rnnbench.report.cli`` imports keep working.

The renderer lives in :mod:`rnnbench.report.render`; the ``rnnbench report`` command in
:mod:`rnnbench.cli.report`.
"""

from rnnbench.report.render import FORMATS, build_report, report_study, write_report

__all__ = ["FORMATS", "build_report", "report_study", "write_report"]
