"""Ground truth by provenance: which namespace emitted each RST.

Every lab namespace is captured with ``tcpdump -i any`` (Linux cooked headers
carry the packet direction).  A RST was *emitted* by namespace N when it
leaves N without having arrived in N: no incoming packet in N carries the same
(sequence, acknowledgment, flags) around that time.  Matching ignores addresses
and ports on purpose, because NAT (SNAT, DNAT) rewrites them but never the
sequence space.  A RST seen at a vantage point is then labelled with the
emitter whose emitted RST has the same (seq, ack, flags) nearest in time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rstscope.core.vocab import Sender
from rstscope.schema import TH_ACK, TH_RST, TH_SYN

#: How far apart (in time) two sightings of one packet may be on the lab's veths.
MATCH_WINDOW_NS = 500_000_000
#: SLL packet type for frames the host sent (linux/if_packet.h PACKET_OUTGOING).
PACKET_OUTGOING = 4


@dataclass(frozen=True, slots=True)
class Seg:
    """One TCP segment as read from a lab capture."""

    frame: int
    ts_ns: int
    outgoing: bool
    ip_v: int
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    flags: int
    ttl: int
    payload_len: int

    @property
    def conn(self) -> tuple[tuple[str, int], tuple[str, int]]:
        a, b = (self.src, self.sport), (self.dst, self.dport)
        return (a, b) if a <= b else (b, a)

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.ip_v, self.seq, self.ack, self.flags)


@dataclass(frozen=True, slots=True)
class Emission:
    """A RST that left ``node``'s namespace without having arrived there."""

    node: str
    ts_ns: int
    seg: Seg


@dataclass(frozen=True, slots=True)
class Label:
    """The truth for one RST seen in one capture (written as JSON beside it)."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    ack: int
    ttl: int
    emitter_ns: str
    emitter: str
    role: str
    origin: str
    sender: str
    cause: str
    timeout_s: float | None
    idle_gap_s: float


def read_segments(path: Path) -> list[Seg]:
    """All TCP segments of a capture, with 1-based frame numbers and direction."""
    # lazy: scapy takes seconds to import; only capture and the lab use it
    from scapy.config import conf
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2
    from scapy.utils import PcapReader

    # scapy 2.5+ has the SLL2 layer but not always the pcap link type mapping.
    if 276 not in conf.l2types.num2layer:
        conf.l2types.register(276, CookedLinuxV2)

    out: list[Seg] = []
    with PcapReader(str(path)) as reader:
        for frame, pkt in enumerate(reader, start=1):
            if TCP not in pkt:
                continue
            if IP in pkt:
                ip: Any = pkt[IP]
                ip_v, ttl = 4, int(ip.ttl)
                plen = int(ip.len) - int(ip.ihl) * 4
            elif IPv6 in pkt:
                ip = pkt[IPv6]
                ip_v, ttl = 6, int(ip.hlim)
                plen = int(ip.plen)
            else:
                continue
            tcp = pkt[TCP]
            outgoing = False
            if CookedLinux in pkt:
                outgoing = int(pkt[CookedLinux].pkttype) == PACKET_OUTGOING
            elif CookedLinuxV2 in pkt:
                outgoing = int(pkt[CookedLinuxV2].pkttype) == PACKET_OUTGOING
            out.append(Seg(
                frame=frame, ts_ns=int(pkt.time * 1_000_000_000), outgoing=outgoing, ip_v=ip_v,
                src=str(ip.src), sport=int(tcp.sport), dst=str(ip.dst), dport=int(tcp.dport),
                seq=int(tcp.seq), ack=int(tcp.ack), flags=int(tcp.flags), ttl=ttl,
                payload_len=plen - int(tcp.dataofs) * 4,
            ))
    return out


def emissions(node: str, segs: list[Seg]) -> list[Emission]:
    """RSTs that leave ``node`` without a matching arrival (so ``node`` made them)."""
    arrivals: dict[tuple[int, int, int, int], list[tuple[int, int]]] = {}
    for s in segs:
        if not s.outgoing:
            arrivals.setdefault(s.key, []).append((s.ts_ns, s.ttl))
    out = []
    for s in segs:
        if not s.outgoing or not s.flags & TH_RST:
            continue
        # A forwarded packet arrives first, then leaves (within the match window) one
        # TTL lower (a namespace that only delivers locally never forwards).  The TTL
        # matters: an injector may forge a RST with the very (seq, ack, flags) of one the
        # endpoint sends through it, and the forgery leaves with the injector's own TTL.
        if any(0 <= s.ts_ns - t <= MATCH_WINDOW_NS and ttl == s.ttl + 1
               for t, ttl in arrivals.get(s.key, ())):
            continue
        out.append(Emission(node=node, ts_ns=s.ts_ns, seg=s))
    return out


def idle_gap_s(segs: list[Seg], rst: Seg) -> float:
    """Longest silence on ``rst``'s connection before (and including) the RST."""
    times = [s.ts_ns for s in segs if s.conn == rst.conn and s.ts_ns <= rst.ts_ns]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return round(max(gaps, default=0) / 1e9, 6)


def sender_of(segs: list[Seg], rst: Seg, node: str, endpoints: frozenset[str]) -> str:
    """The analyzer's sender vocabulary: was the RST sent by one of the two TCP
    endpoints of the captured connection (which one: the SYN tells), or by a box
    in the middle?  A full proxy is an endpoint of both of its connections."""
    if node == "unknown":
        return "unknown"
    if node not in endpoints:
        return Sender.MIDDLEBOX
    for s in segs:
        if s.conn == rst.conn and s.flags & (TH_SYN | TH_ACK) == TH_SYN:  # the opener
            same = (s.src, s.sport) == (rst.src, rst.sport)
            return Sender.CLIENT_ENDPOINT if same else Sender.SERVER_ENDPOINT
    return Sender.CLIENT_ENDPOINT if node == "client" else Sender.SERVER_ENDPOINT


def label_capture(path: Path, found: list[Emission], *, ns_names: dict[str, str],
                  roles: dict[str, str], origins: dict[str, str], causes: dict[str, str],
                  timeouts: dict[str, float | None],
                  endpoints: frozenset[str] = frozenset({"client", "srv"}),
                  hops: Mapping[str, int] | None = None) -> list[Label]:
    """Label every RST in the capture at ``path`` with the emission it matches.

    ``hops`` maps each node to the routers between it and this capture point.  Two
    RSTs can share (seq, ack, flags): an injector forging the client's next RST and
    the client's own kernel, for one.  The one that reached this capture point is the
    one whose TTL dropped by exactly the hops of the path, so with ``hops`` that
    decides between them (time decides among the rest)."""
    segs = read_segments(path)
    labels = []
    for s in segs:
        if not s.flags & TH_RST:
            continue
        cands = [e for e in found
                 if e.seg.key == s.key and abs(e.ts_ns - s.ts_ns) <= MATCH_WINDOW_NS]
        if hops is not None:
            fits = [e for e in cands if e.node in hops and e.seg.ttl - s.ttl == hops[e.node]]
            cands = fits or cands
        best: Emission | None = min(cands, key=lambda e: abs(e.ts_ns - s.ts_ns), default=None)
        node = best.node if best else "unknown"
        labels.append(Label(
            frame=s.frame, ts_ns=s.ts_ns, src=s.src, sport=s.sport, dst=s.dst, dport=s.dport,
            seq=s.seq, ack=s.ack, ttl=s.ttl, emitter_ns=ns_names.get(node, "unknown"),
            emitter=node, role=roles.get(node, "unknown"), origin=origins.get(node, "unknown"),
            sender=sender_of(segs, s, node, endpoints),
            cause=causes.get(node, "side-effect"), timeout_s=timeouts.get(node),
            idle_gap_s=idle_gap_s(segs, s),
        ))
    return labels


def write_labels(labels: list[Label], path: Path) -> None:
    path.write_text(json.dumps([asdict(lb) for lb in labels], indent=1) + "\n")


def read_labels(path: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data
