"""Resets that never happened: findings for flows that stalled.

A connection can fail without any RST: it ends in a FIN after its data was
retransmitted unacknowledged, it is still hanging when the capture ends, its SYNs
are never answered, or its stream is cut in the middle.  :func:`find_stalls`
reads each live flow's tail (:class:`~rstscope.core.tails.TailLedger`) and
returns one :class:`StallRecord` per such flow, with the measured facts (silence
while data was outstanding, retransmissions, the segment sizes that got through
and those that did not) and a ``cause_id`` from the same vocabulary as reset
verdicts (:mod:`rstscope.core.causes`).  Pure: no clock, no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np

from rstscope.core.flow import (
    BYTES,
    HALF,
    LASTPL,
    MAXACK,
    RXMIT,
    SEQ_MOD,
    SNDNXT,
    Flow,
    seq_diff,
)
from rstscope.core.records import _ToDict
from rstscope.core.tails import TAIL_DTYPE, TailLedger
from rstscope.core.wording import everyday_action
from rstscope.core.wording import everyday_advice as stall_advice
from rstscope.core.wording import everyday_sentence as stall_sentence
from rstscope.schema import TH_ACK, TH_FIN, TH_RST, TH_SYN, addr_text

NS = 1_000_000_000
#: Silence (s) with data outstanding before a flow counts as stalled.
MIN_SILENCE_S = 1.0
#: A "cut" stream: the closer sent payload this recently (s) before its FIN...
CUT_ACTIVE_S = 1.0
#: ...and at least this many payload segments in the CUT_WINDOW_S before it.
CUT_MIN_SEGMENTS = 4
CUT_WINDOW_S = 3.0
#: ...spaced like a stream's events (median gap), not back-to-back like a download...
CUT_MIN_PACE_S = 0.1
#: ...and at least this long after the request (a time limit, not a quick reply).
CUT_MIN_ELAPSED_S = 2.0
#: Segments at least this large count as "full-size" for a path-MTU black hole: any
#: payload above 1000 bytes exceeds some tunnel or the IPv6 minimum MTU (1280).
PMTU_MIN_STUCK = 1000
#: A hole in the received data (seen at the receiver: a path-MTU black hole from the
#: client's side) counts once it stayed open this long; a lost segment is normally
#: retransmitted and arrives within a few RTOs (200 ms, 400 ms, 800 ms).
PMTU_HOLE_MIN_S = 2.0
#: Other connections to the same service within this time make unanswered SYNs
#: and silent accepts look like overload rather than a dead service or a filter.
OVERLOAD_WINDOW_S = 10.0
#: Flows whose tails :func:`find_stalls` screens at once (at most ~1.2 MB of rows).
SCREEN_CHUNK_FLOWS = 1024


@dataclass(frozen=True, slots=True)
class StallRecord(_ToDict):
    """One stalled flow: no RST explains its end (or it has none)."""

    flow_id: int
    ts_ns: int  # when the stall began: the first unacknowledged / unanswered packet
    kind: str  # data-unacked | data-hole | syn-unanswered | request-unanswered | cut-mid-stream
    end: str  # fin | rst | open (still hanging when the capture ended)
    end_frame: int | None
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    stalled_side: str  # orig | resp: whose data (or SYN) went unanswered
    silence_s: float  # from the stall's start to the flow's end or the capture's end
    retransmissions: int  # of the stalled side, in the flow's tail
    outstanding_bytes: int  # sent but never acknowledged
    through_max_plen: int  # largest payload of the stalled side that was acknowledged
    stuck_plens: tuple[int, ...]  # distinct payload sizes retransmitted without an ACK
    max_plen: int  # largest payload the stalled side sent in the whole flow
    cause_id: str
    cause: str
    advice: tuple[str, ...]
    action: str = ""  # advice[0] in one terminal line (rstscope.core.wording.everyday_action)


@dataclass(frozen=True, slots=True)
class _Side:
    """What one direction's tail says about its data."""

    direction: int  # 0 the originator's data, 1 the responder's
    sent_payload: int
    hi_rel: int  # highest sequence end sent (relative to the tail's first seq)
    acked_rel: int | None  # peer's highest ACK (same base), None without ACKs
    rx: int
    stuck_plens: tuple[int, ...]
    through_max: int
    waiting_since_ns: int  # first send of the oldest unacked segment, -1 if none
    last_payload_ns: int
    payload_ts_ns: tuple[int, ...]
    # The segment at the peer's ACK point was itself retransmitted: the sender's view
    # of lost data.  (At the receiver, repeats of segments *past* a hole, such as a
    # tail-loss probe, are unacked too, but the segment at the ACK point never shows.)
    head_rx: bool = False
    hole_bytes: int = 0  # data-hole: bytes missing at the receiver
    dupacks: int = 0  # data-hole: the receiver's repeated ACKs of the hole's start


def side_of(rows: np.ndarray, direction_of: np.ndarray, direction: int) -> _Side:
    mine = rows[direction_of == direction]
    peer = rows[direction_of != direction]
    data = mine[(mine["payload_len"] > 0) & ((mine["flags"] & TH_RST) == 0)]
    if len(data) == 0:
        return _Side(direction, 0, 0, None, 0, (), 0, -1, -1, ())
    base = int(data["seq"][0])
    rel = [seq_diff(int(s), base) for s in data["seq"].tolist()]
    ends = [r + int(p) for r, p in zip(rel, data["payload_len"].tolist(), strict=True)]
    acks = [seq_diff(int(a), base) for a, f in zip(peer["ack"].tolist(), peer["flags"].tolist(),
                                                    strict=True) if f & TH_ACK]
    acked = max(acks) if acks else None
    hi = -(1 << 40)
    rx = 0
    stuck: set[int] = set()
    through = 0
    waiting = -1
    head = False
    for ts_ns, r, e, p in zip(data["ts_ns"].tolist(), rel, ends, data["payload_len"].tolist(),
                           strict=True):
        again = e <= hi
        hi = max(hi, e)
        if again:
            rx += 1
        got = acked is not None and e <= acked
        if got:
            through = max(through, p)
        else:
            if again:
                stuck.add(p)
                head = head or r == (acked if acked is not None else 0)
            if waiting < 0:
                waiting = ts_ns
    return _Side(direction, len(data), hi, acked, rx, tuple(sorted(stuck)), through, waiting,
                 int(data["ts_ns"][-1]), tuple(data["ts_ns"].tolist()), head)


@dataclass(frozen=True, slots=True)
class Hole:
    """Data of one direction that never reached this capture point while later data
    did: the receiver's view of segments lost for good (a path-MTU black hole seen
    from the client)."""

    direction: int  # the direction whose data has the hole
    hole_bytes: int  # from the receiver's ACK point to the first segment past it
    since_ns: int  # first arrival past the hole
    dupacks: int  # the receiver's ACKs of the hole's start after that arrival
    arrived_max_payload_len: int  # largest segment of that direction that arrived


def receiver_hole(rows: np.ndarray, direction_of: np.ndarray, direction: int) -> Hole | None:
    """The hole in the data sent in ``direction`` (0 orig, 1 resp) as the receiver saw it, or None.

    The receiver's highest ACK stays at the hole's start, segments past it arrived
    (and were acknowledged again at the same point: duplicate ACKs, with SACK when
    the stack has it), and no segment that covers the hole's start was ever seen
    here.  That last part tells the receiver's view from the sender's: a sender-side
    capture sees the missing segment go out (that is :func:`side_of`'s ``stuck``)."""
    mine = rows[(direction_of == direction) & (rows["payload_len"] > 0)
                & ((rows["flags"] & TH_RST) == 0)]
    peer = rows[(direction_of != direction) & ((rows["flags"] & (TH_ACK | TH_RST)) == TH_ACK)]
    if len(mine) < 2 or len(peer) == 0:
        return None
    base = int(mine["seq"][0])
    acks = [seq_diff(int(a), base) for a in peer["ack"].tolist()]
    ack_pt = max(acks)
    starts = [seq_diff(int(s), base) for s in mine["seq"].tolist()]
    plens = mine["payload_len"].tolist()
    if any(st <= ack_pt < st + p for st, p in zip(starts, plens, strict=True)):
        return None  # the segment at the ACK point was seen: in flight, not lost
    past = [(st, t) for st, t in zip(starts, mine["ts_ns"].tolist(), strict=True) if st > ack_pt]
    if not past:
        return None
    first_st = min(st for st, _ in past)
    since = min(t for _, t in past)
    dup = sum(1 for a, t in zip(acks, peer["ts_ns"].tolist(), strict=True)
              if a == ack_pt and t >= since)
    if dup == 0:
        return None  # the receiver never said it missed data (a capture drop)
    return Hole(direction, first_st - ack_pt, int(since), dup, int(max(plens)))


def hole_is_blackhole(h: Hole) -> bool:
    """Only a full-size stretch is missing while every segment that arrived is
    smaller than it: the path drops what exceeds its MTU."""
    return h.hole_bytes >= PMTU_MIN_STUCK and h.arrived_max_payload_len < h.hole_bytes


def _end(rows: np.ndarray) -> tuple[str, int | None, int]:
    """(fin|rst|open, frame of the closing packet, its time)."""
    flags = rows["flags"].tolist()
    for kind, bit in (("rst", TH_RST), ("fin", TH_FIN)):
        for i, f in enumerate(flags):
            if f & bit:
                return kind, int(rows["frame"][i]), int(rows["ts_ns"][i])
    return "open", None, int(rows["ts_ns"][-1])


def _finding(flow: Flow, rows: np.ndarray, max_payload_len: tuple[int, int],
             capture_end_ns: int) -> tuple[str, _Side, str, int | None, int] | None:
    """(kind, stalled side, end, end frame, stall start) of one flow, or None.

    Plain Python over the (short) tail: per-flow numpy calls would cost more than
    the work; numpy only for the rare flows whose data was retransmitted."""
    ts_ns = rows["ts_ns"].tolist()
    fl = rows["flags"].tolist()
    direction_of = [0 if a == flow.orig_is_a else 1 for a in rows["from_a"].tolist()]
    pl = rows["payload_len"].tolist()
    end, end_frame, end_ts_ns = _end(rows)
    horizon = capture_end_ns if end == "open" else end_ts_ns
    # SYNs without a SYN/ACK: the service never answered (or never could).
    synack = any(f & (TH_SYN | TH_ACK) == (TH_SYN | TH_ACK) for f in fl)
    syns = [t for t, f, d in zip(ts_ns, fl, direction_of, strict=True)
            if f & (TH_SYN | TH_ACK) == TH_SYN and d == 0]
    if syns and not synack:
        if len(syns) >= 2:
            side = _Side(0, 0, 0, None, len(syns) - 1, (), 0, syns[0], -1, ())
            return "syn-unanswered", side, end, end_frame, syns[0]
        return None
    # Only a side the tracker saw retransmit can have unacknowledged data stuck.
    direction_arr: np.ndarray | None = None
    for direction in (0, 1):
        if not flow.dirs[direction].get(RXMIT):
            continue
        if direction_arr is None:
            direction_arr = np.asarray(direction_of)
        sd = side_of(rows, direction_arr, direction)
        if (sd.rx and sd.waiting_since_ns >= 0 and sd.stuck_plens and sd.head_rx
                and (horizon - sd.waiting_since_ns) / NS >= MIN_SILENCE_S):
            return "data-unacked", sd, end, end_frame, sd.waiting_since_ns
    # The receiver's view of the same: a hole it never saw filled (client side).
    direction_np = np.asarray(direction_of)
    for direction in (1, 0):
        h = receiver_hole(rows, direction_np, direction)
        if (h is not None and hole_is_blackhole(h)
                and (horizon - h.since_ns) / NS >= PMTU_HOLE_MIN_S):
            sd = side_of(rows, direction_np, direction)
            return "data-hole", _hole_side(sd, h), end, end_frame, h.since_ns
    o_ts_ns = [t for t, f, d, p in zip(ts_ns, fl, direction_of, pl, strict=True) if p and d == 0
            and not f & TH_RST]
    r_ts_ns = [t for t, f, d, p in zip(ts_ns, fl, direction_of, pl, strict=True) if p and d == 1
            and not f & TH_RST]
    # A stream cut by its sender: the responder was sending steadily and closed
    # with a bare FIN (no TLS close_notify before it) in a TLS connection.
    if end == "fin" and flow.client_hello_ts_ns >= 0 and r_ts_ns:
        closer = next(d for f, d in zip(fl, direction_of, strict=True) if f & TH_FIN)
        alerts = any(c == 21 and d == 1 for c, d in zip(rows["tls_ct"].tolist(), direction_of,
                                                        strict=True))
        recent = [t for t in r_ts_ns if 0 <= end_ts_ns - t <= CUT_WINDOW_S * NS]
        if (closer == 1 and not alerts and end_ts_ns - r_ts_ns[-1] <= CUT_ACTIVE_S * NS
                and len(recent) >= CUT_MIN_SEGMENTS):
            gaps = sorted(b - a for a, b in zip(recent, recent[1:], strict=False))
            # A paced stream (events every so often), not a bulk transfer finishing.
            if gaps[len(gaps) // 2] >= CUT_MIN_PACE_S * NS:
                # Measured from the request (the client's last data before the
                # stream): a time limit counts from there.
                req = [t for t in o_ts_ns if t < recent[0]]
                start = req[-1] if req else recent[0]
                if end_ts_ns - start >= CUT_MIN_ELAPSED_S * NS:
                    side = side_of(rows, np.asarray(direction_of), 1)
                    return "cut-mid-stream", side, end, end_frame, start
    # A request that got no answer at all: the originator sent payload, the
    # responder only acknowledged it, and the flow ended or hangs.
    # A capture that simply ended during a conversation (BGP, OpenFlow keepalives
    # one way) is no finding: a hang counts only when the responder never spoke.
    if o_ts_ns and end != "rst" and not (end == "open" and r_ts_ns):
        answered = bool(r_ts_ns) and r_ts_ns[-1] > o_ts_ns[-1]
        if not answered and (horizon - o_ts_ns[-1]) / NS >= MIN_SILENCE_S:
            return ("request-unanswered", side_of(rows, np.asarray(direction_of), 0), end,
                    end_frame, o_ts_ns[-1])
    # The originator gave up first (its FIN after the silence) and the answer came
    # only after that, drawing its stack's RST: still a request left unanswered while
    # it waited (a connection a proxy accepted late from its queue, say).
    # The responder must not have spoken at all before that FIN: after an answer, a
    # late small payload of the originator may be its own close (TLS 1.3 encrypts
    # close_notify as application data), not a request.
    if o_ts_ns and end == "rst":
        o_fin = [(t, int(fr)) for t, f, d, fr in zip(ts_ns, fl, direction_of,
                                                      rows["frame"].tolist(), strict=True)
                 if f & TH_FIN and not f & TH_RST and d == 0]
        if o_fin and o_fin[0][0] > o_ts_ns[-1]:
            fin_ts_ns, fin_frame = o_fin[0]
            if (not any(t <= fin_ts_ns for t in r_ts_ns)
                    and (fin_ts_ns - o_ts_ns[-1]) / NS >= MIN_SILENCE_S):
                return ("request-unanswered", side_of(rows, np.asarray(direction_of), 0), "fin",
                        fin_frame, o_ts_ns[-1])
    return None


def _hole_side(sd: _Side, h: Hole) -> _Side:
    """The stalled side of a hole: what arrived went through; the hole is outstanding."""
    return _Side(sd.direction, sd.sent_payload, sd.hi_rel, sd.acked_rel, 0, (),
                 h.arrived_max_payload_len, h.since_ns, sd.last_payload_ns, sd.payload_ts_ns, False,
                 h.hole_bytes, h.dupacks)


#: The counter-table columns the running-state check reads, in this order.
_STATE_COLUMNS = [RXMIT, SNDNXT, MAXACK, LASTPL, BYTES]


def _state_columns(flows: Sequence[Flow]) -> np.ndarray:
    """Each flow's orig and resp :data:`_STATE_COLUMNS`: an (n, 2, 5) array.

    The flows of one tracker share its table: one read of the five columns for
    them all, not a small read (or a whole 29-column row made Python ints) per
    flow and direction."""
    if not flows:
        return np.zeros((0, 2, len(_STATE_COLUMNS)), dtype=np.int64)
    table = flows[0].dirs[0].table
    if all(f.dirs[0].table is table and f.dirs[1].table is table for f in flows):
        slots = [d.slot for f in flows for d in f.dirs]
        cols = table.a[np.ix_(slots, _STATE_COLUMNS)]
    else:
        cols = np.array([[d.get(c) for c in _STATE_COLUMNS] for f in flows for d in f.dirs],
                        dtype=np.int64)
    out: np.ndarray = cols.reshape(len(flows), 2, len(_STATE_COLUMNS))
    return out


def _maybe_stalled(flow: Flow, oc: Sequence[int], rc: Sequence[int],
                   capture_end_ns: int) -> bool:
    """A cheap pre-check on the flow's running state (``oc``/``rc``: each direction's
    :data:`_STATE_COLUMNS`): could any stall kind apply?
    (Most flows are healthy; reading their tails would cost more than the analysis.)"""
    o, r = flow.dirs
    o_rxmit, o_nxt, o_maxack, o_lastpl, _ = oc
    r_rxmit, r_nxt, r_maxack, r_lastpl, _ = rc
    if o_rxmit or r_rxmit:
        return True  # data-unacked
    for snd_nxt, rcv_maxack in ((r_nxt, o_maxack), (o_nxt, r_maxack)):
        if (snd_nxt >= 0 and rcv_maxack >= 0
                and seq_diff(snd_nxt, rcv_maxack) >= PMTU_MIN_STUCK):
            return True  # data-hole: data seen past what the receiver acknowledged
    if flow.syn_ts_ns >= 0 and flow.synack_ts_ns < 0:
        return True  # syn-unanswered
    if (o_lastpl >= 0 and r_lastpl < o_lastpl
            and (flow.last_ts_ns if flow.ended() else capture_end_ns) - o_lastpl
            >= MIN_SILENCE_S * NS):
        return True  # request-unanswered
    if (o.fin_ts_ns >= 0 and r_lastpl > o.fin_ts_ns and o_lastpl >= 0
            and o.fin_ts_ns - o_lastpl >= MIN_SILENCE_S * NS):
        return True  # request-unanswered until the originator gave up
    return (r.fin_ts_ns >= 0 and flow.client_hello_ts_ns >= 0 and r.tls_alert_ts_ns < 0
            and r_lastpl >= 0
            and r.fin_ts_ns - r_lastpl <= CUT_ACTIVE_S * NS
            and r.fin_ts_ns - flow.first_ts_ns >= CUT_MIN_ELAPSED_S * NS)  # cut-mid-stream


def _segment_first(mask: np.ndarray, starts: np.ndarray, never: int) -> np.ndarray:
    """Per segment (rows ``starts[i]`` up to the next start, none empty): the index of
    its first row where ``mask`` holds, or ``never``."""
    idx = np.where(mask, np.arange(len(mask), dtype=np.int64), never)
    out: np.ndarray = np.minimum.reduceat(idx, starts)
    return out


def _segment_last(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per segment: the index of its last row where ``mask`` holds, or -1."""
    idx = np.where(mask, np.arange(len(mask), dtype=np.int64), -1)
    out: np.ndarray = np.maximum.reduceat(idx, starts)
    return out


def _segment_count(mask: np.ndarray, starts: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.add.reduceat(mask.astype(np.int64), starts)
    return out


def _rel_seq(values: np.ndarray, base: np.ndarray) -> np.ndarray:
    """:func:`~rstscope.core.flow.seq_diff` of uint32 ``values`` against ``base``, elementwise."""
    out: np.ndarray = ((values.astype(np.int64) - base + HALF) % SEQ_MOD) - HALF
    return out


def screen_tails(flows: Sequence[Flow], rows: np.ndarray, lens: np.ndarray,
                 capture_end_ns: int, state: np.ndarray | None = None) -> np.ndarray:
    """Which of ``flows`` :func:`_finding` can find stalled: one vectorised pass over
    their tails at once (``rows``: each flow's tail rows, ``lens[i]`` > 0 of them,
    one flow after another; ``state``: their :func:`_state_columns`, when the
    caller has read them).

    A necessary condition per stall kind, read from the same rows as
    :func:`_finding` reads them: where this is False, :func:`_finding` returns None,
    so only the flows left True need its per-flow Python.  (A healthy capture's
    flows nearly all pass the running-state check :func:`_maybe_stalled`: to it,
    every TLS flow that both sides closed with a FIN soon after data looks like a
    cut stream, as it cannot tell whose FIN came first; 4,820 of the 5,000 flows of
    the 1M-packet benchmark capture, none of them stalled.)  The plain
    :func:`_finding` stays the reference; the tests compare the two."""
    n = len(flows)
    if n == 0:
        return np.zeros(0, dtype=bool)
    starts = np.r_[0, np.cumsum(lens)[:-1]].astype(np.int64)
    m = len(rows)
    gid = np.repeat(np.arange(n, dtype=np.int64), lens)
    orig_is_a = np.fromiter((f.orig_is_a for f in flows), dtype=bool, count=n)
    hello = np.fromiter((f.client_hello_ts_ns >= 0 for f in flows), dtype=bool, count=n)
    if state is None:
        state = _state_columns(flows)
    rxmit = state[:, :, 0].any(axis=1)  # RXMIT, either direction
    resp = rows["from_a"] != orig_is_a[gid]  # direction 1 (the responder's packets)
    fl = rows["flags"].astype(np.int64)
    pl = rows["payload_len"].astype(np.int64)
    ts = rows["ts_ns"]
    rst = (fl & TH_RST) != 0
    fin = (fl & TH_FIN) != 0
    never = m  # an index past every row
    # _end: the first RST, else the first FIN, else open (the last row's time).
    first_rst = _segment_first(rst, starts, never)
    first_fin = _segment_first(fin, starts, never)
    end_rst = first_rst < never
    end_fin = ~end_rst & (first_fin < never)
    end_open = ~end_rst & ~end_fin
    last_row = starts + lens - 1
    end_at = np.where(end_rst, first_rst, np.where(end_fin, first_fin, last_row))
    end_ts = ts[end_at]
    horizon = np.where(end_open, capture_end_ns, end_ts)
    # syn-unanswered: SYNs without a SYN/ACK decide the flow on their own.
    synack = _segment_count((fl & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK), starts) > 0
    syns = _segment_count(((fl & (TH_SYN | TH_ACK)) == TH_SYN) & ~resp, starts)
    syn_decides = (syns > 0) & ~synack
    # data-unacked: only a side the tracker saw retransmit.
    maybe = rxmit.copy()
    # data-hole: a segment of that direction at least PMTU_MIN_STUCK past the
    # receiver's highest ACK, first seen PMTU_HOLE_MIN_S before the horizon.
    seq = rows["seq"]
    ack = rows["ack"]
    for is_resp in (True, False):
        mine = (resp == is_resp) & (pl > 0) & ~rst
        peer = (resp != is_resp) & ((fl & (TH_ACK | TH_RST)) == TH_ACK)
        n_mine = _segment_count(mine, starts)
        n_peer = _segment_count(peer, starts)
        ok = (n_mine >= 2) & (n_peer > 0)
        if not ok.any():
            continue
        first_mine = _segment_first(mine, starts, never)
        base = seq[np.where(ok, first_mine, starts)].astype(np.int64)[gid]
        start_rel = _rel_seq(seq, base)
        ack_pt = np.maximum.reduceat(np.where(peer, _rel_seq(ack, base), -SEQ_MOD), starts)
        past = mine & (start_rel > ack_pt[gid])
        far = np.maximum.reduceat(np.where(past, start_rel, -SEQ_MOD), starts)
        since = np.minimum.reduceat(np.where(past, ts, np.iinfo(np.int64).max), starts)
        maybe |= (ok & (far - ack_pt >= PMTU_MIN_STUCK)
                  & ((horizon - since) / NS >= PMTU_HOLE_MIN_S))
    o_data = ~resp & (pl > 0) & ~rst
    r_data = resp & (pl > 0) & ~rst
    o_last = _segment_last(o_data, starts)
    r_last = _segment_last(r_data, starts)
    has_o = o_last >= 0
    has_r = r_last >= 0
    # cut-mid-stream: the responder's FIN came first, in a TLS flow, with no alert
    # from it and enough of its payload in the window before its FIN.
    closer_resp = end_fin & resp[np.where(end_fin, first_fin, 0)]
    alert = _segment_count(resp & (rows["tls_ct"] == 21), starts) > 0
    to_end = end_ts[gid] - ts
    recent = _segment_count(r_data & (to_end >= 0) & (to_end <= CUT_WINDOW_S * NS), starts)
    maybe |= (closer_resp & hello & has_r & ~alert & (recent >= CUT_MIN_SEGMENTS))
    # request-unanswered: the originator's last payload never answered, or answered
    # only after its FIN when a RST ended the flow.
    o_last_ts = ts[np.maximum(o_last, 0)]
    answered = has_r & (ts[np.maximum(r_last, 0)] > o_last_ts)
    maybe |= (has_o & ~end_rst & ~(end_open & has_r) & ~answered
              & ((horizon - o_last_ts) / NS >= MIN_SILENCE_S))
    o_fin = _segment_count(fin & ~rst & ~resp, starts) > 0
    maybe |= has_o & end_rst & o_fin
    out: np.ndarray = np.where(syn_decides, syns >= 2, maybe)
    return out


def service_busy(spans: Iterable[tuple[int, int, int, bool]], at_ns: int, flow_id: int) -> bool:
    """Was the service answering other connections around ``at_ns``?  ``spans`` are
    its connections as (flow id, first, last packet time, served): one served other
    than ``flow_id`` whose span, widened by OVERLOAD_WINDOW_S, holds ``at_ns``.
    The plain scan: :class:`BusyIndex` answers the same, faster."""
    return any(served and fid != flow_id
               and a - OVERLOAD_WINDOW_S * NS <= at_ns <= b + OVERLOAD_WINDOW_S * NS
               for fid, a, b, served in spans)


class BusyIndex:
    """:func:`service_busy` for many questions about one service: O(log n) each, not
    a scan of every connection (a SYN flood has thousands of stalls per service).

    The widened spans sorted by their start; for each prefix, the largest end and its
    flow, and the largest end of any other flow (the answer when the question is
    about the first).  Same float bounds as the scan, so the same answers."""

    __slots__ = ("_lo", "_top")

    def __init__(self, spans: Iterable[tuple[int, int, int, bool]]) -> None:
        w = OVERLOAD_WINDOW_S * NS
        served = sorted(((a - w, b + w, fid) for fid, a, b, ok in spans if ok),
                        key=lambda s: s[0])
        self._lo = [lo for lo, _, _ in served]
        self._top: list[tuple[float, int, float]] = []
        best, best_fid, other = float("-inf"), -1, float("-inf")
        for _, hi, fid in served:
            if fid == best_fid:
                best = max(best, hi)
            elif hi > best:
                best, best_fid, other = hi, fid, best
            elif hi > other:
                other = hi
            self._top.append((best, best_fid, other))

    def busy(self, at_ns: int, flow_id: int) -> bool:
        i = bisect_right(self._lo, at_ns)  # the spans that start at or before at_ns
        if i == 0:
            return False
        best, best_fid, other = self._top[i - 1]
        return at_ns <= (best if best_fid != flow_id else other)


def _generation_rows_plain(flows: Iterable[Flow], ledger: TailLedger
                           ) -> tuple[list[Flow], np.ndarray, np.ndarray]:
    """The flows whose tail holds rows of their own generation (its first packet or
    later), those rows one flow after another, and how many per flow: flow by flow."""
    live: list[Flow] = []
    parts: list[np.ndarray] = []
    for flow in flows:
        tail = ledger.tail(flow.key)
        if tail is None or flow.first_ts_ns < 0:
            continue
        rows = tail[tail["ts_ns"] >= flow.first_ts_ns]
        if len(rows):
            live.append(flow)
            parts.append(rows)
    lens = np.array([len(r) for r in parts], dtype=np.int64)
    return live, (np.concatenate(parts) if parts else np.empty(0, TAIL_DTYPE)), lens


def _generation_rows(flows: Iterable[Flow], ledger: TailLedger
                     ) -> tuple[list[Flow], np.ndarray, np.ndarray]:
    """:func:`_generation_rows_plain` in a few numpy calls: thousands of flows' tails
    joined as bytes (``np.concatenate`` of structured arrays promotes their dtype
    pair by pair, ~15 us a tail) and cut at each flow's first packet at once."""
    owners: list[Flow] = []
    tails: list[bytes] = []
    for flow in flows:
        tail = ledger.tail_bytes(flow.key)
        if tail is None or flow.first_ts_ns < 0:
            continue
        owners.append(flow)
        tails.append(tail)
    all_rows = np.frombuffer(b"".join(tails), dtype=TAIL_DTYPE)
    tail_lens = np.fromiter((len(t) for t in tails), dtype=np.int64,
                            count=len(tails)) // TAIL_DTYPE.itemsize
    first = np.fromiter((f.first_ts_ns for f in owners), dtype=np.int64, count=len(owners))
    gid = np.repeat(np.arange(len(owners), dtype=np.int64), tail_lens)
    keep = all_rows["ts_ns"] >= first[gid]
    counts = np.bincount(gid[keep], minlength=len(owners))
    has = counts > 0
    live = [f for f, h in zip(owners, has.tolist(), strict=True) if h]
    return live, all_rows[keep], counts[has].astype(np.int64)


def find_stalls(flows: Iterable[Flow], ledger: TailLedger, capture_end_ns: int,
                flow_records: dict[int, tuple[str, int]] | None = None, *,
                reference: bool = False) -> list[StallRecord]:
    """Stall findings for ``flows`` (their tails are in ``ledger``).

    ``reference``: the plain path, every flow's tail read in Python (no
    :func:`screen_tails`, no :class:`BusyIndex`); the tests compare the two."""
    found: list[tuple[Flow, str, _Side, str, int | None, int, tuple[int, int]]] = []
    per_service: dict[tuple[bytes, int], list[tuple[int, int, int, bool]]] = defaultdict(list)
    gather = _generation_rows_plain if reference else _generation_rows
    pending = iter(flows)
    # A chunk of flows at a time: the joined tails and the screen's columns stay a
    # few MB however many flows are live.
    while chunk := list(islice(pending, SCREEN_CHUNK_FLOWS)):
        live, rows, lens = gather(chunk, ledger)
        state = _state_columns(live)
        served = (state[:, 1, -1] > 0).tolist()  # the responder sent payload bytes
        for flow, ok in zip(live, served, strict=True):
            per_service[(flow.resp_raw, flow.resp_p)].append((flow.flow_id, flow.first_ts_ns,
                                                              flow.last_ts_ns, ok))
        # Both checks are necessary conditions of a finding: the tails' vectorised
        # screen first, as it leaves few flows for the running-state check's Python.
        candidates = (range(len(live)) if reference else np.flatnonzero(
            screen_tails(live, rows, lens, capture_end_ns, state)).tolist())
        ends = np.cumsum(lens).tolist()
        for i in candidates:
            flow = live[i]
            oc, rc = state[i].tolist()
            if not _maybe_stalled(flow, oc, rc, capture_end_ns):
                continue
            ma, mb = ledger.max_payload_len(flow.key)
            mp = (ma, mb) if flow.orig_is_a else (mb, ma)
            # Each flow's rows: a slice of the concatenation.
            hit = _finding(flow, rows[ends[i] - int(lens[i]):ends[i]], mp, capture_end_ns)
            if hit is not None:
                found.append((flow, *hit, mp))
    out = []
    busy_of: dict[tuple[bytes, int], BusyIndex] = {}
    for flow, kind, side, end, end_frame, start_ns, mp in found:
        # Was the same service answering other connections meanwhile?
        service = (flow.resp_raw, flow.resp_p)
        if reference:
            busy = service_busy(per_service[service], start_ns, flow.flow_id)
        else:
            if service not in busy_of:
                busy_of[service] = BusyIndex(per_service[service])
            busy = busy_of[service].busy(start_ns, flow.flow_id)
        max_payload_len = mp[side.direction]
        horizon = capture_end_ns if end == "open" else _end_ts_ns(flow, ledger, end_frame)
        silence = max(0.0, (horizon - start_ns) / NS)
        cause_id = stall_cause(kind, side, max_payload_len, busy)
        outstanding = (side.hi_rel - side.acked_rel if side.acked_rel is not None
                       else side.hi_rel) if side.sent_payload else 0
        facts: dict[str, object] = {"silence_s": silence, "elapsed_s": silence, "rx": side.rx, "through": side.through_max,
                 "stuck": side.stuck_plens, "max_plen": max_payload_len, "kind": kind, "end": end,
                 "port": flow.resp_p, "hole": side.hole_bytes, "dupacks": side.dupacks}
        out.append(StallRecord(
            flow_id=flow.flow_id, ts_ns=start_ns, kind=kind, end=end, end_frame=end_frame,
            orig_h=addr_text(flow.orig_raw, flow.ip_v), orig_p=flow.orig_p,
            resp_h=addr_text(flow.resp_raw, flow.ip_v), resp_p=flow.resp_p,
            stalled_side="orig" if side.direction == 0 else "resp", silence_s=round(silence, 6),
            retransmissions=side.rx, outstanding_bytes=max(0, outstanding),
            through_max_plen=side.through_max, stuck_plens=side.stuck_plens,
            max_plen=max_payload_len,
            cause_id=cause_id, cause=stall_sentence(cause_id, facts),
            advice=stall_advice(cause_id, facts), action=everyday_action(cause_id, facts)))
    out.sort(key=lambda s: (s.ts_ns, s.flow_id))
    return out


def _end_ts_ns(flow: Flow, ledger: TailLedger, end_frame: int | None) -> int:
    """When the packet that ended the stall was seen (the flow's close, by default)."""
    tail = ledger.tail(flow.key)
    assert tail is not None
    rows = tail[tail["ts_ns"] >= flow.first_ts_ns]
    at = rows["ts_ns"][rows["frame"] == end_frame] if end_frame is not None else []
    return int(at[0]) if len(at) else _end(rows)[2]


def stall_cause(kind: str, side: _Side, max_payload_len: int, busy: bool) -> str:
    """The cause name of a stall (same vocabulary as reset verdicts)."""
    if kind == "syn-unanswered":
        # Other connections to the same service were served meanwhile: it was
        # alive and reachable, so its accept queue (or a connection limit) was full.
        return "accept-overflow" if busy else "path-silent"
    if kind == "data-unacked":
        # Only large segments are stuck while smaller ones got through: the path
        # drops what exceeds its MTU and the ICMP that would say so is lost.
        # "Large" is absolute (>= PMTU_MIN_STUCK): a capture with segmentation
        # offload shows super-segments, so the flow's own maximum is no yardstick.
        if (side.stuck_plens and min(side.stuck_plens) >= PMTU_MIN_STUCK
                and 0 < side.through_max < min(side.stuck_plens)):
            return "pmtu-blackhole"
        return "path-silent"
    if kind == "data-hole":
        # Chosen by hole_is_blackhole: a full-size stretch missing, smaller ones arrived.
        return "pmtu-blackhole"
    if kind == "cut-mid-stream":
        return "total-timeout"
    if kind == "request-unanswered":
        return "accept-overflow" if busy else "unanswered"
    return "unknown"


__all__ = ["BusyIndex", "Hole", "StallRecord", "find_stalls", "hole_is_blackhole",
           "receiver_hole", "screen_tails", "service_busy", "stall_cause"]
