"""The packet record: one TCP segment's IP and TCP header fields.

This is the single boundary record between ingestion (files, live capture)
and the analysis core.  Readers yield numpy structured arrays of
:data:`PACKET_DTYPE` in batches; ``rstscope.read_packets`` turns them into a
pandas DataFrame with the same column names.

Conventions: RFC field names (dpkt style), integer nanosecond timestamps,
``-1`` for "absent" in signed integer columns (TCP options not present, IP ID
on IPv6), and addresses as 16 raw bytes (IPv4 as the IPv4-mapped IPv6 form
``::ffff:a.b.c.d``) so that v4 and v6 share one fixed-width column.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Final

import numpy as np

SCHEMA_VERSION: Final = 1

# TCP flag bits (RFC 9293 §3.1; ECE/CWR RFC 3168; AE, formerly NS, RFC 3540).
TH_FIN: Final = 0x001  # no more data from sender
TH_SYN: Final = 0x002  # synchronise sequence numbers
TH_RST: Final = 0x004  # reset the connection
TH_PUSH: Final = 0x008  # push function
TH_ACK: Final = 0x010  # acknowledgment field is significant
TH_URG: Final = 0x020  # urgent pointer field is significant
TH_ECE: Final = 0x040  # ECN echo
TH_CWR: Final = 0x080  # congestion window reduced
TH_AE: Final = 0x100  # accurate ECN (was NS, nonce sum)

# (name, numpy dtype, description). The order is the column order everywhere.
PACKET_FIELDS: Final[tuple[tuple[str, str, str], ...]] = (
    ("file_id", "u2", "index of the input file in a multi-file read (0 for one file)"),
    ("frame", "u8", "1-based frame number within its file, as Wireshark numbers it"),
    ("ts_ns", "i8", "capture timestamp, integer nanoseconds since the Unix epoch"),
    ("iface", "u2", "pcapng interface id (0 for classic pcap)"),
    ("ip_v", "u1", "IP version, 4 or 6"),
    ("src", "S16", "source address, 16 bytes (IPv4-mapped for IPv4)"),
    ("dst", "S16", "destination address, 16 bytes (IPv4-mapped for IPv4)"),
    ("ttl", "u1", "IPv4 TTL or IPv6 hop limit"),
    ("ip_id", "i4", "IPv4 identification; -1 for IPv6"),
    ("df", "?", "IPv4 don't-fragment bit; False for IPv6"),
    ("ip_len", "u4", "IP total length from the header (IPv6: payload length + 40)"),
    ("sport", "u2", "TCP source port"),
    ("dport", "u2", "TCP destination port"),
    ("seq", "u4", "TCP sequence number (raw, not relative)"),
    ("ack", "u4", "TCP acknowledgment number (raw)"),
    ("flags", "u2", "TCP flags, see TH_* constants"),
    ("win", "u2", "TCP window field, unscaled"),
    ("payload_len", "u4", "TCP payload length from the IP length, even if not all captured"),
    ("mss", "i4", "MSS option value; -1 if absent"),
    ("wscale", "i2", "window scale option shift; -1 if absent"),
    ("sack_ok", "?", "SACK-permitted option present"),
    ("tsval", "i8", "TCP timestamp TSval; -1 if absent"),
    ("tsecr", "i8", "TCP timestamp TSecr; -1 if absent"),
    ("tls_ct", "i2", "TLS record content type at payload start (20-23), -1 if none seen"),
    ("tls_hs", "i2", "TLS handshake type when tls_ct == 22 (1 ClientHello, 2 ServerHello); -1"),
    ("truncated", "?", "capture cut some header or option bytes (snaplen); missing fields default"),
)

PACKET_DTYPE: Final = np.dtype([(name, dt) for name, dt, _ in PACKET_FIELDS])
PACKET_COLUMNS: Final = tuple(name for name, _, _ in PACKET_FIELDS)

_V4_PREFIX: Final = b"\x00" * 10 + b"\xff\xff"


def empty_batch(n: int = 0) -> np.ndarray:
    """A zeroed batch of ``n`` packet records with absent-markers set."""
    arr = np.zeros(n, dtype=PACKET_DTYPE)
    for name in ("mss", "wscale", "tsval", "tsecr", "tls_ct", "tls_hs"):
        arr[name] = -1
    return arr


def addr_bytes(addr: str) -> bytes:
    """Text address to the 16-byte column form."""
    ip = ipaddress.ip_address(addr)
    if ip.version == 4:
        return _V4_PREFIX + ip.packed
    return ip.packed


@functools.lru_cache(maxsize=1 << 16)
def addr_text(raw: bytes, ip_v: int) -> str:
    """16-byte column form to text.  numpy strips trailing NULs from ``S16``; pad back.

    Memoised: the output stage names both ends of thousands of flows, mostly the
    same few hosts, and ``ipaddress`` takes ~3 us per address."""
    raw = raw.ljust(16, b"\x00")
    if ip_v == 4:
        return str(ipaddress.IPv4Address(raw[12:16]))
    return str(ipaddress.IPv6Address(raw))


def flags_text(flags: int) -> str:
    """Flags as tcpdump letters, e.g. ``R.`` for RST+ACK, ``S`` for SYN."""
    out = ""
    for bit, ch in ((TH_SYN, "S"), (TH_FIN, "F"), (TH_PUSH, "P"), (TH_RST, "R"), (TH_URG, "U"),
                    (TH_ECE, "E"), (TH_CWR, "W")):
        if flags & bit:
            out += ch
    if flags & TH_ACK:
        out += "."
    return out or "none"
