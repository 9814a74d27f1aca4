"""Fitting text into a terminal's columns, and naming the time zone of a table.

Shared by the reset table (rstscope.table) and the stall block
(rstscope.findings), which must not import each other.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, TextIO

from rstscope.core.wording import sure_text

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


#: The longest a cause's fewest words may be (silence up to "999.9 s"): an 80-column
#: detail line has 76 characters after its indent, and the fewest words of what is
#: sure ("[sure: the server's side]", 25) and of the first alternative
#: ("[or: load-balancer]", 19) take 44 of them with their two spaces.
TINY_MAX_CHARS = 76 - 25 - 19 - 2

#: The cause in the fewest words, by ``cause_id``, for a detail line that must also
#: hold what is sure and the first alternative at 80 columns.  The row's origin
#: column says who, so these say what happened and keep the silence.
TINY_CAUSES: dict[str, str] = {
    "idle-timeout": "timed out after {silence} idle",
    "lost-state": "state lost after {silence} idle",
    "injection": "DPI/IPS injection",
    "policy-reject": "rejected by a rule",
    "middlebox-reset": "a box reset the flow",
    "refused": "refused: nothing listens",
    "abort": "the {side} app aborted",
    "keepalive-race": "keep-alive race, {silence} idle",
    "accept-overflow": "overload: accept queue full",
    "total-timeout": "total-time limit mid-stream",
    "pmtu-blackhole": "path-MTU black hole",
    "proxy-buffering": "proxy buffering; {silence} quiet",
    "path-silent": "path silent for {silence}",
    "unanswered": "no answer for {silence}",
    "unknown": "a lone RST",
}

#: The same for a verdict refined by ``--enrich``, by ``context_rule``.
TINY_REFINED: dict[str, str] = {
    "tls-fatal-alert": "TLS fatal alert, then reset",
    "data-after-close": "late data hit a closed socket",
    "stale-reuse": "stale pooled connection reused",
    "proxy-5xx": "HTTP 5xx from a proxy, reset",
    "h2-goaway-error": "HTTP/2 GOAWAY with an error",
    "close-notify": "TLS close_notify, then abort",
    "encrypted-alert": "encrypted alert, then abort",
    "stream-cancel": "HTTP/2 stream cancelled",
    "clienthello-only": "reset after ClientHello (SNI?)",
}

#: Tags that prove a RST was made on the path even with nothing of the sender's to
#: compare it with: a RST racing the real answer, one carrying the trigger's IP ID,
#: a TTL the sender never used (rstscope.core.tags.Tag).
_PROOF_WITHOUT_BASELINE = frozenset({"race", "recycled", "ttl-mismatch"})

#: What the packets prove about who sent a RST, by what they could be compared with:
#: its wordings from the fullest to the fewest words (``{side}``: whose name the RST
#: carries).  The first ``middlebox``/``endpoint`` wording is rstscope.core.wording's.
SURE_WORDS: dict[str, tuple[str, ...]] = {
    "middlebox": ("sure: a box on the path, not the {side}", "sure: a box on the path"),
    "endpoint": ("sure: from the {side}'s side (TTL, IP ID)", "sure: from the {side}'s side",
                 "sure: the {side}'s side"),
    # Compared only with the address's other connections (Tag.HOST_BASELINE): the TTL
    # gives the distance, which a firewall's REJECT just in front of it shares.
    "host-baseline": ("sure: sent from the {side}'s distance (its other connections' TTL)",
                      "sure: from the {side}'s distance (TTL)", "sure: from the {side}'s distance",
                      "sure: {side}'s distance"),
    # Nothing to compare with, but the RST left its host with an undecremented TTL
    # while the peer's packets crossed routers (evidence ``ttl_capture_host``).
    "capture-host": ("sure: made on the {side}'s host (its TTL not yet decremented)",
                     "sure: made on the {side}'s host", "sure: the {side}'s host"),
    # Tag.NO_BASELINE alone: no packet of the claimed sender's to compare with.
    "nothing": ("sure: nothing (no packet of the {side}'s to compare the RST with)",
                "sure: nothing (no {side} packet to compare)", "sure: nothing"),
}


def sure_wordings(r: dict[str, Any]) -> tuple[str, ...]:
    """What is certain about a reset, apart from the guess: the fullest wording first
    (the record's ``sure`` in JSON and CSV), then shorter ones for narrow lines."""
    names = {str(e.get("name") if isinstance(e, dict) else getattr(e, "name", ""))
             for e in r.get("evidence") or ()}
    return sure_wordings_of(str(r.get("direction") or ""), str(r.get("sender") or ""),
                            frozenset(r.get("tags") or ()), frozenset(names))


def sure_wordings_of(direction: str, sender: str, tags: frozenset[str],
                     evidence_names: frozenset[str]) -> tuple[str, ...]:
    """:func:`sure_wordings` from a reset's fields: the side that sent it
    (``direction``), its ``sender``, its ``tags`` and the names of its evidence."""
    side = "client" if direction == "orig" else "server"
    if "no-baseline" in tags and not tags & _PROOF_WITHOUT_BASELINE:
        # (A host baseline that disagreed would have set ttl-mismatch.)
        case = ("capture-host" if "ttl_capture_host" in evidence_names and sender != "middlebox"
                else "host-baseline" if "host-baseline" in tags and sender != "middlebox"
                else "nothing")
    else:
        case = "middlebox" if sender == "middlebox" else "endpoint"
    words = tuple(w.format(side=side) for w in SURE_WORDS[case])
    if case in ("middlebox", "endpoint"):
        return (sure_text(sender, side), *words)
    return words


def alternative_wordings(r: dict[str, Any]) -> tuple[str, ...]:
    """The alternatives the wire cannot rule out (other origins, then other causes),
    fullest first, the fewest words last: always at least the first of each ('' none)."""
    def name(a: Any) -> str:
        return str(a[0]) if isinstance(a, (list, tuple)) else str(a)

    alts = [a for a in (r.get("alternatives") or ()) if a]
    causes = [str(c) for c in (r.get("cause_alternatives") or ()) if c]
    if not alts and not causes:
        return ()
    full = [f"{a[0]} ({a[1]})" if isinstance(a, (list, tuple)) and len(a) > 1 else str(a)
            for a in alts]
    names = list(dict.fromkeys(name(a) for a in alts))
    return tuple(dict.fromkeys((
        "or: " + "; ".join([*full, *causes]),
        "or: " + ", ".join([*names, *causes]),
        "or: " + ", ".join([*names[:1], *causes[:1]]))))


#: Between :data:`SHORT_CAUSES` and :data:`TINY_CAUSES`, by ``cause_id``: the cause
#: with who did it, for a detail line with some room left beside what is sure and
#: the alternatives.  ``{who}``: who timed out ("a proxy/LB", "a firewall", "the
#: client"); ``{box}``: the kind of box; ``{side}`` and ``{silence}`` as above.
MID_CAUSES: dict[str, tuple[str, ...]] = {
    "idle-timeout": ("{who} timed out after {silence} idle",),
    "lost-state": ("the {side} had lost the connection after {silence}",),
    "injection": ("{box} (DPI/IPS) forged this RST",),
    "policy-reject": ("{box} rule rejected the connection",),
    "middlebox-reset": ("{box} on the path reset the flow",),
    "refused": ("refused: nothing listens on the port",),
    "abort": ("the {side} application aborted",),
    "keepalive-race": ("keep-alive race: reused after {silence} idle",),
    "accept-overflow": ("overload: reset before the app accepted it",),
    "total-timeout": ("a total-time limit: aborted while data flowed",),
    "pmtu-blackhole": ("path-MTU black hole: big segments never got through",),
    "proxy-buffering": ("a buffering proxy held the stream; then {silence} quiet",),
    "path-silent": ("the path went silent for {silence}",),
    "unanswered": ("a request got no answer for {silence}",),
    "unknown": ("a lone RST, nothing else of its connection",),
}


def tiny_causes(r: dict[str, Any]) -> tuple[str, ...]:
    """The cause in fewer words (:data:`MID_CAUSES`), then the fewest
    (:data:`TINY_CAUSES`), keeping the silence; a timeout says who timed out (a
    proxy/LB, the server's link peer) while it fits, the row's origin column after."""
    rule = r.get("context_rule")
    if rule:
        return (TINY_REFINED.get(str(rule), ""),)
    cid = str(r.get("cause_id") or "")
    side = "client" if r.get("direction") == "orig" else "server"
    tags = set(r.get("tags") or ())
    if cid == "abort" and tags & {"after-fin", "after-alert"}:
        return (f"the {side} closed, then aborted", "closed, then aborted")
    silence = _seconds(r.get("silence_s"))
    who = _tiny_who(r, side)
    guess = str(r.get("best_guess") or r.get("origin") or "")
    box = {"firewall": "a firewall", "load-balancer": "a load balancer"}.get(guess, "a box")
    mid: tuple[str, ...]
    if cid == "idle-timeout" and r.get("silence_s") is None:
        mid, template = ("{who} timed out after a silence",), "timed out after a silence"
    else:
        mid, template = MID_CAUSES.get(cid, ()), TINY_CAUSES.get(cid, "")
    words = [m.format(side=side, silence=silence, who=who, box=box) for m in mid]
    if cid == "idle-timeout":
        # Without its article too ("proxy/LB timed out ..."): a few characters more room.
        words.append(words[-1].removeprefix("a "))
    return tuple(dict.fromkeys([*words, template.format(side=side, silence=silence)]))


def _tiny_who(r: dict[str, Any], side: str) -> str:
    tags = set(r.get("tags") or ())
    if r.get("sender") == "middlebox":
        return _who(r, side)
    if "proxy-close" in tags:
        return "a proxy/LB"
    if "same-link-peer" in tags:
        return "the server's link peer"
    return f"the {side}"


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


__all__ = ["ACTION_INDENT", "DETAIL_INDENT", "ELLIPSIS", "REFINED", "SHORT_CAUSES",
           "SHORT_STALL_CAUSES", "MID_CAUSES", "SURE_WORDS", "TINY_CAUSES", "TINY_MAX_CHARS", "TINY_REFINED",
           "action_text", "alternative_wordings", "clip", "clip_middle", "short_cause",
           "sure_wordings", "sure_wordings_of", "tiny_causes", "write_finding", "zone_name"]
