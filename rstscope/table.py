"""The reset table a person reads: at most three lines per reset, any width.

Layout (80 columns)::

    time          client -> server                      origin         conf  silence
    07:41:25.626  192.0.2.2:60986 -> 198.51.100.10:443  load-balancer  0.55    60.0s
        proxy/LB timed out after 60.0 s idle [sure: the server's side] [or: server]
        -> raise nginx proxy_read_timeout above 60 s, or send data every < 48 s

The row carries time, client -> server addresses and ports (Zeek's orig -> resp),
origin, confidence and silence; the indented detail line the cause, what is sure
(``[sure: ...]``) and the alternatives (``[or: ...]``); the ``->`` line the action.
Every part of the detail line has wordings from the full sentence down to a few
words (rstscope.textfit's tables), and the line takes the most words that let the
cause, what is sure and the first alternative all fit, so none is cut or dropped.
An advice too long for the width is said in its short form (the record's
``action``); wider terminals show the full ones and add frame/flow/TTL columns;
``wide=True`` prints one long, uncut line per reset (for grep and logs).
"""

from __future__ import annotations

import datetime as _dt
import itertools
from collections.abc import Sequence
from typing import Any, TextIO

from rstscope.findings import render_stalls
from rstscope.textfit import (
    ACTION_INDENT,
    DETAIL_INDENT,
    SHORT_CAUSES,
    action_text,
    alternative_wordings,
    clip,
    clip_middle,
    short_cause,
    sure_wordings,
    tiny_causes,
    write_finding,
    zone_name,
)

#: Terminal width from which the frame, flow and TTL columns are shown.
ROOMY_WIDTH = 120


def _when(ts: float | None, tz: str) -> _dt.datetime | None:
    if ts is None:
        return None
    t = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return t.astimezone() if tz == "local" else t


def origin_label(record: dict[str, Any]) -> str:
    """The origin column (the table sits below cliopts, which imports the api):
    ``firewall``, or ``unknown (best guess: firewall)`` for a verdict below the bar."""
    origin = str(record.get("origin", ""))
    guess = record.get("best_guess")
    if origin == "unknown" and guess and guess != "unknown":
        return f"unknown (best guess: {guess})"
    return origin


def _silence(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}s" if v < 10 else f"{v:.1f}s"


def _endpoint(host: Any, port: Any) -> str:
    h = str(host)
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def conn_text(r: dict[str, Any]) -> str:
    """``client:port -> server:port`` whichever side sent the RST."""
    src, dst = _endpoint(r.get("src"), r.get("sport")), _endpoint(r.get("dst"), r.get("dport"))
    return f"{src} -> {dst}" if r.get("direction") == "orig" else f"{dst} -> {src}"


def _extras(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """What is sure, where the box sits, the alternatives: each as its wordings, most
    to least detailed, in brackets.  Only where the box sits may be left out."""
    out = [tuple(f"[{w}]" for w in sure_wordings(r))]
    pos = r.get("path_position")
    if pos:
        out.append((f"[made at: {pos}]", ""))
    alts = alternative_wordings(r)
    if alts:
        out.append(tuple(f"[{w}]" for w in alts))
    return out


def _causes(r: dict[str, Any]) -> tuple[str, ...]:
    """The cause sentence, then in a few words, then in the fewest (no empty ones)."""
    cause = str(r.get("cause", ""))
    return tuple(dict.fromkeys(c for c in (cause, short_cause(r), *tiny_causes(r)) if c)) or ("",)


def detail_text(r: dict[str, Any], room: int | None = None, guess: str = "") -> str:
    """The cause, then what is sure apart from the guess, then the alternatives.

    With ``room`` (the characters the line has), each part is said in the most words
    that let every part fit: the cause first (the sentence, a few words that keep
    the silence, the fewest), then what is sure, then the alternatives (all with
    their reasons, their names, the first).  What is sure and the first alternative
    are always said; where the box sits only when there is room.  ``guess`` is a
    best guess for a verdict below --min-confidence, said first; when even the fewest
    words do not fit beside it (a --min-confidence raised above most verdicts), it is
    left out: the row says ``unknown`` and ``--wide`` and JSON keep the guess."""
    extras = _extras(r)
    causes = _causes(r)
    guesses = (f"best guess: {guess};", f"guess: {guess};") if guess else ("",)
    if room is None:
        return " ".join(p for p in (guesses[0], causes[0], *(e[0] for e in extras)) if p)
    # A few wordings per part, tried in order of preference (product() varies the
    # last part fastest): the first that fits is the one with the most words where
    # they matter most.
    for tried in (guesses, ("",)):
        for cause_w, guess_w, *extra_w in itertools.product(causes, tried, *extras):
            text = " ".join(p for p in (guess_w, cause_w, *extra_w) if p)
            if len(text) <= room:
                return text
    # Too narrow for any: the fewest words, cut by the caller.
    return " ".join(p for p in (causes[-1], *(e[-1] for e in extras)) if p)


def reset_order(file_id: int | None, ts_ns: int | None, frame: int | None
                ) -> tuple[int, int, int]:
    """The order resets are shown in: several files in their order, then time, then
    frame.  One key for the table's dicts and for the CLI's typed records."""
    return (file_id or 0, ts_ns or 0, frame or 0)


def sort_resets(resets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time order, then frame (several files: their order, then time)."""
    return sorted(resets, key=lambda r: reset_order(r.get("file_id"), r.get("ts_ns"),
                                                    r.get("frame")))


def summary_lines(doc: dict[str, Any], width: int | None = None) -> list[str]:
    """The summary above the table; with ``width``, the vantage line drops its example
    ("; e.g. ...") rather than be cut mid-word."""
    s = doc["summary"]
    reason = str(s.get("vantage_reason") or "")
    if width is not None and len(f"vantage: {s['vantage']} ({reason})") > width:
        reason = reason.split("; e.g.", 1)[0]
    by = ", ".join(f"{k} {v}" for k, v in s["resets_by_origin"].items() if v)
    lines = [
        f"file: {s['file']}",
        f"packets: {s['packets']} ({s['tcp_packets']} TCP)   flows: {s['flows']}   "
        f"resets: {s['resets']}" + (f" ({by})" if by else ""),
        f"vantage: {s['vantage']}" + (f" ({reason})" if reason else ""),
    ]
    shown = s.get("warnings", [])
    lines += [f"warning: {w}" for w in shown[:10]]
    if len(shown) > 10:
        lines.append(f"warning: ... and {len(shown) - 10} more (see --format json)")
    return lines


def render(doc: dict[str, Any], out: TextIO, *, width: int = 80, wide: bool = False,
           tz: str = "utc") -> None:
    """Write one capture's summary and reset table to ``out``."""
    limit = 10**6 if wide else max(width, 40)
    for line in summary_lines(doc, None if wide else limit):
        out.write(clip(line, limit) + "\n")
    resets = sort_resets(doc["resets"])
    if not resets:
        _stalls(doc, out, limit, tz, wide)
        return
    when = [_when(r.get("ts"), tz) for r in resets]
    dates = {w.date() for w in when if w is not None}
    one_day = len(dates) <= 1
    fmt = "%H:%M:%S.%f" if one_day else "%m-%d %H:%M:%S.%f"
    times = [w.strftime(fmt)[:-3] if w is not None else "-" for w in when]
    sample = next((w for w in when if w is not None), None)
    zone = zone_name(tz, sample)
    day = f" {sample.date().isoformat()}" if one_day and sample is not None else ""
    out.write(f"\ntimes: {zone}{day}\n")

    origins = [origin_label(r) for r in resets]
    confs = ["-" if r.get("confidence") is None else f"{r['confidence']:.2f}" for r in resets]
    silences = [_silence(r.get("silence_s")) for r in resets]
    conns = [conn_text(r) for r in resets]
    roomy = wide or width >= ROOMY_WIDTH
    extra_h = ("frame", "flow", "TTL (exp)")
    extras = [[str(r.get("frame", "")), str(r.get("flow_id", "")),
               "-" if r.get("ttl") is None else
               (f"{r['ttl']} ({r['expected_ttl']})" if r.get("expected_ttl") is not None
                else str(r["ttl"]))] for r in resets]

    w_time = max(4, *(len(t) for t in times))
    w_conf, w_sil = 4, max(7, *(len(x) for x in silences))
    w_extra = [max(len(h), *(len(e[i]) for e in extras)) for i, h in enumerate(extra_h)]
    guess_first = [""] * len(resets)
    if not roomy:
        # Narrow: the long "unknown (best guess: X)" would crowd out the addresses,
        # so the row says "unknown" and the detail line starts with the guess.
        for i, o in enumerate(origins):
            if o.startswith("unknown (best guess"):
                origins[i] = "unknown"
                guess_first[i] = str(resets[i].get("best_guess"))
    w_origin = max(6, *(len(o) for o in origins))
    fixed = w_time + w_origin + w_conf + w_sil + 2 * 4
    if roomy:
        fixed += sum(w + 2 for w in w_extra)
    w_conn_natural = max(len("client -> server"), *(len(c) for c in conns))
    w_conn = w_conn_natural if wide else max(16, min(w_conn_natural, limit - fixed))

    def row(t: str, c: str, o: str, k: str, s: str, ex: Sequence[str]) -> str:
        cells = [t.ljust(w_time)]
        if roomy:
            cells += [e.rjust(w) for e, w in zip(ex, w_extra, strict=True)]
        cells += [clip_middle(c, w_conn).ljust(w_conn), o.ljust(w_origin), k.rjust(w_conf),
                  s.rjust(w_sil)]
        return "  ".join(cells).rstrip()

    header = row("time", "client -> server", "origin", "conf", "silence", extra_h)
    out.write(clip(header, limit) + "\n")
    for i, r in enumerate(resets):
        line = row(times[i], conns[i], origins[i], confs[i], silences[i], extras[i])
        detail = detail_text(r, None if wide else limit - len(DETAIL_INDENT), guess_first[i])
        write_finding(out, line, detail,
                      action_text(r, limit - len(ACTION_INDENT)),  # wide: the full advice
                      limit=limit, wide=wide)
    _stalls(doc, out, limit, tz, wide)


def _stalls(doc: dict[str, Any], out: TextIO, limit: int, tz: str, wide: bool) -> None:
    # Flows that failed without a RST, beside the resets (rstscope.findings, issue 17).
    render_stalls(doc, out, limit=limit, tz=tz, wide=wide)


__all__ = ["ROOMY_WIDTH", "SHORT_CAUSES", "action_text", "clip", "conn_text", "detail_text",
           "origin_label", "render", "reset_order", "short_cause", "sort_resets", "summary_lines"]
