"""Fitting text into a terminal's columns, and naming the time zone of a table.

Shared by the reset table (rstscope.table) and the stall block
(rstscope.findings), which must not import each other.
"""

from __future__ import annotations

import datetime as _dt
from typing import TextIO

ELLIPSIS = "..."


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return text[:width]
    return text[: width - len(ELLIPSIS)].rstrip() + ELLIPSIS


def clip_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    if width <= len(ELLIPSIS) + 2:
        return text[:width]
    keep = width - len(ELLIPSIS)
    return text[: (keep + 1) // 2] + ELLIPSIS + text[len(text) - keep // 2:]


def zone_name(tz: str, sample: _dt.datetime | None = None) -> str:
    if tz != "local":
        return "UTC"
    t = sample or _dt.datetime.now().astimezone()
    return t.tzname() or t.strftime("%z")


def write_finding(out: TextIO, line: str, detail: str, action: str, *, limit: int,
                  wide: bool) -> None:
    """One reset or stall as the table prints it: the row, an indented detail line and
    an indented ``->`` action line, each cut to ``limit``; ``wide`` keeps one uncut line."""
    if wide:
        out.write(f"{line}  | {detail} | -> {action}\n")
        return
    out.write(clip(line, limit) + "\n")
    out.write(clip("    " + detail, limit) + "\n")
    out.write(clip("    -> " + action, limit) + "\n")


__all__ = ["ELLIPSIS", "clip", "clip_middle", "write_finding", "zone_name"]
