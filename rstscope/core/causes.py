"""Cause names: a stable machine name (``cause_id``) for every reset verdict and stall.

The sentence in a verdict's ``cause`` may be reworded; ``cause_id`` is the
contract (docs/schema.md lists the vocabulary).  :func:`name_reset` runs after
the classifier's own rules: it maps the decided verdict (sender, origin, tags) to
a name, and adds the evidence rules of the everyday causes that the generic rules
had no name for (keep-alive race, overload at accept, total-time limits).  Path
causes that need the flow's last packets (path-MTU black hole) are named by
:func:`name_path` from the tail ledger; stalls by :mod:`rstscope.core.stalls`.

Each rule is a function of :class:`~rstscope.core.facts.Facts` returning
``None`` or (cause_id, facts for the wording); the first that matches wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from rstscope.core.facts import NS, Facts
from rstscope.core.flow import RXMIT
from rstscope.core.records import ResetRecord
from rstscope.core.stalls import (
    MIN_SILENCE_S,
    PMTU_HOLE_MIN_S,
    hole_is_blackhole,
    receiver_hole,
    side_of,
    stall_cause,
)
from rstscope.core.wording import (
    action_line,
    everyday_action,
    everyday_advice,
    everyday_sentence,
)
from rstscope.schema import TH_ACK, TH_RST

#: The vocabulary: cause_id -> what it means (docs/schema.md repeats this table).
CAUSES: dict[str, str] = {
    "keepalive-race": "a pooled connection reused as the server closed it for idle keep-alive",
    "pmtu-blackhole": "full-size segments dropped on a narrower path, ICMP too-big lost",
    "proxy-buffering": "a proxy held a stream back while the upstream was sending",
    "total-timeout": "a fixed total-time limit ended an active exchange",
    "accept-overflow": "the service was overloaded at accept (backlog full, maxconn)",
    "idle-timeout": "a device or endpoint gave up after a silence (idle/read timeout)",
    "lost-state": "a stack or NAT/LB no longer had the connection when a packet came",
    "injection": "an on-path device forged the RST (DPI/IPS, SNI filtering)",
    "policy-reject": "a firewall rule rejected the connection",
    "refused": "nothing listened on the port (the server's stack refused the SYN)",
    "middlebox-reset": "a device on the path reset the flow for a reason the wire does not show",
    "path-silent": "packets went unanswered: a drop on the path or a dead peer",
    "unanswered": "a request was acknowledged by TCP but never answered",
    "abort": "an endpoint application aborted (unread data, SO_LINGER 0, cancel)",
    "unknown": "too little of the connection was captured to tell",
}

#: The request that reopened an idle keep-alive connection came after this much silence.
KEEPALIVE_MIN_IDLE_S = 0.5
#: ...and the server's RST came within this long of it (its keep-alive timer's slack).
KEEPALIVE_MAX_DELAY_S = 1.0
#: Overload at accept: the RST follows the completed handshake within this long.
ACCEPT_MAX_AFTER_HANDSHAKE_S = 1.0
#: Total-time limit: the exchange lasted at least this long...
TOTAL_MIN_ELAPSED_S = 2.0
#: ...the peer was sending this recently...
TOTAL_ACTIVE_S = 1.0
#: ...and the limit is a whole number of seconds, as configured limits are.
TOTAL_ROUND_TOLERANCE_S = 0.1
#: Proxy buffering seen by the client: payload more than this far apart starts a new burst...
BURST_GAP_S = 0.25
#: ...a burst at least this large is a flushed buffer (nginx flushes whole buffers:
#: proxy_buffers 4k/8k pages, ssl_buffer_size 16k)...
BUFFER_MIN_BYTES = 4096
#: ...the flushed bursts are the same size within this share (one buffer size)...
BUFFER_SIZE_TOLERANCE = 0.02
#: ...and silences of at least this long separate them, and precede the close.
BURST_MIN_SILENCE_S = 0.5

Rule = Callable[[Facts, ResetRecord], tuple[str, dict[str, object]] | None]


def _trigger_is_alert(f: Facts) -> bool:
    """The receiver's last packet before the RST was a TLS alert (close_notify)."""
    c = f.ctx
    trigger_ts_ns = c.r_last_non_rst_ts_ns
    return c.flow.dirs[1 - c.direction].tls_alert_ts_ns == trigger_ts_ns and trigger_ts_ns >= 0


def rule_keepalive_race(f: Facts, rec: ResetRecord) -> tuple[str, dict[str, object]] | None:
    """The server's stack reset a reused keep-alive connection at the client's new request.

    Both orders of the crossing: the server's FIN went first and the request hit
    the closed socket; or the request arrived first and the keep-alive timer
    closed the socket with it unread (RST+ACK acknowledging the request, no
    response).  Either way the request came after a silence, on a connection
    that had already carried the server's data, and was not a TLS alert (a
    reaction to a proxy's close, which is an idle timeout, not a race).
    """
    c = f.ctx
    if rec.sender == "middlebox" or f.side != "server" or c.s_last_payload_ts_ns < 0:
        return None
    if c.r_last_non_rst_payload_len <= 0 or _trigger_is_alert(f):
        return None
    if c.r_last_non_rst_ts_ns < c.s_last_payload_ts_ns:
        return None  # the request is older than the server's last data: not a reuse
    delay_s = (c.ts_ns - c.r_last_non_rst_ts_ns) / NS
    if not 0 <= delay_s <= KEEPALIVE_MAX_DELAY_S:
        return None
    if c.s_fin_ts_ns >= 0 and c.s_fin_ts_ns <= c.r_last_non_rst_ts_ns:
        # FIN first: the silence that mattered is the one before the server's close.
        idle_s = c.s_close_gap_ns / NS
        if idle_s >= KEEPALIVE_MIN_IDLE_S:
            return "keepalive-race", {"order": "fin-first", "idle_s": idle_s}
        return None
    idle_s = c.r_last_non_rst_gap_ns / NS
    if (c.s_fin_ts_ns < 0 and idle_s >= KEEPALIVE_MIN_IDLE_S and c.flags & TH_ACK
            and c.r_snd_nxt is not None and c.ack == c.r_snd_nxt):
        return "keepalive-race", {"order": "request-first", "idle_s": idle_s}
    return None


def rule_accept_overflow(f: Facts, rec: ResetRecord) -> tuple[str, dict[str, object]] | None:
    """A completed handshake reset by the server's stack at the client's first data,
    before any server data: the accept queue overflowed (tcp_abort_on_overflow)."""
    c = f.ctx
    flow = c.flow
    if (rec.sender == "middlebox" or f.side != "server" or not (c.syn_seen and c.synack_seen)
            or c.s_last_payload_ts_ns >= 0 or flow.synack_ts_ns < 0
            or c.r_last_non_rst_payload_len <= 0):
        return None
    if (c.ts_ns - flow.synack_ts_ns) / NS > ACCEPT_MAX_AFTER_HANDSHAKE_S:
        return None
    return "accept-overflow", {}


def rule_total_timeout(f: Facts, rec: ResetRecord) -> tuple[str, dict[str, object]] | None:
    """An endpoint aborted a whole number of seconds after its own request while the
    peer was still sending: a total deadline, not an idle one."""
    c = f.ctx
    if (rec.sender == "middlebox" or c.s_last_payload_ts_ns < 0 or c.r_last_payload_ts_ns < 0
            or c.s_fin_ts_ns >= 0):
        return None  # (after its own FIN the sender had finished: not a deadline)
    if c.flow.dirs[1 - c.direction].get(RXMIT):
        return None  # the peer's data was being retransmitted: a path problem, not a limit
    elapsed_s = (c.ts_ns - c.s_last_payload_ts_ns) / NS
    if elapsed_s < TOTAL_MIN_ELAPSED_S or (c.ts_ns - c.r_last_payload_ts_ns) / NS > TOTAL_ACTIVE_S:
        return None
    if c.r_last_payload_ts_ns <= c.s_last_payload_ts_ns:
        return None  # the peer was not answering: that is a read timeout
    if abs(elapsed_s - round(elapsed_s)) > TOTAL_ROUND_TOLERANCE_S:
        return None
    return "total-timeout", {"elapsed_s": elapsed_s, "side": f.side}


EVERYDAY_RULES: tuple[Rule, ...] = (rule_keepalive_race, rule_accept_overflow,
                                    rule_total_timeout)


def base_cause_id(f: Facts, rec: ResetRecord) -> str:
    """The name of the verdict the classifier's own rules reached."""
    tags = f.tags
    if f.lone:
        return "unknown"
    if rec.sender == "middlebox":
        if tags & {"race", "storm", "after-clienthello"}:
            return "injection"
        if "refused" in tags or (f.triggered and f.ctx.r_last_non_rst_flags & 0x02
                                 and not f.ctx.r_last_non_rst_flags & TH_ACK):
            return "policy-reject"
        gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
        if (any(m.fits for m in f.matches) or "bidirectional" in tags
                or (gap is not None and gap >= 1.0)):
            return "idle-timeout"
        return "middlebox-reset"
    if tags & {"proxy-close", "same-link-peer"}:
        return "idle-timeout"
    if "proxy-no-answer" in tags:
        # A proxy accepted the connection, its backend never answered, and the
        # proxy gave up: the request went unanswered.
        return "unanswered"
    # The same order as the sentences (rstscope.core.wording.cause_text).
    if "refused" in tags:
        return "refused"
    if tags & {"after-fin", "after-alert"}:
        return "abort"
    if "no-socket" in tags:
        return "lost-state"
    if "unanswered" in tags:
        return "path-silent"
    gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
    if gap is not None and gap >= 5 and not tags & {"after-fin", "after-alert"}:
        return "idle-timeout"
    return "abort"


def name_reset(f: Facts, rec: ResetRecord) -> ResetRecord:
    """``rec`` with its ``cause_id``; an everyday cause also gets its sentence and advice."""
    for rule in EVERYDAY_RULES:
        hit = rule(f, rec)
        if hit is not None:
            cid, facts = hit
            return dataclasses.replace(rec, cause_id=cid, cause=everyday_sentence(cid, facts),
                                       advice=everyday_advice(cid, facts),
                                       action=everyday_action(cid, facts))
    # The fit the classifier worded its advice with (rstscope.core.classify: best_fit).
    fit = next((m for m in f.matches if m.fits), None)
    return dataclasses.replace(rec, cause_id=base_cause_id(f, rec),
                               action=action_line(f, rec.origin, rec.sender, fit))


def buffered_bursts(rows: np.ndarray, direction_of: np.ndarray, direction: int, close_ns: int
                    ) -> dict[str, object] | None:
    """The data sent in ``direction`` (0 orig, 1 resp) arrived as whole-buffer
    bursts, silent in between.

    The payload that came after the peer's last request (in the tail) is cut into
    bursts at gaps over :data:`BURST_GAP_S`.  Two or more bursts of one size (at
    least :data:`BUFFER_MIN_BYTES`, within :data:`BUFFER_SIZE_TOLERANCE`), separated
    by silences and followed by one up to ``close_ns``: a proxy that forwards only
    full buffers.  A burst the tail ring may have cut (the ring's first packets) is
    not counted.  Returns the facts for the wording, or None."""
    peer_pl = rows[(direction_of != direction) & (rows["payload_len"] > 0)
                   & ((rows["flags"] & TH_RST) == 0)]
    after = int(peer_pl["ts_ns"][-1]) if len(peer_pl) else -1
    mine = rows[(direction_of == direction) & (rows["payload_len"] > 0)
                & ((rows["flags"] & TH_RST) == 0)
                & (rows["ts_ns"] > after)]
    if len(mine) < 2:
        return None
    ts_ns = mine["ts_ns"].tolist()
    pl = mine["payload_len"].tolist()
    bursts: list[list[int]] = []  # [first ts_ns, last ts_ns, bytes]
    for t, p in zip(ts_ns, pl, strict=True):
        if bursts and t - bursts[-1][1] <= BURST_GAP_S * NS:
            bursts[-1][1] = t
            bursts[-1][2] += p
        else:
            bursts.append([t, t, p])
    # The ring may have cut the first burst: count it only when something older than
    # it (the request, or an earlier packet) is in the tail with a silence between.
    if after < 0 and int(rows["ts_ns"][0]) > bursts[0][0] - BURST_GAP_S * NS:
        bursts = bursts[1:]
    full = [b for b in bursts if b[2] >= BUFFER_MIN_BYTES]
    if len(full) < 2 or full[-1] is not bursts[-1]:
        return None
    sizes = [b[2] for b in full]
    if max(sizes) > min(sizes) * (1 + BUFFER_SIZE_TOLERANCE):
        return None
    gaps = [(b2[0] - b1[1]) / NS for b1, b2 in zip(full, full[1:], strict=False)]
    final_s = (close_ns - full[-1][1]) / NS
    if min(gaps) < BURST_MIN_SILENCE_S or final_s < BURST_MIN_SILENCE_S:
        return None
    return {"kind": "bursts", "bursts": len(full), "burst_bytes": max(sizes),
            "gap_s": max(gaps), "silence_s": final_s}


def name_path(rec: ResetRecord, tail: np.ndarray | None, orig_is_a: bool,
              max_payload_len: tuple[int, int]) -> ResetRecord:
    """Upgrade a verdict to ``pmtu-blackhole`` when the flow's tail shows it: the
    RST's receiver (or sender) retransmitted only full-size segments, unacknowledged,
    while smaller ones got through."""
    if tail is None or rec.cause_id in ("injection", "keepalive-race", "accept-overflow"):
        return rec
    rows = tail[(tail["ts_ns"] <= rec.ts_ns) & ((tail["flags"] & TH_RST) == 0)]
    if len(rows) == 0:
        return rec
    direction_of = np.where(rows["from_a"] == orig_is_a, 0, 1)
    mp = max_payload_len if orig_is_a else (max_payload_len[1], max_payload_len[0])
    for direction in (0, 1):
        s = side_of(rows, direction_of, direction)
        if (not s.rx or s.waiting_since_ns < 0 or not s.stuck_plens or not s.head_rx
                or (rec.ts_ns - s.waiting_since_ns) / NS < MIN_SILENCE_S):
            continue
        if stall_cause("data-unacked", s, mp[direction], False) == "pmtu-blackhole":
            facts: dict[str, object] = {"stuck": s.stuck_plens, "rx": s.rx,
                                        "through": s.through_max}
            return dataclasses.replace(rec, cause_id="pmtu-blackhole",
                                       cause=everyday_sentence("pmtu-blackhole", facts),
                                       advice=everyday_advice("pmtu-blackhole", facts),
                                       action=everyday_action("pmtu-blackhole", facts))
    # The receiver's side of it (a client capture): the full-size segments never
    # arrived, later smaller ones did, and the hole stayed open until this RST.
    for direction in (1, 0):
        h = receiver_hole(rows, direction_of, direction)
        if (h is not None and hole_is_blackhole(h)
                and (rec.ts_ns - h.since_ns) / NS >= PMTU_HOLE_MIN_S):
            facts = {"kind": "data-hole", "hole": h.hole_bytes, "dupacks": h.dupacks,
                     "through": h.arrived_max_payload_len}
            return dataclasses.replace(rec, cause_id="pmtu-blackhole",
                                       cause=everyday_sentence("pmtu-blackhole", facts),
                                       advice=everyday_advice("pmtu-blackhole", facts),
                                       action=everyday_action("pmtu-blackhole", facts))
    # The receiver of a stream gave up after it came in whole-buffer bursts: a
    # buffering proxy.  Whether the last silence was the proxy filling its next
    # buffer or the upstream going quiet, this capture cannot tell: both are named.
    recv = 0 if rec.direction == "orig" else 1  # the RST's sender, receiver of the data
    if rec.cause_id not in ("total-timeout",):
        b = buffered_bursts(rows, direction_of, 1 - recv, rec.ts_ns)
        if b is not None:
            return dataclasses.replace(rec, cause_id="proxy-buffering",
                                       cause_alternatives=("idle-timeout",),
                                       cause=everyday_sentence("proxy-buffering", b),
                                       advice=everyday_advice("proxy-buffering", b),
                                       action=everyday_action("proxy-buffering", b))
    return rec


__all__ = ["CAUSES", "EVERYDAY_RULES", "base_cause_id", "name_path", "name_reset"]
