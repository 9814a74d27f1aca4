"""Test-side capture crafting, written independently of rstscope's reader.

These build inputs (rewritten link types, swapped byte orders, hand-made
pcapng blocks); the expected values always come from tshark, never from
the reader under test.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from rstscope.ingest import ReadStats, open_capture
from rstscope.wire import pcap, pcapng


def read_all(src, **kw) -> tuple[np.ndarray, ReadStats]:
    with open_capture(src, **kw) as rd:
        parts = list(rd)
    from rstscope.schema import PACKET_DTYPE

    batch = np.concatenate(parts) if parts else np.zeros(0, dtype=PACKET_DTYPE)
    return batch, rd.stats


def pcap_records(path: Path) -> tuple[bytes, list[tuple[int, int, int, bytes]]]:
    """(24-byte header, [(ts_sec, ts_frac, wirelen, data)]) of a little-endian pcap."""
    raw = path.read_bytes()
    assert raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"), "test expects LE pcap"
    hdr = raw[:24]
    out = []
    p = 24
    while p + 16 <= len(raw):
        sec, frac, cl, wl = struct.unpack_from("<IIII", raw, p)
        out.append((sec, frac, wl, raw[p + 16:p + 16 + cl]))
        p += 16 + cl
    return hdr, out


def write_pcap(path: Path, linktype: int, recs, *, endian: str = "<", nsec: bool = False,
               snaplen: int = 262144) -> None:
    with open(path, "wb") as f:
        f.write(pcap.file_header(linktype, snaplen, nanos=nsec, endian=endian))
        for sec, frac, wl, data in recs:
            f.write(pcap.record_header(sec, frac, len(data), wl, endian=endian) + data)


def ether_to(recs, linktype: int, *, af_endian: str = "<"):
    """Strip Ethernet headers and re-encapsulate IP for another link type."""
    out = []
    for sec, frac, wl, data in recs:
        et = data[12:14]
        ip = data[14:]
        v6 = et == b"\x86\xdd"
        if et not in (b"\x08\x00", b"\x86\xdd"):
            continue
        if linktype in (101, 12, 14, 228, 229):
            if (linktype == 228 and v6) or (linktype == 229 and not v6):
                continue
            new = ip
        elif linktype == 0:
            new = struct.pack(af_endian + "I", 30 if v6 else 2) + ip
        elif linktype == 108:
            new = struct.pack(">I", 24 if v6 else 2) + ip
        elif linktype == 276:  # SLL2: protocol, reserved, ifindex, hatype, pkttype, halen, addr
            new = struct.pack(">HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6,
                              data[6:12] + b"\0\0") + ip
        else:
            raise ValueError(linktype)
        out.append((sec, frac, wl - (len(data) - len(new)), new))
    return out


# --------------------------------------------------------------------- pcapng
# Block builders: the wire layer's codec; expected values still come from tshark.
def shb(e: str = "<") -> bytes:
    return pcapng.section_header(endian=e)


def idb(linktype: int, e: str = "<", *, tsresol: int | None = None,
        tsoffset: int | None = None, snaplen: int = 0) -> bytes:
    iface = pcapng.Interface(linktype=linktype, snaplen=snaplen,
                             tsresol=pcapng.DEFAULT_TSRESOL if tsresol is None else tsresol,
                             tsoffset_s=tsoffset or 0)
    return pcapng.interface_block(iface, e)


def epb(iface: int, ts_units: int, data: bytes, wirelen: int | None = None,
        e: str = "<") -> bytes:
    wl = len(data) if wirelen is None else wirelen
    return pcapng.packet_block(iface, ts_units >> 32, ts_units & 0xFFFFFFFF, data, wl, e)


def spb(data: bytes, wirelen: int | None = None, e: str = "<") -> bytes:
    wl = len(data) if wirelen is None else wirelen
    return pcapng.simple_packet(data, wl, e)


def custom_block(e: str = "<") -> bytes:
    """A Name Resolution Block with no records: skipped by readers."""
    return pcapng.block(pcapng.NRB, struct.pack(e + "HH", 0, 0), e)
