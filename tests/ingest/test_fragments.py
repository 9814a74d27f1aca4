"""IP fragments: counted, never reassembled (documented difference from tshark).

tshark reassembles by default and shows the TCP segment once, on the frame
that completes the datagram; rstscope counts every fragment as
``ipv4-fragment`` and emits no TCP row for them.  So for a capture with D
reassembled TCP datagrams: tshark's ``tcp`` count == rstscope's tcp + D.
"""

from __future__ import annotations

import struct

from tests.ingest.helpers import epb, idb, read_all, shb
from tests.ingest.tshark_ref import tshark_count


def _ipv4(ident: int, frag: int, payload: bytes, total_payload_proto: int = 6) -> bytes:
    src, dst = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64,
                       total_payload_proto, 0, src, dst) + payload


def test_fragmented_tcp_is_counted_not_decoded(tmp_path, tshark):
    tcp = struct.pack("!HHIIBBHHH", 40000, 443, 1, 0, 0x50, 0x18, 1000, 0, 0) + b"x" * 100
    first, rest = tcp[:48], tcp[48:]  # fragment offsets are in 8-byte units
    eth = bytes(12) + b"\x08\x00"
    whole = _ipv4(7, 0x4000, struct.pack("!HHIIBBHHH", 40000, 443, 200, 0, 0x50, 0x04, 0, 0,
                                         0))
    frames = [eth + _ipv4(9, 0x2000, first), eth + _ipv4(9, 48 // 8, rest), eth + whole]
    blob = shb() + idb(1)
    for i, f in enumerate(frames):
        blob += epb(0, 1_700_000_000_000_000 + i, f)
    path = tmp_path / "frag.pcapng"
    path.write_bytes(blob)
    batch, stats = read_all(path)
    assert stats.non_tcp["ipv4-fragment"] == 2
    assert stats.tcp == 1 and stats.rst == 1 and stats.check()
    reassembled = 1
    assert tshark_count(tshark, path, "tcp") == stats.tcp + reassembled
    assert tshark_count(tshark, path, "tcp.flags.reset==1") == stats.rst
