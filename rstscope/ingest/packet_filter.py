"""Packet-level filters applied before tracking (``--port``, ``--host``, ``--start/--end``).

Applied to each decoded batch, before the tracker sees it: by ``rstscope.api.analyze``
and by a live capture's ``--start`` (``rstscope.live.cli``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from rstscope.schema import addr_bytes


@dataclass(frozen=True, slots=True)
class PacketFilter:
    """Packet-level filters applied before tracking (``--port``, ``--host``, ``--start/--end``).

    ``hosts`` are addresses or CIDR networks (``192.0.2.0/24``, ``2001:db8::/32``);
    ``start_ns``/``end_ns`` keep packets in [start, end) like editcap's ``-A``/``-B``.
    """

    ports: tuple[int, ...] = ()
    hosts: tuple[str, ...] = ()
    start_ns: int | None = None
    end_ns: int | None = None

    def mask(self, batch: np.ndarray) -> np.ndarray | None:
        """Boolean mask of rows to keep, or None to keep all."""
        keep: np.ndarray | None = None
        if self.ports:
            ports = np.asarray(self.ports, dtype=np.uint16)
            keep = np.isin(batch["sport"], ports) | np.isin(batch["dport"], ports)
        if self.hosts:
            hit = _in_networks(batch["src"], self.hosts) | _in_networks(batch["dst"], self.hosts)
            keep = hit if keep is None else keep & hit
        if self.start_ns is not None or self.end_ns is not None:
            ts = batch["ts_ns"]
            inside = np.ones(len(batch), dtype=bool)
            if self.start_ns is not None:
                inside &= ts >= self.start_ns
            if self.end_ns is not None:
                inside &= ts < self.end_ns
            keep = inside if keep is None else keep & inside
        return keep


def _in_networks(column: np.ndarray, hosts: tuple[str, ...]) -> np.ndarray:
    """Rows of a 16-byte address column inside any of ``hosts`` (addresses or CIDRs)."""
    raw = np.frombuffer(np.ascontiguousarray(column, dtype="S16").tobytes(),
                        dtype=np.uint8).reshape(-1, 16)
    hit = np.zeros(len(raw), dtype=bool)
    for h in hosts:
        net = ipaddress.ip_network(h, strict=False)
        base = np.frombuffer(addr_bytes(str(net.network_address)), dtype=np.uint8)
        # IPv4 lives in the IPv4-mapped IPv6 form, so its prefix starts after 96 bits.
        bits = net.prefixlen + (96 if net.version == 4 else 0)
        full, rest = divmod(bits, 8)
        inside = np.all(raw[:, :full] == base[:full], axis=1)
        if rest:
            m = (0xFF << (8 - rest)) & 0xFF
            inside &= (raw[:, full] & m) == (base[full] & m)
        hit |= inside
    return hit
