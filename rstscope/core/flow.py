"""Mutable per-flow state and the per-packet update (the tracker's slow path).

The tracker's vectorised bulk path (:mod:`rstscope.core.bulk`) updates the same
fields for packets of quiet established flows; anything that changes state or
needs packet order (SYN/FIN/RST, TLS handshake records, zero windows, flows in
their handshake or awaiting a verdict) comes through :meth:`Flow.packet`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rstscope.core import states
from rstscope.core.states import Endpoint
from rstscope.schema import TH_ACK, TH_FIN, TH_RST, TH_SYN

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


class Dir:
    """One direction (orig or resp) of a flow."""

    __slots__ = (
        "pkts", "bytes", "ip_bytes", "first_ts", "last_ts", "last_payload_ts",
        "ttl_counts", "ipid_counts", "last_ip_id", "win", "wscale", "snd_nxt", "max_ack",
        "nr_ts", "nr_frame", "nr_seq", "nr_ack", "nr_flags", "nr_len", "nr_ttl", "nr_ip_id",
        "nr_win", "nr_gap_ns", "hist", "last_syn_seq", "last_fin_seq", "last_rst_seq",
        "rxmit", "zwin", "since_peer", "ep", "fin_ts", "tls_alert_ts", "data_unacked_ts",
        "isn", "ts_opt", "syn_ttl",
    )

    def __init__(self) -> None:
        self.pkts = 0
        self.bytes = 0
        self.ip_bytes = 0
        self.first_ts = -1
        self.last_ts = -1
        self.last_payload_ts = -1
        self.ttl_counts: dict[int, int] = {}
        self.ipid_counts = [0, 0, 0, 0]  # incrementing, zero, constant, random steps
        self.last_ip_id = -1
        self.win: int | None = None
        self.wscale = -1
        self.snd_nxt: int | None = None  # highest seq + len seen (raw, mod 2**32)
        self.max_ack: int | None = None
        # Snapshot of the last non-RST packet: a RST's trigger candidate.
        self.nr_ts = -1
        self.nr_frame = 0
        self.nr_seq = 0
        self.nr_ack = 0
        self.nr_flags = 0
        self.nr_len = 0
        self.nr_ttl = 0
        self.nr_ip_id = -1
        self.nr_win = 0
        self.nr_gap_ns = 0  # silence (either direction) that preceded that packet
        self.hist = 0
        self.last_syn_seq = -1
        self.last_fin_seq = -1
        self.last_rst_seq = -1
        self.rxmit = 0
        self.zwin = 0
        self.since_peer = 0  # packets sent since the peer was last heard
        self.ep = Endpoint()
        self.fin_ts = -1
        self.tls_alert_ts = -1
        self.data_unacked_ts = -1  # ts of newest data not yet ACKed (RTT sampling)
        self.isn: int | None = None
        self.ts_opt = False
        self.syn_ttl = -1  # TTL of this side's SYN or SYN/ACK: the endpoint's own stack


@dataclass(slots=True)
class Obs:
    """A packet seen after a RST, inside its settle window."""

    ts: int
    d: int
    flags: int
    seq: int
    ack: int
    plen: int
    ttl: int
    ip_id: int
    frame: int


@dataclass(slots=True)
class PriorRst:
    ts: int
    d: int
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
    ts: int
    d: int
    flags: int
    seq: int
    ack: int
    plen: int
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
    s_nr_ts: int
    s_last_payload_ts: int
    s_snd_nxt: int | None
    s_max_ack: int | None
    s_fin_ts: int
    s_tls_alert_ts: int
    s_since_peer: int
    s_rxmit: int
    s_ts_opt: bool
    s_syn_ttl: int
    # Receiver of the RST.
    r_pkts: int
    r_nr_ts: int
    r_nr_frame: int
    r_nr_seq: int
    r_nr_ack: int
    r_nr_len: int
    r_nr_flags: int
    r_nr_ip_id: int
    r_nr_win: int
    r_nr_gap_ns: int
    r_last_payload_ts: int
    r_snd_nxt: int | None
    r_win: int | None
    r_wscale: int
    r_fin_ts: int
    # Flow.
    syn_seen: bool
    synack_seen: bool
    ch_ts: int
    sh_ts: int
    prior: list[PriorRst]
    later: list[Obs] = field(default_factory=list)


class Flow:
    """One connection generation."""

    __slots__ = (
        "flow_id", "generation", "key", "orig_is_a", "orientation", "ip_v", "orig_raw",
        "resp_raw", "orig_p", "resp_p", "dirs", "history", "first_ts", "last_ts",
        "nr_last_ts", "max_gap_ns", "syn_ts", "synack_ts", "hs_ack_ts", "syn_seq",
        "rtt_side_ns", "resets", "pending", "recent_rsts", "ch_ts", "sh_ts", "evicted",
        "flipped", "warned_s",
    )

    def __init__(self, flow_id: int, generation: int, key: bytes, orig_is_a: bool,
                 orientation: str, flipped: bool, ip_v: int, orig_raw: bytes, orig_p: int,
                 resp_raw: bytes, resp_p: int) -> None:
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
        self.dirs = (Dir(), Dir())
        self.history: list[str] = ["^"] if self.flipped else []
        self.first_ts = -1
        self.last_ts = -1
        self.nr_last_ts = -1
        self.max_gap_ns = 0
        self.syn_ts = -1
        self.synack_ts = -1
        self.hs_ack_ts = -1
        self.syn_seq: int | None = None
        # Round trip from the capture point to each side and back: [orig, resp].
        self.rtt_side_ns: list[int] = [-1, -1]
        self.resets = 0
        self.pending: list[ResetContext] = []
        self.recent_rsts: list[PriorRst] = []
        self.ch_ts = -1
        self.sh_ts = -1
        self.evicted = False
        self.warned_s = 0.0

    # -- queries -----------------------------------------------------------
    def ended(self) -> bool:
        o, r = self.dirs[0].ep.state, self.dirs[1].ep.state
        return states.RESET in (o, r) or (o == states.CLOSED and r == states.CLOSED)

    def needs_packet_path(self) -> bool:
        """Packets of this flow must go through :meth:`packet` (order matters)."""
        if self.pending:
            return True
        o, r = self.dirs[0].ep.state, self.dirs[1].ep.state
        if o in (states.INACTIVE, states.SYN_SENT, states.SYN_ACK_SENT):
            return True
        if r in (states.INACTIVE, states.SYN_SENT, states.SYN_ACK_SENT):
            return True
        return self.syn_ts >= 0 and self.hs_ack_ts < 0

    def conn_state(self) -> str:
        o, r = self.dirs
        return states.conn_state(o.ep, r.ep, "".join(self.history), o.bytes, r.bytes)

    def add_letter(self, d: int, letter: str) -> None:
        self.history.append(letter if d == 0 else letter.lower())

    def note_gap(self, ts: int) -> int:
        gap = ts - self.last_ts if self.last_ts >= 0 else 0
        if gap > self.max_gap_ns:
            self.max_gap_ns = gap
        if self.first_ts < 0:
            self.first_ts = ts
        return gap

    # -- the per-packet path -----------------------------------------------
    def packet(self, d: int, ts: int, frame: int, file_id: int, flags: int, seq: int,
               ack: int, plen: int, ip_len: int, ttl: int, ip_id: int, df: bool, win: int,
               wscale: int, tsval: int, tls_ct: int, tls_hs: int) -> ResetContext | None:
        me = self.dirs[d]
        peer = self.dirs[1 - d]
        is_rst = bool(flags & TH_RST)
        for ctx in self.pending:
            if len(ctx.later) < 64:
                ctx.later.append(Obs(ts, d, flags, seq, ack, plen, ttl, ip_id, frame))
        gap = ts - self.last_ts if self.last_ts >= 0 else 0
        if gap > self.max_gap_ns:
            self.max_gap_ns = gap
        if self.first_ts < 0:
            self.first_ts = ts
        ctx = self._reset_context(d, ts, frame, file_id, flags, seq, ack, plen, ttl, ip_id,
                                  df, win, tsval) if is_rst else None

        me.pkts += 1
        me.bytes += plen
        me.ip_bytes += ip_len
        if me.first_ts < 0:
            me.first_ts = ts
        me.last_ts = ts
        self.last_ts = ts
        if plen:
            me.last_payload_ts = ts
        me.since_peer += 1
        peer.since_peer = 0
        seg_len = plen + (1 if flags & TH_SYN else 0) + (1 if flags & TH_FIN else 0)
        rx = False
        if not is_rst:
            me.ttl_counts[ttl] = me.ttl_counts.get(ttl, 0) + 1
            if ip_id >= 0:
                if me.last_ip_id >= 0:
                    me.ipid_counts[ipid_kind(me.last_ip_id, ip_id)] += 1
                me.last_ip_id = ip_id
            me.win = win
            if tsval >= 0:
                me.ts_opt = True
            end = (seq + seg_len) % SEQ_MOD
            if me.snd_nxt is None or seq_diff(end, me.snd_nxt) > 0:
                me.snd_nxt = end
            elif plen > 0:
                me.rxmit += 1
                rx = True
            if flags & TH_ACK and (me.max_ack is None or seq_diff(ack, me.max_ack) > 0):
                me.max_ack = ack
                # RTT toward *me*: the peer's newest data, seen here, now acked by me.
                # Only without a complete handshake: SYN timing has no delayed-ACK
                # or application think time in it, so it is the better estimate.
                if (self.hs_ack_ts < 0 and peer.data_unacked_ts >= 0
                        and peer.snd_nxt is not None and seq_diff(ack, peer.snd_nxt) >= 0):
                    sample = ts - peer.data_unacked_ts
                    cur = self.rtt_side_ns[d]
                    if cur < 0 or sample < cur:
                        self.rtt_side_ns[d] = sample
                    peer.data_unacked_ts = -1
            if plen:
                me.data_unacked_ts = ts
            me.nr_ts = ts
            me.nr_frame = frame
            me.nr_seq = seq
            me.nr_ack = ack
            me.nr_flags = flags
            me.nr_len = plen
            me.nr_ttl = ttl
            me.nr_ip_id = ip_id
            me.nr_win = win
            me.nr_gap_ns = ts - self.nr_last_ts if self.nr_last_ts >= 0 else 0
            self.nr_last_ts = ts
        if flags & TH_SYN:
            me.isn = seq
            if d == 0 and not flags & TH_ACK and self.syn_seq is None:
                self.syn_seq = seq
            if not is_rst:
                me.syn_ttl = ttl
            if wscale >= 0:
                me.wscale = wscale
        self._history(d, me, flags, seq, plen, win)
        if rx and states.is_log_threshold(me.rxmit):
            self.add_letter(d, "T")  # after the packet's own letter, as Zeek orders them
        states.step(me.ep, peer.ep, self.dirs[0].ep, d == 0, flags, plen)
        self._handshake(d, ts, flags)
        if tls_hs == 1 and self.ch_ts < 0:
            self.ch_ts = ts
        elif tls_hs == 2 and self.sh_ts < 0:
            self.sh_ts = ts
        if tls_ct == 21:
            me.tls_alert_ts = ts
        if flags & TH_FIN and not is_rst:
            me.fin_ts = ts
        if ctx is not None:
            self.resets += 1
            self.recent_rsts.append(PriorRst(ts, d, seq, ack, ttl, ip_id))
            if len(self.recent_rsts) > 16:
                del self.recent_rsts[0]
            self.pending.append(ctx)
        return ctx

    def _history(self, d: int, me: Dir, flags: int, seq: int, plen: int, win: int) -> None:
        ctl = states.control_letter(flags)
        if ctl is not None:
            bit, letter = ctl
            if letter in states.REPEATABLE:
                mark = (seq + plen) % SEQ_MOD if letter == "F" else seq
                attr = {"S": "last_syn_seq", "H": "last_syn_seq", "F": "last_fin_seq",
                        "R": "last_rst_seq"}[letter]
                if not me.hist & bit or getattr(me, attr) != mark:
                    self.add_letter(d, letter)
                me.hist |= bit
                setattr(me, attr, mark)
            elif not me.hist & bit:
                me.hist |= bit
                self.add_letter(d, letter)
        elif plen:
            if not me.hist & states.H_DATA:
                me.hist |= states.H_DATA
                self.add_letter(d, "D")
        elif flags & TH_ACK and not me.hist & states.H_ACK:
            me.hist |= states.H_ACK
            self.add_letter(d, "A")
        if win == 0 and not flags & (TH_RST | TH_SYN | TH_FIN):
            me.zwin += 1
            if states.is_log_threshold(me.zwin):
                self.add_letter(d, "W")

    def _handshake(self, d: int, ts: int, flags: int) -> None:
        syn, ackf = flags & TH_SYN, flags & TH_ACK
        if syn and not ackf and d == 0 and self.syn_ts < 0:
            self.syn_ts = ts
        elif syn and ackf and d == 1 and self.synack_ts < 0:
            self.synack_ts = ts
            if self.syn_ts >= 0:
                self.rtt_side_ns[1] = ts - self.syn_ts
        elif (not syn and ackf and d == 0 and self.synack_ts >= 0 and self.hs_ack_ts < 0
              and not flags & TH_RST):
            self.hs_ack_ts = ts
            self.rtt_side_ns[0] = ts - self.synack_ts

    def _reset_context(self, d: int, ts: int, frame: int, file_id: int, flags: int, seq: int,
                       ack: int, plen: int, ttl: int, ip_id: int, df: bool, win: int,
                       tsval: int) -> ResetContext:
        s, r = self.dirs[d], self.dirs[1 - d]
        return ResetContext(
            flow=self, frame=frame, file_id=file_id, ts=ts, d=d, flags=flags, seq=seq,
            ack=ack, plen=plen, ttl=ttl, ip_id=ip_id, df=df, win=win, tsval=tsval,
            s_pkts=s.pkts, s_ttl_counts=dict(s.ttl_counts), s_ipid_counts=list(s.ipid_counts),
            s_last_ip_id=s.last_ip_id, s_nr_ts=s.nr_ts, s_last_payload_ts=s.last_payload_ts,
            s_snd_nxt=s.snd_nxt, s_max_ack=s.max_ack, s_fin_ts=s.fin_ts,
            s_tls_alert_ts=s.tls_alert_ts, s_since_peer=s.since_peer, s_rxmit=s.rxmit,
            s_ts_opt=s.ts_opt, s_syn_ttl=s.syn_ttl,
            r_pkts=r.pkts, r_nr_ts=r.nr_ts, r_nr_frame=r.nr_frame, r_nr_seq=r.nr_seq,
            r_nr_ack=r.nr_ack, r_nr_len=r.nr_len, r_nr_flags=r.nr_flags, r_nr_ip_id=r.nr_ip_id,
            r_nr_win=r.nr_win, r_nr_gap_ns=r.nr_gap_ns, r_last_payload_ts=r.last_payload_ts,
            r_snd_nxt=r.snd_nxt, r_win=r.win, r_wscale=r.wscale, r_fin_ts=r.fin_ts,
            syn_seen=self.syn_ts >= 0 or self.dirs[0].isn is not None,
            synack_seen=self.synack_ts >= 0,
            ch_ts=self.ch_ts, sh_ts=self.sh_ts,
            prior=list(self.recent_rsts),
        )
