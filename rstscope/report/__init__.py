"""Self-contained HTML reports (no network fetches): summary, reset table, per-reset sections.

``rstscope.report.files.write_report`` (captures in, file out) and the
``rstscope report`` command (:mod:`rstscope.report.cli`) run the analysis
themselves, so they sit above :mod:`rstscope.api` and are not imported here:
the API's ``Analysis.report`` uses this package without a cycle.
"""

from __future__ import annotations

from rstscope.report.html import ReportLimits, build_report, esc

__all__ = ["ReportLimits", "build_report", "esc"]
