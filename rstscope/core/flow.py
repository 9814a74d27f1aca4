"""Mutable per-flow state and the per-packet update (the tracker's slow path).

The tracker's vectorised bulk path (:mod:`rstscope.core.bulk`) updates the same
fields for packets of quiet established flows; anything that changes state or
needs packet order (SYN/FIN/RST, TLS alerts, zero windows, flows in
their handshake or awaiting a verdict) comes through :meth:`Flow.packet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np

from rstscope.core import states
from rstscope.core.states import Endpoint
from rstscope.schema import TH_ACK, TH_FIN, TH_RST, TH_SYN

_HANDSHAKING = (states.SYN_SENT, states.SYN_ACK_SENT)
_MARK_ATTR: Final = {"S": "last_syn_seq", "H": "last_syn_seq", "F": "last_fin_seq",
                     "R": "last_rst_seq"}
SEQ_MOD = 1 << 32
HALF = 1 << 31


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in sequence space (RFC 1982 style)."""
    return ((a - b + HALF) % SEQ_MOD) - HALF


def ipid_kind(prev: int, cur: int) -> int:
    """0 incrementing, 1 zero, 2 constant, 3 random step between two IPv4 IDs."""
    if cur == 0:
        return 1
    step = (cur - prev) & 0xFFFF
    if step == 0:
        return 2
    # Per-socket counters (Linux) step by 1; global counters (Windows) by a few
    # hundred at most between two packets of one busy flow.
    return 0 if step <= 1024 else 3


# Per-direction numeric state lives in one int64 table so the bulk path can
# update every flow of a batch with numpy; the per-packet path loads a
# direction's row into a Python list, works on plain ints and stores it back.
# One row per direction (contiguous, so that load and store are cheap), one
# column per field; index constants name the columns; -1 means "not seen" where
# noted.  Times are capture timestamps in ns.
#
# The ``last_non_rst_*`` columns (constants ``NONRST_*``) copy this direction's last
# packet that was not a RST.  When a RST arrives, the snapshot of its receiver is the
# packet the RST may answer (its trigger): a RST never overwrites it, so a burst of
# RSTs still points at what came before them.  ``last_non_rst_gap_ns`` is the
# silence in the flow (non-RST packets, either direction) just before that packet.
FIELDS: Final = (
    "pkts", "bytes", "ip_bytes", "first_ts_ns", "last_ts_ns", "last_payload_ts_ns",
    "ipid_inc", "ipid_zero", "ipid_const", "ipid_rand", "last_ip_id", "win", "snd_nxt",
    "max_ack", "rxmit", "since_peer", "data_unacked_ts_ns", "ts_opt", "hist",
    "last_non_rst_ts_ns", "last_non_rst_frame", "last_non_rst_seq", "last_non_rst_ack",
    "last_non_rst_flags", "last_non_rst_payload_len", "last_non_rst_ttl",
    "last_non_rst_ip_id", "last_non_rst_win", "last_non_rst_gap_ns",
    # Flags the bulk path reads for every direction of a run at numpy speed instead
    # of asking each Flow: the flow's handshake ACK has been timed (set in both
    # rows: no RTT samples from data any more), and this direction's last packet
    # was a RST (so the flow's may have been: its silences then count from
    # last_non_rst_ts_ns, not last_ts_ns).
    "handshake_timed", "rst_last",
)
(PKTS, BYTES, IPB, FIRST, LAST, LASTPL, INC, ZERO, CONST, RAND, LASTID, WIN, SNDNXT, MAXACK,
 RXMIT, SINCE, UNACKED, TSOPT, HIST, NONRST_TS_NS, NONRST_FRAME, NONRST_SEQ, NONRST_ACK,
 NONRST_FLAGS, NONRST_PAYLOAD_LEN, NONRST_TTL, NONRST_IPID, NONRST_WIN,
 NONRST_GAP_NS, HS_TIMED, RST_LAST) = range(len(FIELDS))
_NONRST: Final = (NONRST_TS_NS, NONRST_FRAME, NONRST_SEQ, NONRST_ACK, NONRST_FLAGS,
                  NONRST_PAYLOAD_LEN, NONRST_TTL, NONRST_IPID, NONRST_WIN, NONRST_GAP_NS)
assert list(range(NONRST_TS_NS, NONRST_GAP_NS + 1)) == list(_NONRST)  # Flow.packet's slice
_UNSEEN = (FIRST, LAST, LASTPL, LASTID, WIN, SNDNXT, MAXACK, UNACKED, NONRST_TS_NS, NONRST_IPID)
DEFAULT_COLUMN: Final = [(-1 if i in _UNSEEN else 0) for i in range(len(FIELDS))]


class DirTable:
    """Growable int64 table: one row per flow direction, one column per field."""

    def __init__(self, capacity: int = 1024) -> None:
        self.a = np.empty((capacity, len(FIELDS)), dtype=np.int64)
        self._default = np.array(DEFAULT_COLUMN, dtype=np.int64)
        self.a[:] = self._default
        self._used = 0
        self._free: list[int] = []

    def alloc(self) -> int:
        if self._free:
            slot = self._free.pop()
            self.a[slot] = self._default
            return slot
        if self._used == self.a.shape[0]:
            grown = np.empty((self.a.shape[0] * 2, len(FIELDS)), dtype=np.int64)
            grown[:self._used] = self.a
            grown[self._used:] = self._default
            self.a = grown
        self._used += 1
        return self._used - 1

    def release(self, slot: int) -> None:
        self._free.append(slot)


class Dir:
    """One direction of a flow: table slot plus non-numeric state.

    Throughout the core a ``direction`` is 0 for packets sent by the flow's
    originator (orig, Zeek's upper-case history letters) and 1 for packets sent by
    its responder (resp, lower-case); ``Flow.dirs[direction]`` is that sender's
    state.
    """

    __slots__ = ("table", "slot", "ttl_counts", "ep", "last_syn_seq", "last_fin_seq",
                 "last_rst_seq", "zwin", "fin_ts_ns", "tls_alert_ts_ns", "isn", "syn_ttl", "wscale",
                 "close_gap_ns", "close_mid_response")

    def __init__(self, table: DirTable) -> None:
        self.table = table
        self.slot = table.alloc()
        self.ttl_counts: dict[int, int] = {}
        self.ep = Endpoint()
        self.last_syn_seq = -1
        self.last_fin_seq = -1
        self.last_rst_seq = -1
        self.zwin = 0
        self.fin_ts_ns = -1
        self.tls_alert_ts_ns = -1
        self.isn: int | None = None
        self.syn_ttl = -1  # TTL of this side's SYN or SYN/ACK: the endpoint's own stack
        self.wscale = -1
        self.close_gap_ns = -1  # silence before this side began closing (TLS alert / FIN)
        # The last payload before that silence was this side's own: it was sending (a
        # response in flight) and then closed without the peer asking for anything.
        self.close_mid_response = False

    def col(self) -> list[int]:
        return self.table.a[self.slot].tolist()  # type: ignore[no-any-return]

    def get(self, field: int) -> int:
        return int(self.table.a[self.slot, field])

    @property
    def pkts(self) -> int:
        return self.get(PKTS)

    @property
    def bytes(self) -> int:
        return self.get(BYTES)

    @property
    def ip_bytes(self) -> int:
        return self.get(IPB)

    @property
    def win(self) -> int | None:
        w = self.get(WIN)
        return None if w < 0 else w

    @property
    def ipid_counts(self) -> list[int]:
        return self.table.a[self.slot, INC:RAND + 1].tolist()  # type: ignore[no-any-return]


@dataclass(slots=True)
class Obs:
    """A packet seen after a RST, inside its settle window."""

    ts_ns: int  # capture timestamp
    direction: int  # 0 sent by the originator, 1 by the responder
    flags: int
    seq: int
    ack: int
    payload_len: int  # TCP payload bytes
    ttl: int
    ip_id: int
    frame: int


@dataclass(slots=True)
class PriorRst:
    """An earlier RST of the same flow (the last 16 are kept)."""

    ts_ns: int  # capture timestamp
    direction: int  # 0 sent by the originator, 1 by the responder
    seq: int
    ack: int
    ttl: int
    ip_id: int


@dataclass(slots=True)
class ResetContext:
    """Everything the classifier needs about one RST, frozen at its arrival plus
    the packets of its settle window."""

    flow: Flow
    frame: int
    file_id: int
    ts_ns: int  # the RST's capture timestamp
    direction: int  # the RST's sender: 0 the originator, 1 the responder
    flags: int
    seq: int
    ack: int
    payload_len: int  # TCP payload bytes of the RST itself
    ttl: int
    ip_id: int
    df: bool
    win: int
    tsval: int
    # Sender (the side the RST claims to come from) before this RST.
    s_pkts: int
    s_ttl_counts: dict[int, int]
    s_ipid_counts: list[int]
    s_last_ip_id: int
    s_last_non_rst_ts_ns: int  # the sender's last non-RST packet (see FIELDS), -1 if none
    s_last_payload_ts_ns: int
    s_snd_nxt: int | None
    s_max_ack: int | None
    s_fin_ts_ns: int
    s_tls_alert_ts_ns: int
    s_since_peer: int
    s_rxmit: int
    s_ts_opt: bool
    s_syn_ttl: int
    s_close_gap_ns: int
    s_close_mid_response: bool
    # Receiver of the RST.  Its last non-RST packet (see FIELDS) is the RST's trigger
    # candidate; -1 / 0 when it sent none.
    r_pkts: int
    r_last_non_rst_ts_ns: int
    r_last_non_rst_frame: int
    r_last_non_rst_seq: int
    r_last_non_rst_ack: int
    r_last_non_rst_payload_len: int
    r_last_non_rst_flags: int
    r_last_non_rst_ip_id: int
    r_last_non_rst_win: int
    r_last_non_rst_gap_ns: int  # the flow's silence just before that packet
    r_last_payload_ts_ns: int
    r_snd_nxt: int | None
    r_win: int | None
    r_wscale: int
    r_fin_ts_ns: int
    # Flow.
    syn_seen: bool
    synack_seen: bool
    client_hello_ts_ns: int
    server_hello_ts_ns: int
    prior: list[PriorRst]
    later: list[Obs] = field(default_factory=list)
    # Zeek's conn_state right after this RST, set by Flow.packet once the RST has
    # moved the endpoint states.  Read at settle time instead, it would depend on
    # how many of the flow's later packets the same batch held (where the batches
    # were cut), since the tracker settles after a whole batch.
    conn_state: str = ""
    # The sender's address in the capture's other flows (non-RST packets), filled by
    # the tracker only when this flow holds no packet of the sender's to compare.
    host_ttl_counts: dict[int, int] = field(default_factory=dict)


class Flow:
    """One connection generation."""

    __slots__ = (
        "flow_id", "generation", "key", "orig_is_a", "orientation", "ip_v", "orig_raw",
        "resp_raw", "orig_p", "resp_p", "dirs", "history", "first_ts_ns", "last_ts_ns",
        "last_non_rst_ts_ns", "max_gap_ns", "syn_ts_ns", "synack_ts_ns", "handshake_ack_ts_ns",
        "syn_seq", "rtt_side_ns", "resets", "pending", "recent_rsts", "client_hello_ts_ns",
        "server_hello_ts_ns", "evicted", "flipped", "warned_s", "hot_until_ns", "table",
    )

    def __init__(self, table: DirTable, flow_id: int, generation: int, key: bytes,
                 orig_is_a: bool, orientation: str, flipped: bool, ip_v: int, orig_raw: bytes,
                 orig_p: int, resp_raw: bytes, resp_p: int) -> None:
        self.table = table
        self.flow_id = flow_id
        self.generation = generation
        self.key = key
        self.orig_is_a = orig_is_a
        self.orientation = orientation
        self.flipped = flipped  # the first packet came from the responder (Zeek's '^')
        self.ip_v = ip_v
        self.orig_raw = orig_raw
        self.resp_raw = resp_raw
        self.orig_p = orig_p
        self.resp_p = resp_p
        self.dirs = (Dir(table), Dir(table))
        self.history: list[str] = ["^"] if self.flipped else []
        self.first_ts_ns = -1
        self.last_ts_ns = -1
        self.last_non_rst_ts_ns = -1  # the flow's last non-RST packet, either direction
        self.max_gap_ns = 0
        self.syn_ts_ns = -1
        self.synack_ts_ns = -1
        self.handshake_ack_ts_ns = -1
        self.syn_seq: int | None = None
        # Round trip from the capture point to each side and back: [orig, resp].
        self.rtt_side_ns: list[int] = [-1, -1]
        self.resets = 0
        self.pending: list[ResetContext] = []
        self.recent_rsts: list[PriorRst] = []
        self.client_hello_ts_ns = -1
        self.server_hello_ts_ns = -1
        self.evicted = False
        self.warned_s = 0.0
        self.hot_until_ns = -1  # packets up to this time feed a pending RST's evidence

    # -- queries -----------------------------------------------------------
    def ended(self) -> bool:
        o, r = self.dirs[0].ep.state, self.dirs[1].ep.state
        return states.RESET in (o, r) or (o == states.CLOSED and r == states.CLOSED)

    def needs_packet_path(self, ts_ns: int) -> bool:
        """Packets of this flow must go through :meth:`packet` (order matters).

        A still-INACTIVE side is checked by the tracker: it matters only if that
        side sends (one-sided captures would otherwise never leave this path).
        """
        return self.holds_order(ts_ns) or self.awaits_handshake_ack()

    def holds_order(self, ts_ns: int) -> bool:
        """A RST's settle window or the handshake itself is in progress."""
        if self.pending and ts_ns <= self.hot_until_ns:
            return True
        o, r = self.dirs[0].ep.state, self.dirs[1].ep.state
        return o in _HANDSHAKING or r in _HANDSHAKING

    def awaits_handshake_ack(self) -> bool:
        """The handshake's third packet (a plain ACK) is still to come: it times
        the client-side RTT."""
        return self.synack_ts_ns >= 0 and self.handshake_ack_ts_ns < 0

    def handshake_acked(self, ts_ns: int) -> None:
        """The handshake's third packet, seen at ``ts_ns``."""
        self.handshake_ack_ts_ns = ts_ns
        self.rtt_side_ns[0] = ts_ns - self.synack_ts_ns
        a = self.table.a
        a[self.dirs[0].slot, HS_TIMED] = 1
        a[self.dirs[1].slot, HS_TIMED] = 1

    def conn_state(self) -> str:
        o, r = self.dirs
        return states.conn_state(o.ep, r.ep, "".join(self.history), o.bytes, r.bytes)

    def add_letter(self, direction: int, letter: str) -> None:
        self.history.append(letter if direction == 0 else letter.lower())

    def release(self) -> None:
        """Give the table slots back (the flow's record has been built)."""
        for dr in self.dirs:
            self.table.release(dr.slot)

    # -- the per-packet path -----------------------------------------------
    def packet(self, direction: int, ts_ns: int, frame: int, file_id: int, flags: int,
               seq: int, ack: int, payload_len: int, ip_len: int, ttl: int, ip_id: int,
               df: bool, win: int, wscale: int, tsval: int, tls_ct: int,
               tls_hs: int) -> ResetContext | None:
        me = self.dirs[direction]
        peer = self.dirs[1 - direction]
        table = self.table.a
        ps = peer.slot
        m = table[me.slot].tolist()
        prev_own_payload_ts_ns = m[LASTPL]
        is_rst = bool(flags & TH_RST)
        for pend in self.pending:
            if len(pend.later) < 64:
                pend.later.append(Obs(ts_ns, direction, flags, seq, ack, payload_len, ttl, ip_id,
                                      frame))
        gap = ts_ns - self.last_ts_ns if self.last_ts_ns >= 0 else 0
        if gap > self.max_gap_ns:
            self.max_gap_ns = gap
        if self.first_ts_ns < 0:
            self.first_ts_ns = ts_ns
        ctx = self._reset_context(direction, m, table[ps].tolist(), ts_ns, frame, file_id, flags,
                                  seq, ack, payload_len, ttl, ip_id, df, win,
                                  tsval) if is_rst else None

        m[PKTS] += 1
        m[BYTES] += payload_len
        m[IPB] += ip_len
        if m[FIRST] < 0:
            m[FIRST] = ts_ns
        m[LAST] = ts_ns
        self.last_ts_ns = ts_ns
        if payload_len:
            m[LASTPL] = ts_ns
        m[SINCE] += 1
        m[RST_LAST] = 1 if is_rst else 0
        table[ps, SINCE] = 0
        if (me.close_gap_ns < 0 and not is_rst and (flags & TH_FIN or tls_ct == 21)
                and self.last_non_rst_ts_ns >= 0):
            me.close_gap_ns = ts_ns - self.last_non_rst_ts_ns
            me.close_mid_response = (prev_own_payload_ts_ns >= 0
                                     and prev_own_payload_ts_ns >= int(table[ps, LASTPL]))
        seg_len = payload_len + (1 if flags & TH_SYN else 0) + (1 if flags & TH_FIN else 0)
        rx = False
        if not is_rst:
            me.ttl_counts[ttl] = me.ttl_counts.get(ttl, 0) + 1
            if ip_id >= 0:
                if m[LASTID] >= 0:
                    m[INC + ipid_kind(m[LASTID], ip_id)] += 1
                m[LASTID] = ip_id
            m[WIN] = win
            if tsval >= 0:
                m[TSOPT] = 1
            end = (seq + seg_len) % SEQ_MOD
            if m[SNDNXT] < 0 or seq_diff(end, m[SNDNXT]) > 0:
                m[SNDNXT] = end
            elif payload_len > 0:
                m[RXMIT] += 1
                rx = True
            if flags & TH_ACK and (m[MAXACK] < 0 or seq_diff(ack, m[MAXACK]) > 0):
                m[MAXACK] = ack
                # RTT toward *me*: the peer's newest data, seen here, now acked by me.
                # Only without a complete handshake: SYN timing has no delayed-ACK
                # or application think time in it, so it is the better estimate.
                if self.handshake_ack_ts_ns < 0:
                    p_unacked, p_nxt = int(table[ps, UNACKED]), int(table[ps, SNDNXT])
                    if p_unacked >= 0 and p_nxt >= 0 and seq_diff(ack, p_nxt) >= 0:
                        sample = ts_ns - p_unacked
                        cur = self.rtt_side_ns[direction]
                        if cur < 0 or sample < cur:
                            self.rtt_side_ns[direction] = sample
                        table[ps, UNACKED] = -1
            if payload_len:
                m[UNACKED] = ts_ns
            # The snapshot columns are consecutive (see FIELDS): one slice store.
            m[NONRST_TS_NS:NONRST_GAP_NS + 1] = (
                ts_ns, frame, seq, ack, flags, payload_len, ttl, ip_id, win,
                ts_ns - self.last_non_rst_ts_ns if self.last_non_rst_ts_ns >= 0 else 0)
            self.last_non_rst_ts_ns = ts_ns
        if flags & TH_SYN:
            me.isn = seq
            if direction == 0 and not flags & TH_ACK and self.syn_seq is None:
                self.syn_seq = seq
            if not is_rst:
                me.syn_ttl = ttl
            if wscale >= 0:
                me.wscale = wscale
        m[HIST] = self._history(direction, me, m[HIST], flags, seq, payload_len, win)
        if rx and states.is_log_threshold(m[RXMIT]):
            self.add_letter(direction, "T")  # after the packet's own letter, as Zeek orders them
        table[me.slot] = m
        states.step(me.ep, peer.ep, self.dirs[0].ep, direction == 0, flags, payload_len)
        self._handshake(direction, ts_ns, flags)
        if tls_hs == 1 and self.client_hello_ts_ns < 0:
            self.client_hello_ts_ns = ts_ns
        elif tls_hs == 2 and self.server_hello_ts_ns < 0:
            self.server_hello_ts_ns = ts_ns
        if tls_ct == 21:
            me.tls_alert_ts_ns = ts_ns
        if flags & TH_FIN and not is_rst:
            me.fin_ts_ns = ts_ns
        if ctx is not None:
            ctx.conn_state = self.conn_state()
            self.resets += 1
            self.recent_rsts.append(PriorRst(ts_ns, direction, seq, ack, ttl, ip_id))
            if len(self.recent_rsts) > 16:
                del self.recent_rsts[0]
            self.pending.append(ctx)
        return ctx

    def _history(self, direction: int, me: Dir, hist: int, flags: int, seq: int,
                 payload_len: int, win: int) -> int:
        """Append this packet's history letters; return the updated letter bits."""
        ctl = states.CONTROL_LETTER[flags & states.LETTER_FLAGS]
        if ctl is not None:
            bit, letter = ctl
            if letter in states.REPEATABLE:
                mark = (seq + payload_len) % SEQ_MOD if letter == "F" else seq
                attr = _MARK_ATTR[letter]
                if not hist & bit or getattr(me, attr) != mark:
                    self.add_letter(direction, letter)
                hist |= bit
                setattr(me, attr, mark)
            elif not hist & bit:
                hist |= bit
                self.add_letter(direction, letter)
        elif payload_len:
            if not hist & states.H_DATA:
                hist |= states.H_DATA
                self.add_letter(direction, "D")
        elif flags & TH_ACK and not hist & states.H_ACK:
            hist |= states.H_ACK
            self.add_letter(direction, "A")
        if win == 0 and not flags & (TH_RST | TH_SYN | TH_FIN):
            me.zwin += 1
            if states.is_log_threshold(me.zwin):
                self.add_letter(direction, "W")
        return hist

    def _handshake(self, direction: int, ts_ns: int, flags: int) -> None:
        syn, ackf = flags & TH_SYN, flags & TH_ACK
        if syn and not ackf and direction == 0 and self.syn_ts_ns < 0:
            self.syn_ts_ns = ts_ns
        elif syn and ackf and direction == 1 and self.synack_ts_ns < 0:
            self.synack_ts_ns = ts_ns
            if self.syn_ts_ns >= 0:
                self.rtt_side_ns[1] = ts_ns - self.syn_ts_ns
        elif (not syn and ackf and direction == 0 and self.awaits_handshake_ack()
              and not flags & TH_RST):
            self.handshake_acked(ts_ns)

    def _reset_context(self, direction: int, m: list[int], p: list[int], ts_ns: int,
                       frame: int, file_id: int, flags: int, seq: int, ack: int,
                       payload_len: int, ttl: int, ip_id: int, df: bool, win: int,
                       tsval: int) -> ResetContext:
        s, r = self.dirs[direction], self.dirs[1 - direction]

        def opt(v: int) -> int | None:
            return None if v < 0 else v

        return ResetContext(
            flow=self, frame=frame, file_id=file_id, ts_ns=ts_ns, direction=direction,
            flags=flags, seq=seq, ack=ack, payload_len=payload_len, ttl=ttl, ip_id=ip_id, df=df,
            win=win, tsval=tsval,
            s_pkts=m[PKTS], s_ttl_counts=dict(s.ttl_counts), s_ipid_counts=m[INC:RAND + 1],
            s_last_ip_id=m[LASTID], s_last_non_rst_ts_ns=m[NONRST_TS_NS],
            s_last_payload_ts_ns=m[LASTPL],
            s_snd_nxt=opt(m[SNDNXT]), s_max_ack=opt(m[MAXACK]), s_fin_ts_ns=s.fin_ts_ns,
            s_tls_alert_ts_ns=s.tls_alert_ts_ns, s_since_peer=m[SINCE], s_rxmit=m[RXMIT],
            s_ts_opt=bool(m[TSOPT]), s_syn_ttl=s.syn_ttl, s_close_gap_ns=s.close_gap_ns,
            s_close_mid_response=s.close_mid_response,
            r_pkts=p[PKTS], r_last_non_rst_ts_ns=p[NONRST_TS_NS],
            r_last_non_rst_frame=p[NONRST_FRAME], r_last_non_rst_seq=p[NONRST_SEQ],
            r_last_non_rst_ack=p[NONRST_ACK], r_last_non_rst_payload_len=p[NONRST_PAYLOAD_LEN],
            r_last_non_rst_flags=p[NONRST_FLAGS], r_last_non_rst_ip_id=p[NONRST_IPID],
            r_last_non_rst_win=p[NONRST_WIN], r_last_non_rst_gap_ns=p[NONRST_GAP_NS],
            r_last_payload_ts_ns=p[LASTPL], r_snd_nxt=opt(p[SNDNXT]), r_win=opt(p[WIN]),
            r_wscale=r.wscale, r_fin_ts_ns=r.fin_ts_ns,
            syn_seen=self.syn_ts_ns >= 0 or self.dirs[0].isn is not None,
            synack_seen=self.synack_ts_ns >= 0,
            client_hello_ts_ns=self.client_hello_ts_ns, server_hello_ts_ns=self.server_hello_ts_ns,
            prior=list(self.recent_rsts),
        )
