"""Fitting text into a terminal's columns, and naming the time zone of a table.

Shared by the reset table (rstscope.table) and the stall block
(rstscope.findings), which must not import each other.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, TextIO

ELLIPSIS = "..."
#: The indents of a finding's detail and action lines (the row has none).
DETAIL_INDENT = "    "
ACTION_INDENT = "    -> "


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


# -- the words that fit: a cause and an action said in one line ------------------

def _seconds(v: float | None) -> str:
    if v is None:
        return "an unknown time"
    return f"{v:.1f} s" if v >= 1 else f"{v:.3f} s"


#: The cause in a few words, by ``cause_id`` (rstscope.core.causes.CAUSES), for a
#: detail line too narrow for the full sentence: it keeps the cause and the silence,
#: which the cut sentence would lose.  ``{side}`` is whose name the RST carries,
#: ``{box}`` the kind of box, ``{silence}`` the silence the verdict is about.
SHORT_CAUSES: dict[str, str] = {
    "idle-timeout": "{who} timed out after {silence} of silence",
    "lost-state": "the {side}'s stack no longer had the connection after {silence}",
    "injection": "a filtering device (DPI/IPS) forged this RST in the {side}'s name",
    "policy-reject": "{box} rule rejected the connection in the {side}'s name",
    "middlebox-reset": "{box} on the path reset the flow in the {side}'s name",
    "refused": "the {side} refused the connection: nothing listens on the port",
    "abort": "the {side} application aborted (unread data or SO_LINGER 0)",
    "keepalive-race": "keep-alive race: reused after {silence} idle as the server closed it",
    "accept-overflow": "overload at accept: the {side}'s stack reset it before the app "
                       "accepted it",
    "total-timeout": "a total-time limit: the {side} aborted while data still flowed",
    "pmtu-blackhole": "path-MTU black hole: full-size segments never got through",
    "proxy-buffering": "a buffering proxy held the stream back for {silence}",
    "path-silent": "the path went silent: packets unanswered for {silence}",
    "unanswered": "a request got no answer for {silence}",
    "unknown": "a lone RST, without the rest of its connection",
}


#: The same for a stall (a flow that failed without a RST), by ``cause_id``.
SHORT_STALL_CAUSES: dict[str, str] = {
    "accept-overflow": "no app answered for {silence}: queued at accept (maxconn)",
    "total-timeout": "a total-time limit cut an active stream after {silence}",
    "pmtu-blackhole": "path-MTU black hole: full-size segments never got through",
    "proxy-buffering": "a buffering proxy held the stream back for {silence}",
    "path-silent": "the path went silent: packets unanswered for {silence}",
    "unanswered": "a request got no answer for {silence}",
}


#: A verdict refined by ``--enrich`` (rstscope.enrich.refine), by ``context_rule``:
#: (its cause in a few words, its action in one line) for a narrow table.
REFINED: dict[str, tuple[str, str]] = {
    "tls-fatal-alert": ("TLS failed: a fatal alert, then the reset",
                        "fix what the TLS alert names (certificates, versions, SNI, ALPN)"),
    "data-after-close": ("the client had closed; the server's late data hit the closed socket",
                         "client: raise its read timeout above the server's longest silence"),
    "stale-reuse": ("a stale pooled connection was reused after the server closed it",
                    "client: drop pooled connections on close; pool idle < the server's"),
    "proxy-5xx": ("a proxy answered HTTP 5xx, then the connection was reset",
                  "proxy: raise its upstream read timeout, or check the backend's health"),
    "h2-goaway-error": ("the sender's HTTP/2 layer gave up (GOAWAY with an error)",
                        "HTTP/2 error: check the RST sender's logs for the GOAWAY code"),
    "close-notify": ("the sender closed TLS cleanly (close_notify), then aborted TCP",
                     "benign if the exchange completed (SO_LINGER 0 or unread data at close)"),
    "encrypted-alert": ("the sender sent an encrypted TLS alert (likely close_notify), then "
                        "aborted",
                        "rerun with --keylog and a full snaplen to tell close_notify apart"),
    "stream-cancel": ("an HTTP/2 stream was cancelled (RST_STREAM CANCEL) before the reset",
                      "if unexpected, check the client's request timeout"),
    "clienthello-only": ("reset after a ClientHello with no ServerHello (SNI filtering?)",
                         "test the same server with another SNI name"),
}


def _who(r: dict[str, Any], side: str) -> str:
    tags = set(r.get("tags") or ())
    if r.get("sender") == "middlebox":
        kind = {"firewall": "a firewall", "load-balancer": "a load balancer"}
        return kind.get(str(r.get("best_guess") or r.get("origin")), "a box on the path")
    if "proxy-close" in tags:
        return f"a proxy/LB in front of the {side}"
    if "same-link-peer" in tags:
        return "the peer on the server's link"
    return f"the {side}"


def short_cause(r: dict[str, Any]) -> str:
    """The cause in a few words, keeping its silence ('' without a known ``cause_id``)."""
    cid = str(r.get("cause_id") or "")
    if r.get("context_rule"):
        # --enrich reworded the cause: the cause_id's words would say the core's.
        return REFINED.get(str(r["context_rule"]), ("", ""))[0]
    # A reset carries the side in ``direction``, a stall in ``stalled_side``.
    mine = r.get("direction", r.get("stalled_side"))
    side = "client" if mine == "orig" else "server"
    tags = set(r.get("tags") or ())
    if cid == "abort" and tags & {"after-fin", "after-alert"}:
        template = "the {side} closed, then aborted (RST after its own FIN/alert)"
    elif cid == "idle-timeout" and r.get("silence_s") is None:
        template = "{who} timed out after a silence (idle/read timeout)"
    elif "stalled_side" in r:
        template = SHORT_STALL_CAUSES.get(cid, "")
    else:
        template = SHORT_CAUSES.get(cid, "")
    guess = str(r.get("best_guess") or r.get("origin") or "")
    box = {"firewall": "a firewall", "load-balancer": "a load balancer"}.get(guess, "a box")
    if not template:
        return ""
    return template.format(side=side, who=_who(r, side), box=box,
                           silence=_seconds(r.get("silence_s")))


def action_text(r: dict[str, Any], room: int | None = None) -> str:
    """What to change and where: the full advice when it fits in ``room`` characters
    (or without ``room``: the one-line ``action``), else the one-line ``action``.

    A verdict refined by ``--enrich`` (``context_rule``) has new advice, which the
    core's ``action`` does not know: its first advice line is the action."""
    advice = r.get("advice") or ()
    full = str(advice[0]) if advice else ""
    rule = r.get("context_rule")
    short = REFINED.get(str(rule), ("", ""))[1] if rule else str(r.get("action") or "")
    if room is not None and full and len(full) <= room:
        return full
    return short or full or "no action known: capture at both ends and report it"


def write_finding(out: TextIO, line: str, detail: str, action: str, *, limit: int,
                  wide: bool) -> None:
    """One reset or stall as the table prints it: the row, an indented detail line and
    an indented ``->`` action line, each cut to ``limit``; ``wide`` keeps one uncut line."""
    if wide:
        out.write(f"{line}  | {detail} | -> {action}\n")
        return
    out.write(clip(line, limit) + "\n")
    out.write(clip(DETAIL_INDENT + detail, limit) + "\n")
    out.write(clip(ACTION_INDENT + action, limit) + "\n")


__all__ = ["ACTION_INDENT", "DETAIL_INDENT", "ELLIPSIS", "REFINED", "SHORT_CAUSES", "SHORT_STALL_CAUSES", "action_text", "clip",
           "clip_middle", "short_cause", "write_finding", "zone_name"]
