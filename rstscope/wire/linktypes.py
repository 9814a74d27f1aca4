"""Link types and the first step of every link layer rstscope reads, as tables.

One table, two interpreters over it: :func:`first_layer` (one frame, for
redaction) and :func:`first_layers` (many frames at once, for the ingest
decoder).  Whatever link type ingest decodes, redaction therefore parses the
same way, and a test holds them to it (tests/redact/test_parity.py).

A step says where the next header starts and what it is: a non-negative
"next" is an ethertype; the negative ``NX_*`` codes name headers that have no
ethertype of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from rstscope.wire.gather import be16, be32, byte_at, gather

# Link types: https://www.tcpdump.org/linktypes.html (LINKTYPE_* values).
LT_NULL: Final = 0
LT_ETHERNET: Final = 1
LT_PPP: Final = 9
LT_FDDI: Final = 10
LT_RAW_12: Final = 12  # DLT_RAW on most BSDs
LT_RAW_14: Final = 14  # DLT_RAW on OpenBSD
LT_PPP_HDLC: Final = 50
LT_RAW: Final = 101
LT_C_HDLC: Final = 104
LT_IEEE802_11: Final = 105
LT_LOOP: Final = 108
LT_SLL: Final = 113
LT_RADIOTAP: Final = 127
LT_IPV4: Final = 228
LT_IPV6: Final = 229
LT_SLL2: Final = 276

# "What comes next" codes without an ethertype.
NX_IPVER: Final = -1  # IPv4 or IPv6 by the version nibble
NX_WLAN: Final = -2  # an 802.11 frame
NX_ETHER: Final = -3  # an Ethernet frame (GRE 0x6558, VXLAN, ...)
NX_PPP: Final = -4  # a PPP protocol field (optionally after FF 03)
NX_LLC: Final = -5  # an 802.2 LLC header (SNAP -> ethertype)
NX_ERSPAN2: Final = -6
NX_ERSPAN3: Final = -7
NX_TCP: Final = -10
NX_GRE: Final = -11
NX_UDP: Final = -12
NX_NONE: Final = -100  # nothing rstscope follows (counted by the caller)

# Ethertypes (IEEE registry).
ET_IPV4: Final = 0x0800
ET_IPV6: Final = 0x86DD
ET_PPPOE_SESSION: Final = 0x8864
ET_MPLS: Final = frozenset({0x8847, 0x8848})  # unicast, multicast
# 802.1Q, 802.1ad, and the two pre-standard QinQ TPIDs switches still send.
VLAN_TPIDS: Final = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
VLAN_TAG_LEN: Final = 4
PPPOE_HEADER_LEN: Final = 6
# Below this an Ethernet "type" field is an 802.3 length: an LLC header follows.
ETHERTYPE_MIN: Final = 0x0600
# SLL/SLL2 protocol 4: an 802.2 LLC frame follows (Linux ETH_P_802_2).
SLL_LLC: Final = 0x0004
# PPP protocol numbers (RFC 1661 and the IANA PPP DLL registry).
PPP_TO_ETHERTYPE: Final = {0x0021: ET_IPV4, 0x0057: ET_IPV6}
# BSD loopback address families: AF_INET, and AF_INET6 as NetBSD/FreeBSD/Darwin number it.
AF_TO_ETHERTYPE: Final = {2: ET_IPV4, 24: ET_IPV6, 28: ET_IPV6, 30: ET_IPV6}

# How a link header names what follows it.
NEXT_FIXED: Final = "fixed"  # always the row's ``next``
NEXT_ETHERTYPE: Final = "ethertype"  # a big-endian 16-bit protocol at ``proto_at``
NEXT_AF_HOST: Final = "af-host"  # a 32-bit address family in the writer's byte order
NEXT_AF_BE: Final = "af-be"  # a 32-bit big-endian address family
NEXT_FDDI: Final = "fddi"  # LLC when the frame control says an LLC frame, else nothing
HEADER_RADIOTAP: Final = -1  # header length is the little-endian 16-bit field at byte 2


@dataclass(frozen=True, slots=True)
class LinkLayer:
    """One link type: its header and how it names the next one."""

    linktype: int
    name: str
    header_len: int  # bytes before the next header (HEADER_RADIOTAP: read from the frame)
    how: str  # NEXT_*
    next: int = NX_NONE  # for NEXT_FIXED
    proto_at: int = 0  # for NEXT_ETHERTYPE
    llc_proto: int | None = None  # for NEXT_ETHERTYPE: the value that means "LLC follows"
    address_spans: tuple[tuple[int, int], ...] = ()  # link-layer addresses: [start, end)
    source: str = ""


LINK_LAYERS: Final = {r.linktype: r for r in (
    LinkLayer(LT_NULL, "null", 4, NEXT_AF_HOST, source="BSD loopback; AF in host order"),
    LinkLayer(LT_ETHERNET, "ethernet", 0, NEXT_FIXED, NX_ETHER, source="IEEE 802.3"),
    LinkLayer(LT_PPP, "ppp", 0, NEXT_FIXED, NX_PPP, source="RFC 1661"),
    LinkLayer(LT_FDDI, "fddi", 13, NEXT_FDDI, address_spans=((1, 13),), source="ANSI X3.139"),
    LinkLayer(LT_RAW_12, "raw", 0, NEXT_FIXED, NX_IPVER, source="DLT_RAW (BSD)"),
    LinkLayer(LT_RAW_14, "raw", 0, NEXT_FIXED, NX_IPVER, source="DLT_RAW (OpenBSD)"),
    LinkLayer(LT_PPP_HDLC, "ppp-hdlc", 0, NEXT_FIXED, NX_PPP, source="RFC 1662"),
    LinkLayer(LT_RAW, "raw", 0, NEXT_FIXED, NX_IPVER, source="LINKTYPE_RAW"),
    LinkLayer(LT_C_HDLC, "c-hdlc", 4, NEXT_ETHERTYPE, proto_at=2, source="Cisco HDLC"),
    LinkLayer(LT_IEEE802_11, "802.11", 0, NEXT_FIXED, NX_WLAN, source="IEEE 802.11"),
    LinkLayer(LT_LOOP, "loop", 4, NEXT_AF_BE, source="OpenBSD loopback; AF big-endian"),
    LinkLayer(LT_SLL, "sll", 16, NEXT_ETHERTYPE, proto_at=14, llc_proto=SLL_LLC,
              address_spans=((6, 14),),
              source="Linux cooked capture v1"),
    LinkLayer(LT_RADIOTAP, "radiotap", HEADER_RADIOTAP, NEXT_FIXED, NX_WLAN,
              source="radiotap.org: it_len at byte 2, little-endian"),
    LinkLayer(LT_IPV4, "ipv4", 0, NEXT_FIXED, ET_IPV4, source="LINKTYPE_IPV4"),
    LinkLayer(LT_IPV6, "ipv6", 0, NEXT_FIXED, ET_IPV6, source="LINKTYPE_IPV6"),
    LinkLayer(LT_SLL2, "sll2", 20, NEXT_ETHERTYPE, proto_at=0, llc_proto=SLL_LLC,
              address_spans=((12, 20),),
              source="Linux cooked capture v2"),
)}
SUPPORTED_LINKTYPES: Final = frozenset(LINK_LAYERS)


def first_layer(linktype: int, frame: bytes | bytearray) -> tuple[int, int] | None:
    """``(offset, next)`` of the header after the link layer of one frame.

    None for a link type rstscope does not decode.  ``next`` is ``NX_NONE``
    when the frame carries nothing rstscope follows, and the offset may lie
    past the captured bytes of a truncated frame.
    """
    row = LINK_LAYERS.get(linktype)
    if row is None:
        return None
    n = len(frame)
    hlen = row.header_len
    if hlen == HEADER_RADIOTAP:
        if n < 4:
            return n, NX_NONE
        hlen = frame[2] | (frame[3] << 8)
    if row.how == NEXT_FIXED:
        return hlen, row.next
    if n < hlen:
        return n, NX_NONE
    if row.how == NEXT_ETHERTYPE:
        proto = int.from_bytes(frame[row.proto_at: row.proto_at + 2], "big")
        return hlen, NX_LLC if proto == row.llc_proto else proto
    if row.how == NEXT_FDDI:
        return hlen, NX_LLC if (frame[0] & 0x30) == 0x10 else NX_NONE
    be = int.from_bytes(frame[:4], "big")
    af = be
    if row.how == NEXT_AF_HOST:
        le = int.from_bytes(frame[:4], "little")
        # The writer's byte order: a value with high bits set came from the other one.
        af = be if le & 0xFFFF0000 else le
    return hlen, AF_TO_ETHERTYPE.get(af, NX_NONE)


def first_layers(linktype: int, buf: np.ndarray, pos: np.ndarray, cap_end: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`first_layer` for many frames of one (supported) link type at once.

    Returns ``(ok, next_pos, next)``: ``ok`` is False where the link header
    itself is cut short; ``next`` is ``NX_NONE`` where nothing follows that
    rstscope reads.
    """
    row = LINK_LAYERS[linktype]
    n = pos.size
    hlen = row.header_len
    if hlen == HEADER_RADIOTAP:
        ok = pos + 4 <= cap_end
        g = gather(buf, pos, 4)
        step = g[:, 2].astype(np.int64) | (g[:, 3].astype(np.int64) << 8)
    else:
        ok = pos + hlen <= cap_end if hlen else np.ones(n, dtype=bool)
        step = np.full(n, hlen, dtype=np.int64)
    if row.how == NEXT_FIXED:
        return ok, pos + step, np.full(n, row.next, dtype=np.int64)
    if row.how == NEXT_ETHERTYPE:
        proto = be16(gather(buf, pos + row.proto_at, 2), 0)
        if row.llc_proto is not None:
            proto = np.where(proto == row.llc_proto, NX_LLC, proto)
        return ok, pos + step, proto
    if row.how == NEXT_FDDI:
        llc = (byte_at(buf, pos) & 0x30) == 0x10
        return ok, pos + step, np.where(llc, NX_LLC, NX_NONE).astype(np.int64)
    g = gather(buf, pos, 4)
    af = be32(g, 0)
    if row.how == NEXT_AF_HOST:
        le = np.ascontiguousarray(g).view("<u4").ravel().astype(np.int64)
        af = np.where((le & 0xFFFF0000) != 0, af, le)
    nxt = np.full(n, NX_NONE, dtype=np.int64)
    for family, et in AF_TO_ETHERTYPE.items():
        nxt[af == family] = et
    return ok, pos + step, nxt
