"""Stall rows for the analyze table, beside the resets (issue 17).

The table's owner calls :func:`finding_rows` with its own reset-row function;
stall rows use the same columns (time, frame, flow, dir, silence, TTL, origin,
conf, cause): the frame is the stall's closing packet (or ``open``), the origin
column says ``stall``, and the cause starts with its ``cause_id``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any


def _ts(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts_ns / 1e9, tz=_dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def _gap(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}s" if v < 10 else f"{v:.1f}s"


def cause_cell(record: dict[str, Any]) -> str:
    """``[cause_id] sentence`` (the sentence alone when there is no name)."""
    cid = record.get("cause_id")
    text = str(record.get("cause", ""))
    return f"[{cid}] {text}" if cid else text


def stall_row(s: dict[str, Any]) -> list[str]:
    """One stall in the reset table's columns."""
    end = s.get("end")
    frame = str(s["end_frame"]) if s.get("end_frame") is not None else str(end or "-")
    return [
        _ts(s.get("ts_ns")),
        frame,
        str(s.get("flow_id", "")),
        str(s.get("stalled_side", "")),
        _gap(s.get("silence_s")),
        "-",
        "stall",
        "-",
        cause_cell(s),
    ]


def finding_rows(doc: dict[str, Any],
                 reset_row: Callable[[dict[str, Any]], list[str]]) -> list[list[str]]:
    """Reset rows and stall rows of a document, in time order."""
    keyed: list[tuple[float, list[str]]] = []
    for r in doc.get("resets", []):
        keyed.append((float(r.get("ts") or 0.0), reset_row(r)))
    for s in doc.get("stalls", []):
        keyed.append((float(s.get("ts_ns") or 0) / 1e9, stall_row(s)))
    keyed.sort(key=lambda kv: kv[0])
    return [row for _, row in keyed]


def stalls_summary(doc: dict[str, Any]) -> str:
    """``stalls: N (cause n, ...)`` for the summary lines, or '' without stalls."""
    stalls = doc.get("stalls", [])
    if not stalls:
        return ""
    by: dict[str, int] = {}
    for s in stalls:
        by[str(s.get("cause_id"))] = by.get(str(s.get("cause_id")), 0) + 1
    return f"stalls: {len(stalls)} (" + ", ".join(f"{k} {v}" for k, v in sorted(by.items())) + ")"


__all__ = ["cause_cell", "finding_rows", "stall_row", "stalls_summary"]


def stalls_html(analysis: Any) -> str:
    """The report's stall table for one capture ('' without stalls); text is escaped."""
    import html

    stalls = analysis.stall_records()
    if not stalls:
        return ""
    esc = html.escape
    head = ("start", "flow", "kind", "end", "side", "silence", "retrans.", "through / stuck",
            "cause")
    rows = []
    for s in stalls:
        stuck = "/".join(str(x) for x in s["stuck_plens"]) or "-"
        cells = (_ts(s["ts_ns"]), str(s["flow_id"]), s["kind"], s["end"], s["stalled_side"],
                 _gap(s["silence_s"]), str(s["retransmissions"]),
                 f"{s['through_max_plen']} / {stuck}", cause_cell(s))
        rows.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    advice = sorted({a for s in stalls for a in s["advice"]})
    return ("<section class='rstscope-stalls'><h3>Stalls (no RST explains them)</h3>"
            "<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            + ("<ul>" + "".join(f"<li>{esc(a)}</li>" for a in advice) + "</ul>" if advice else "")
            + "</section>")
