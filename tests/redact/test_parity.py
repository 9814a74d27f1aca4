"""Redaction parity with ingest: every link layer and tunnel that ``analyze`` decodes,
``redact`` anonymises without losing a TCP segment.

Each case is one frame built here (scapy for the IP/TCP packet, the link layers
by hand from their specs).  tshark confirms every original frame really is the
TCP segment it claims to be, so the inputs are not just agreeing with the
reader under test; then the redacted capture must give ingest the same TCP rows
with only the addresses changed.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from rstscope.ingest import open_capture
from rstscope.redact import redact_capture
from rstscope.wire import pcap
from rstscope.wire.linktypes import SUPPORTED_LINKTYPES

KEY = bytes(range(32))
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
V4 = bytes(IP(src="192.0.2.10", dst="198.51.100.20", id=4321, ttl=61, flags="DF")
           / TCP(sport=40000, dport=443, flags="PA", seq=1000, ack=2000, window=512,
                 options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])
           / Raw(b"payload that redaction cuts"))
V6 = bytes(IPv6(src="2001:db8::10", dst="2001:db8::20", hlim=57)
           / TCP(sport=40001, dport=443, flags="R", seq=77, ack=0, window=0))
SNAP_IPV4 = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"


def ether(et: int, body: bytes) -> bytes:
    return MAC_A + MAC_B + struct.pack(">H", et) + body


def wlan(body: bytes) -> bytes:
    # A to-DS data frame: frame control, duration, three addresses, sequence control.
    return b"\x08\x01\x00\x00" + MAC_A + MAC_B + MAC_A + b"\x00\x00" + SNAP_IPV4 + body


def outer_v4(proto: int, body: bytes) -> bytes:
    return bytes(IP(src="203.0.113.1", dst="203.0.113.2", proto=proto) / Raw(body))


def udp_v4(dport: int, body: bytes) -> bytes:
    return bytes(IP(src="203.0.113.1", dst="203.0.113.2") / UDP(sport=50000, dport=dport)
                 / Raw(body))


# (case name, link type, frame); every supported link type needs at least one case.
CASES: list[tuple[str, int, bytes]] = [
    ("null", 0, struct.pack("<I", 2) + V4),
    ("null-v6", 0, struct.pack("<I", 30) + V6),
    ("ethernet", 1, ether(0x0800, V4)),
    ("ethernet-v6", 1, ether(0x86DD, V6)),
    ("vlan-8100", 1, ether(0x8100, b"\x00\x05\x08\x00" + V4)),
    ("qinq-88a8", 1, ether(0x88A8, b"\x00\x05\x81\x00\x00\x06\x08\x00" + V4)),
    ("vlan-9100", 1, ether(0x9100, b"\x00\x05\x08\x00" + V4)),
    ("vlan-9200", 1, ether(0x9200, b"\x00\x05\x08\x00" + V4)),
    ("802.3-llc-snap", 1, MAC_A + MAC_B + struct.pack(">H", len(SNAP_IPV4) + len(V4))
     + SNAP_IPV4 + V4),
    ("pppoe", 1, ether(0x8864, struct.pack(">BBHH", 0x11, 0, 7, len(V4) + 2) + b"\x00\x21" + V4)),
    ("mpls", 1, ether(0x8847, b"\x00\x01\x01\x40" + V4)),
    ("mpls-2-labels", 1, ether(0x8847, b"\x00\x01\x00\x40\x00\x02\x01\x40" + V6)),
    ("ipip", 1, ether(0x0800, outer_v4(4, V4))),
    ("6in4", 1, ether(0x0800, outer_v4(41, V6))),
    ("gre-ip", 1, ether(0x0800, outer_v4(47, b"\x00\x00\x08\x00" + V4))),
    ("gre-teb", 1, ether(0x0800, outer_v4(47, b"\x00\x00\x65\x58" + ether(0x0800, V4)))),
    ("gre-pptp", 1, ether(0x0800, outer_v4(47, b"\x30\x01\x88\x0b"
                                           + struct.pack(">HHI", len(V4) + 4, 9, 1)
                                           + b"\xff\x03\x00\x21" + V4))),
    ("erspan-2", 1, ether(0x0800, outer_v4(47, b"\x10\x00\x88\xbe" + struct.pack(">I", 1)
                                           + b"\x10\x01\x00\x00\x00\x00\x00\x00"
                                           + ether(0x0800, V4)))),
    ("vxlan", 1, ether(0x0800, udp_v4(4789, b"\x08\x00\x00\x00\x00\x00\x01\x00"
                                      + ether(0x0800, V4)))),
    ("geneve", 1, ether(0x0800, udp_v4(6081, b"\x00\x00\x65\x58\x00\x00\x01\x00"
                                       + ether(0x0800, V4)))),
    ("ppp", 9, b"\xff\x03\x00\x21" + V4),
    ("ppp-compressed", 9, b"\x21" + V4),
    ("fddi", 10, b"\x50" + MAC_A + MAC_B + SNAP_IPV4 + V4),
    ("raw-12", 12, V4),
    ("raw-14", 14, V6),
    ("ppp-hdlc", 50, b"\xff\x03\x00\x21" + V4),
    ("raw", 101, V4),
    ("c-hdlc", 104, b"\x0f\x00\x08\x00" + V4),
    ("802.11", 105, wlan(V4)),
    ("loop", 108, struct.pack(">I", 2) + V4),
    ("sll", 113, struct.pack(">HHH8sH", 0, 1, 6, MAC_A + b"\0\0", 0x0800) + V4),
    ("radiotap", 127, b"\x00\x00\x08\x00\x00\x00\x00\x00" + wlan(V4)),
    ("ipv4", 228, V4),
    ("ipv6", 229, V6),
    ("sll2", 276, struct.pack(">HHIHBB8s", 0x0800, 0, 1, 1, 0, 6, MAC_A + b"\0\0") + V4),
]
# tshark decodes 0x9200 as a VLAN tag only when told to (its QinQ TPID preference).
TSHARK_OPTS = {"vlan-9200": ["-o", "vlan.qinq_ethertype:0x9200"]}
# Fields that must not change (addresses change, so they are compared apart).
KEPT = ("frame", "ts_ns", "ip_v", "ttl", "ip_id", "df", "ip_len", "sport", "dport", "seq",
        "ack", "flags", "win", "payload_len", "mss", "wscale")


def test_cases_cover_every_supported_link_type() -> None:
    assert {lt for _, lt, _ in CASES} == set(SUPPORTED_LINKTYPES)


def _write(path: Path, linktype: int, frame: bytes) -> None:
    path.write_bytes(pcap.file_header(linktype, 65535, nanos=False, endian="<")
                     + pcap.record_header(1_700_000_000, 5, len(frame), len(frame), endian="<")
                     + frame)


def _rows(path: Path) -> np.ndarray:
    with open_capture(path) as rd:
        parts = list(rd)
    return np.concatenate(parts)


@pytest.mark.parametrize(("name", "linktype", "frame"), CASES, ids=[c[0] for c in CASES])
def test_redact_keeps_every_tcp_segment_ingest_decodes(name: str, linktype: int, frame: bytes,
                                                       tmp_path: Path) -> None:
    orig, red = tmp_path / "orig.pcap", tmp_path / "red.pcap"
    _write(orig, linktype, frame)
    if shutil.which("tshark"):
        cmd = ["tshark", "-r", str(orig), "-n", *TSHARK_OPTS.get(name, []), "-T", "fields",
               "-e", "tcp.seq_raw"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
        assert out and out[-1] in ("1000", "77"), f"{name}: tshark does not see the segment"
    before = _rows(orig)
    assert len(before) == 1, f"{name}: ingest decodes {len(before)} TCP segments"
    stats = redact_capture(orig, red, KEY)
    assert stats.frames == 1 and not stats.blanked, stats
    assert stats.tcp_segments == 1, f"{name}: redaction did not reach the TCP header"
    after = _rows(red)
    assert len(after) == 1, f"{name}: the redacted frame lost its TCP segment"
    for f in KEPT:
        assert before[f][0] == after[f][0], (name, f)
    assert before["src"][0] != after["src"][0] and before["dst"][0] != after["dst"][0]
    assert MAC_A not in red.read_bytes()[24:], f"{name}: a MAC address survived"
