"""Self-contained HTML reports (no network fetches): summary, reset table, per-reset sections."""

from __future__ import annotations

from rstscope.report.html import ReportLimits, build_report, esc, write_report

__all__ = ["ReportLimits", "build_report", "esc", "write_report"]
