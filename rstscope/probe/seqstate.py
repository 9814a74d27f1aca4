"""The probed connection's sequence state, learned from the peer's segments (sans-IO).

A probe segment must look like part of the connection: our sequence number,
the peer's next sequence number as our ACK, and the RFC 7323 timestamps when
the connection uses them.  The kernel does not expose these for an ordinary
socket, but the peer's segments carry all of them: its ACK is our next
sequence number once everything we sent is acknowledged, its sequence number
plus length is the ACK we owe, its TSecr echoes our latest TSval (reusing it is
allowed: PAWS only rejects *older* values) and its TSval is what we echo.
"""

from __future__ import annotations

from dataclasses import dataclass

from rstscope.probe.segments import TH_ACK, TH_RST, TH_SYN, Segment


def _after(a: int, b: int) -> bool:
    """``a`` is later than ``b`` in 32-bit sequence space (RFC 1982 style)."""
    return 0 < (a - b) % 2**32 < 2**31


@dataclass(slots=True)
class SeqState:
    """What we know of the connection, updated per peer segment."""

    snd_nxt: int | None = None  # our next sequence number (the peer's highest ACK)
    rcv_nxt: int | None = None  # the peer's next sequence number (what we ACK)
    ts_val: int | None = None  # our TSval to reuse (the peer's latest TSecr)
    ts_ecr: int | None = None  # the peer's latest TSval (what we echo)
    isn1: int | None = None  # our ISN + 1: the SYN-ACK's acknowledgment number
    synack_ttl: int | None = None
    synack_ip_id: int | None = None
    peer_window: int = 65535
    closed_by_peer: bool = False  # a FIN or RST from the peer was seen
    ts_seen_s: float = 0.0  # monotonic time ts_val was learned

    def update(self, seg: Segment, now_s: float = 0.0) -> None:
        if seg.flags & TH_RST:
            self.closed_by_peer = True
            return
        if seg.flags & TH_SYN and seg.flags & TH_ACK:
            self.synack_ttl = seg.ttl
            self.isn1 = seg.ack
            self.synack_ip_id = seg.ip_id
        if seg.flags & TH_ACK and (self.snd_nxt is None or _after(seg.ack, self.snd_nxt)):
            self.snd_nxt = seg.ack
        end = seg.seq_end
        if self.rcv_nxt is None or _after(end, self.rcv_nxt):
            self.rcv_nxt = end
        if seg.flags & 0x01:
            self.closed_by_peer = True
        if seg.ts_val is not None:
            self.ts_ecr = seg.ts_val
        if seg.ts_ecr:
            self.ts_val = seg.ts_ecr
            self.ts_seen_s = now_s

    def our_ts_val(self, now_s: float) -> int | None:
        """A TSval at least as new as the last one the peer saw from us: the echoed
        value plus the milliseconds since (Linux ticks its TCP timestamp clock at
        1 kHz; a value from the future is accepted, one from the past may not be)."""
        if self.ts_val is None:
            return None
        return (self.ts_val + max(0, int((now_s - self.ts_seen_s) * 1000))) % 2**32

    @property
    def ready(self) -> bool:
        return self.snd_nxt is not None and self.rcv_nxt is not None
