"""Probe segments and the replies they draw, as bytes (sans-IO).

Builds the TCP segment a probe sends (with an IPv4 header for a raw socket with
``IP_HDRINCL``; IPv6 raw sockets take the TCP header alone and fill in the
checksum themselves) and parses what comes back: TCP segments on the probed
4-tuple and ICMP/ICMPv6 errors whose quote names it.  Nothing here touches a
socket, so every rule is testable without privilege.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

#: ICMP types that carry a quote of the packet that caused them (RFC 792 / RFC 4443).
ICMP4_TIME_EXCEEDED, ICMP4_UNREACH = 11, 3
ICMP6_TIME_EXCEEDED, ICMP6_UNREACH = 3, 1
_IPPROTO_TCP = 6


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    s = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def timestamp_option(ts_val: int, ts_ecr: int) -> bytes:
    """NOP, NOP, Timestamps (RFC 7323), the 12 bytes Linux puts on every segment."""
    return struct.pack("!BBBBII", 1, 1, 8, 10, ts_val % 2**32, ts_ecr % 2**32)


def tcp_header(*, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
               options: bytes = b"", payload: bytes = b"") -> bytes:
    """A TCP header (checksum 0) with ``options`` (a multiple of 4 bytes), then ``payload``."""
    if len(options) % 4:
        raise ValueError("TCP options must be padded to a multiple of 4 bytes")
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq % 2**32, ack % 2**32, doff << 4, flags,
                       window, 0, 0) + options + payload


def tcp4_checksummed(src: str, dst: str, segment: bytes) -> bytes:
    """``segment`` with its TCP checksum over the IPv4 pseudo-header filled in."""
    pseudo = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
              + struct.pack("!BBH", 0, _IPPROTO_TCP, len(segment)))
    csum = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def tcp6_checksummed(src: str, dst: str, segment: bytes) -> bytes:
    """``segment`` with its TCP checksum over the IPv6 pseudo-header (RFC 8200 8.1)."""
    pseudo = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
              + struct.pack("!I3xB", len(segment), _IPPROTO_TCP))
    csum = checksum(pseudo + segment)
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def ipv4_packet(*, src: str, dst: str, ttl: int, ip_id: int, segment: bytes) -> bytes:
    """IPv4 header (DF set, like the kernel's own segments) + the checksummed segment."""
    seg = tcp4_checksummed(src, dst, segment)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), ip_id & 0xFFFF, 0x4000, ttl,
                      _IPPROTO_TCP, 0, ipaddress.IPv4Address(src).packed,
                      ipaddress.IPv4Address(dst).packed)
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + seg


@dataclass(frozen=True, slots=True)
class Segment:
    """A TCP segment that arrived (IP fields the answer needs: TTL and IP ID)."""

    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload_len: int
    ttl: int | None
    ip_id: int | None  # None for IPv6 (no ID without a fragment header)
    ts_val: int | None = None  # RFC 7323 timestamps, when the segment carries them
    ts_ecr: int | None = None

    @property
    def seq_end(self) -> int:
        """The sequence number just after this segment (SYN and FIN count one each)."""
        return (self.seq + self.payload_len + bool(self.flags & TH_SYN)
                + bool(self.flags & TH_FIN)) % 2**32


def _tcp_fields(tcp: bytes) -> tuple[int, int, int, int, int, int] | None:
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", tcp[:14])
    return sport, dport, seq, ack, (off >> 4) * 4, flags


def _timestamps(options: bytes) -> tuple[int | None, int | None]:
    """TSval/TSecr from a TCP option block, (None, None) when absent or malformed."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        length = options[i + 1]
        if kind == 8 and length == 10 and i + 10 <= len(options):
            val, ecr = struct.unpack("!II", options[i + 2:i + 10])
            return val, ecr
        i += length
    return None, None


def parse_ipv4_tcp(packet: bytes) -> Segment | None:
    """A segment from a raw IPv4 TCP socket (the IP header is included)."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != _IPPROTO_TCP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack("!H", packet[2:4])[0]
    f = _tcp_fields(packet[ihl:])
    if f is None:
        return None
    sport, dport, seq, ack, doff, flags = f
    ts_val, ts_ecr = _timestamps(packet[ihl + 20:ihl + doff])
    return Segment(src=str(ipaddress.IPv4Address(packet[12:16])),
                   dst=str(ipaddress.IPv4Address(packet[16:20])), sport=sport, dport=dport,
                   seq=seq, ack=ack, flags=flags,
                   payload_len=max(0, min(total, len(packet)) - ihl - doff),
                   ttl=packet[8], ip_id=struct.unpack("!H", packet[4:6])[0],
                   ts_val=ts_val, ts_ecr=ts_ecr)


def parse_ipv6_tcp(tcp: bytes, *, src: str, dst: str, hop_limit: int | None) -> Segment | None:
    """A segment from a raw IPv6 TCP socket (TCP header onward; the hop limit comes
    from ancillary data)."""
    f = _tcp_fields(tcp)
    if f is None:
        return None
    sport, dport, seq, ack, doff, flags = f
    ts_val, ts_ecr = _timestamps(tcp[20:doff])
    return Segment(src=src, dst=dst, sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
                   payload_len=max(0, len(tcp) - doff), ttl=hop_limit, ip_id=None,
                   ts_val=ts_val, ts_ecr=ts_ecr)


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP/ICMPv6 error quoting one of our TCP segments."""

    kind: str  # "time-exceeded" | "unreachable"
    icmp_type: int
    code: int
    src: str  # the router that answered
    quoted_src: str
    quoted_dst: str
    sport: int
    dport: int
    seq: int
    quoted_ip_id: int | None
    #: Hop count left in the quote: 1 (or 0) for a probe that expired there.
    quoted_ttl: int


def parse_icmp4(packet: bytes) -> IcmpError | None:
    """An ICMP error from a raw IPv4 ICMP socket (IP header included) quoting TCP."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < 8 or icmp[0] not in (ICMP4_TIME_EXCEEDED, ICMP4_UNREACH):
        return None
    inner = icmp[8:]
    if len(inner) < 28 or inner[0] >> 4 != 4 or inner[9] != _IPPROTO_TCP:
        return None
    iihl = (inner[0] & 0x0F) * 4
    if len(inner) < iihl + 8:
        return None
    sport, dport, seq = struct.unpack("!HHI", inner[iihl:iihl + 8])
    return IcmpError(
        kind="time-exceeded" if icmp[0] == ICMP4_TIME_EXCEEDED else "unreachable",
        icmp_type=icmp[0], code=icmp[1], src=str(ipaddress.IPv4Address(packet[12:16])),
        quoted_src=str(ipaddress.IPv4Address(inner[12:16])),
        quoted_dst=str(ipaddress.IPv4Address(inner[16:20])), sport=sport, dport=dport, seq=seq,
        quoted_ip_id=struct.unpack("!H", inner[4:6])[0], quoted_ttl=inner[8])


def parse_icmp6(message: bytes, *, src: str) -> IcmpError | None:
    """An ICMPv6 error from a raw ICMPv6 socket (no IPv6 header) quoting TCP.

    Only a quote whose next header is TCP is understood: probes carry no
    extension headers, and a router quotes the packet as it received it."""
    if len(message) < 8 or message[0] not in (ICMP6_TIME_EXCEEDED, ICMP6_UNREACH):
        return None
    inner = message[8:]
    if len(inner) < 48 or inner[0] >> 4 != 6 or inner[6] != _IPPROTO_TCP:
        return None
    sport, dport, seq = struct.unpack("!HHI", inner[40:48])
    return IcmpError(
        kind="time-exceeded" if message[0] == ICMP6_TIME_EXCEEDED else "unreachable",
        icmp_type=message[0], code=message[1], src=src,
        quoted_src=str(ipaddress.IPv6Address(inner[8:24])),
        quoted_dst=str(ipaddress.IPv6Address(inner[24:40])), sport=sport, dport=dport, seq=seq,
        quoted_ip_id=None, quoted_ttl=inner[7])
