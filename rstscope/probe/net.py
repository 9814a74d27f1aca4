"""Raw sockets for the probe: send crafted segments to the one target, read replies.

Three kinds of socket, all closed by :meth:`RawIO.close`:

* a raw TCP socket that receives a copy of every TCP segment the host
  receives (IPv4: with the IP header, for the TTL and IP ID; IPv6: the hop
  limit comes as ancillary data), filtered here to the probed 4-tuple;
* a raw ICMP / ICMPv6 socket for time-exceeded and unreachable errors, matched
  to a probe by the TCP header they quote;
* the sending socket: IPv4 ``IPPROTO_RAW`` (we write the IP header, so the TTL
  and IP ID are ours); IPv6 a raw TCP socket with the hop limit set per send.

Every send goes through :meth:`RawIO.send`, which refuses any destination but
the target: the probe talks to nobody else.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from dataclasses import dataclass

from rstscope.errors import UsageError
from rstscope.probe.segments import (
    IcmpError,
    Segment,
    ipv4_packet,
    parse_icmp4,
    parse_icmp6,
    parse_ipv4_tcp,
    parse_ipv6_tcp,
    tcp6_checksummed,
)

_IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
_IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)


@dataclass(frozen=True, slots=True)
class Received:
    """One reply with its arrival time (``time.monotonic()``)."""

    at_s: float
    tcp: Segment | None = None
    icmp: IcmpError | None = None


class RawIO:
    """The probe's raw sockets for one target."""

    def __init__(self, ip_v: int, target: str, port: int) -> None:
        self.ip_v = ip_v
        self.target = target
        self.port = port
        self.local: str | None = None
        self.lport: int | None = None
        fam = socket.AF_INET6 if ip_v == 6 else socket.AF_INET
        self._socks: list[socket.socket] = []
        try:
            self.rx_tcp = self._open(fam, socket.IPPROTO_TCP)
            self.rx_icmp = self._open(fam, socket.IPPROTO_ICMPV6 if ip_v == 6
                                      else socket.IPPROTO_ICMP)
            if ip_v == 6:
                self.rx_tcp.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVHOPLIMIT, 1)
                self.tx = self.rx_tcp  # sends TCP with the hop limit we set per probe
            else:
                self.tx = self._open(fam, socket.IPPROTO_RAW)
        except BaseException:
            self.close()
            raise

    def _open(self, fam: int, proto: int) -> socket.socket:
        s = socket.socket(fam, socket.SOCK_RAW, proto)
        self._socks.append(s)
        s.setblocking(False)
        return s

    def set_flow(self, local: str, lport: int) -> None:
        self.local, self.lport = local, lport
        if self.ip_v == 6:
            # The kernel then sources our IPv6 probes from the connection's address.
            self.tx.bind((local, 0))

    def send(self, *, ttl: int, segment: bytes, ip_id: int) -> None:
        """Send one TCP segment (header + payload, checksum 0) to the target with ``ttl``."""
        if self.local is None:
            raise UsageError("internal: send before the connection is known")
        dst = self.target
        if self.ip_v == 6:
            seg = tcp6_checksummed(self.local, dst, segment)
            self.tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
            self.tx.sendto(seg, (dst, 0))
        else:
            pkt = ipv4_packet(src=self.local, dst=dst, ttl=ttl, ip_id=ip_id, segment=segment)
            self.tx.sendto(pkt, (dst, 0))

    def _ours(self, seg: Segment) -> bool:
        # The source address is not compared: an L4 balancer or NAT may answer from
        # the address behind it if it forgets to translate; the ports pin the flow.
        return seg.sport == self.port and seg.dport == self.lport and seg.dst == self.local

    def _quotes_us(self, err: IcmpError) -> bool:
        return (err.sport == self.lport and err.dport == self.port
                and err.quoted_src == self.local)

    def poll(self, timeout_s: float) -> list[Received]:
        """Replies on the probed flow that arrive within ``timeout_s`` (at least one
        select; returns early as soon as something of ours arrived)."""
        out: list[Received] = []
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.rx_tcp, self.rx_icmp], [], [], max(0.0, left))
            now = time.monotonic()
            for s in ready:
                while True:
                    item = self._read(s, now)
                    if item is False:
                        break
                    if isinstance(item, Received):
                        out.append(item)
            if out or now >= deadline:
                return out

    def _read(self, s: socket.socket, now: float) -> Received | None | bool:
        try:
            if self.ip_v == 6:
                data, anc, _flags, addr = s.recvmsg(65535, socket.CMSG_SPACE(4))
            else:
                data, addr = s.recvfrom(65535)
                anc = []
        except (BlockingIOError, InterruptedError):
            return False
        if s is self.rx_tcp:
            if self.ip_v == 6:
                hlim = None
                for level, typ, val in anc:
                    if level == socket.IPPROTO_IPV6 and typ == _IPV6_HOPLIMIT and len(val) >= 4:
                        hlim = int.from_bytes(val[:4], "little")
                seg = parse_ipv6_tcp(data, src=addr[0].split("%")[0], dst=self.local or "",
                                     hop_limit=hlim)
            else:
                seg = parse_ipv4_tcp(data)
            if seg is not None and self._ours(seg):
                return Received(at_s=now, tcp=seg)
            return None
        err = (parse_icmp6(data, src=addr[0].split("%")[0]) if self.ip_v == 6
               else parse_icmp4(data))
        if err is not None and self._quotes_us(err):
            return Received(at_s=now, icmp=err)
        return None

    def close(self) -> None:
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()
        self._socks.clear()
