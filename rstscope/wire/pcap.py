"""Classic libpcap containers: the 24-byte file header and 16-byte record headers.

Source: the libpcap file format (draft-ietf-opsawg-pcap); the nanosecond
"modified" magic is what libpcap writes with ``--time-stamp-precision=nano``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

# First four file bytes -> (struct byte order, timestamp fraction in ns units).
MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),  # big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),  # big-endian, nanoseconds
}
MAGIC_US: Final = 0xA1B2C3D4
MAGIC_NS: Final = 0xA1B23C4D
HEADER_LEN: Final = 24
RECORD_HEADER_LEN: Final = 16
# Wireshark's largest accepted packet for ordinary link types.
MAX_CAPLEN: Final = 262144
# The link-type field's upper bits carry FCS information, not the link type.
LINKTYPE_MASK: Final = 0xFFFF

_FILE_HEADER = "IHHiIII"  # magic, major, minor, thiszone, sigfigs, snaplen, network
_RECORD = "IIII"  # ts_sec, ts_frac, incl_len, orig_len
RECORD_NATIVE: Final = struct.Struct("=" + _RECORD)


@dataclass(frozen=True, slots=True)
class PcapHeader:
    """What a pcap file header says."""

    endian: str  # struct prefix: "<" or ">"
    frac_ns: int  # nanoseconds per timestamp fraction unit: 1000 (µs) or 1 (ns)
    snaplen: int
    linktype: int

    @property
    def nanos(self) -> bool:
        return self.frac_ns == 1


def parse_header(raw: bytes) -> PcapHeader | None:
    """The 24-byte file header, or None when ``raw`` does not start with a pcap magic."""
    if len(raw) < HEADER_LEN or raw[:4] not in MAGICS:
        return None
    endian, frac_ns = MAGICS[raw[:4]]
    _magic, _maj, _min, _zone, _sig, snaplen, network = struct.unpack(
        endian + _FILE_HEADER, raw[:HEADER_LEN])
    return PcapHeader(endian, frac_ns, snaplen, network & LINKTYPE_MASK)


def file_header(linktype: int, snaplen: int, *, nanos: bool = True, endian: str = "=") -> bytes:
    """A version 2.4 file header; ``endian="="`` writes this machine's order, as tcpdump does."""
    return struct.pack(endian + _FILE_HEADER, MAGIC_NS if nanos else MAGIC_US, 2, 4, 0, 0,
                       snaplen, linktype)


def record_header(ts_s: int, ts_frac: int, caplen: int, wirelen: int, *,
                  endian: str = "=") -> bytes:
    """One record header; ``ts_frac`` in the file's unit (µs or ns)."""
    return struct.pack(endian + _RECORD, ts_s, ts_frac, caplen, wirelen)


def record_struct(endian: str) -> struct.Struct:
    """The record header layout in one byte order (for readers' loops)."""
    return struct.Struct(endian + _RECORD)
