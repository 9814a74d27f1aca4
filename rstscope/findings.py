"""Stalls beside the resets: the analyze table's block and the report's table (issue 17).

:func:`render_stalls` writes a block after the reset rows in their style (a row
with time, client -> server and the silence; the cause with its ``cause_id``; the
action); :func:`stalls_html` is the report's table.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any

from rstscope.textfit import (
    ACTION_INDENT,
    DETAIL_INDENT,
    action_text,
    short_cause,
    write_finding,
    zone_name,
)

if TYPE_CHECKING:
    from rstscope.results import RecordSource


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
    return named_cause(record.get("cause_id"), str(record.get("cause", "")))


def named_cause(cause_id: object, cause: str) -> str:
    """``[cause_id] sentence``, or the sentence alone when ``cause_id`` is empty."""
    return f"[{cause_id}] {cause}" if cause_id else cause


def stalls_summary(doc: dict[str, Any]) -> str:
    """``stalls: N (cause n, ...)`` for the summary lines, or '' without stalls."""
    stalls = doc.get("stalls", [])
    if not stalls:
        return ""
    by: dict[str, int] = {}
    for s in stalls:
        by[str(s.get("cause_id"))] = by.get(str(s.get("cause_id")), 0) + 1
    return f"stalls: {len(stalls)} (" + ", ".join(f"{k} {v}" for k, v in sorted(by.items())) + ")"




def stalls_html(analysis: RecordSource) -> str:
    """The report's stall table for one capture ('' without stalls); text is escaped."""
    stalls = analysis.typed_stalls()
    if not stalls:
        return ""
    import html  # lazy: only the report escapes; the table would pay ~1.5 ms to load it

    esc = html.escape
    head = ("start", "flow", "kind", "end", "side", "silence", "retrans.", "through / stuck",
            "cause")
    rows = []
    for s in stalls:
        stuck = "/".join(str(x) for x in s.stuck_plens) or "-"
        cells = (_ts(s.ts_ns), str(s.flow_id), s.kind, s.end, s.stalled_side,
                 _gap(s.silence_s), str(s.retransmissions),
                 f"{s.through_max_plen} / {stuck}", named_cause(s.cause_id, s.cause))
        rows.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    advice = sorted({a for s in stalls for a in s.advice})
    return ("<section class='rstscope-stalls'><h3>Stalls (no RST explains them)</h3>"
            "<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            + ("<ul>" + "".join(f"<li>{esc(a)}</li>" for a in advice) + "</ul>" if advice else "")
            + "</section>")


def render_stalls(doc: dict[str, Any], out: Any, *, limit: int, tz: str = "utc",
                  wide: bool = False) -> None:
    """The analyze table's stall block, in the reset rows' style (row, cause, action)."""
    stalls = sorted(doc.get("stalls", []), key=lambda s: s.get("ts_ns") or 0)
    if not stalls:
        return
    local = tz == "local"

    def when(ts_ns: int) -> str:
        t = _dt.datetime.fromtimestamp(ts_ns / 1e9, tz=None if local else _dt.UTC)
        return t.strftime("%H:%M:%S.%f")[:-3]

    out.write(f"\n{stalls_summary(doc)}; no RST explains them (times "
              f"{zone_name(tz)}):\n")
    for s in stalls:
        conn = (f"{_hostport(s['orig_h'], s['orig_p'])} -> "
                f"{_hostport(s['resp_h'], s['resp_p'])}")
        line = f"{when(int(s['ts_ns']))}  {conn}  stall  {_gap(s.get('silence_s'))}"
        detail = f"[{s['cause_id']}] ({s['kind']}, end: {s['end']}) {s['cause']}"
        if not wide and len(DETAIL_INDENT + detail) > limit:
            # Too narrow for the sentence: the cause in a few words, with its silence.
            detail = f"[{s['cause_id']}] {short_cause(s) or s['cause']}"
        action = (action_text(s, limit - len(ACTION_INDENT))  # (wide: a huge limit, the full advice)
                  if s.get("advice") or s.get("action")
                  else "capture at both ends to see where packets stop")
        write_finding(out, line, detail, action, limit=limit, wide=wide)


def _hostport(host: object, port: object) -> str:
    h = str(host)
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


__all__ = ["cause_cell", "render_stalls", "stalls_html", "stalls_summary"]
