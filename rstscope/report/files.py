"""Captures in, one HTML report file out: the library form of ``rstscope report``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rstscope.api import analyze
from rstscope.errors import OutputError
from rstscope.report.html import ReportLimits, build_report

__all__ = ["write_report"]


def write_report(sources: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 limits: ReportLimits | None = None, **analyze_kwargs: Any) -> Path:
    """Analyse each capture and write the HTML report to ``out``.

    Raises:
        InputMissingError, CaptureError: an input cannot be read.
        OutputError: ``out`` cannot be written.
    """
    analyses = [analyze(s, **analyze_kwargs) for s in sources]
    page = build_report(analyses, limits=limits)
    path = Path(out)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write report ({exc.strerror})") from exc
    return path
