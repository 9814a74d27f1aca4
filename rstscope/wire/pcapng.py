"""pcapng: block types, option codes, the block codec and the interface description.

Source: draft-ietf-opsawg-pcapng (sections 3-4).  A block is ``type, total
length, body, total length``; the body is padded to 32 bits.  The section
header's type reads the same in both byte orders and its byte-order magic
decides how the rest of the section is read.

The ingest reader walks blocks vectorised over a whole buffer; redaction and
the live writer go one block at a time.  Both take their numbers from here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np

# Block types (section 4 and the block type registry).
SHB: Final = 0x0A0D0D0A  # section header: a palindrome, so byte order does not matter
IDB: Final = 0x00000001  # interface description
PB_OBSOLETE: Final = 0x00000002  # the obsolete Packet Block
SPB: Final = 0x00000003  # simple packet
NRB: Final = 0x00000004  # name resolution
ISB: Final = 0x00000005  # interface statistics
EPB: Final = 0x00000006  # enhanced packet
IRIG_TS: Final = 0x00000007
ARINC_429: Final = 0x00000008
SJE: Final = 0x00000009  # systemd journal export
DSB: Final = 0x0000000A  # decryption secrets
CUSTOM_COPY: Final = 0x00000BAD
CUSTOM_NOCOPY: Final = 0x40000BAD
KNOWN_BLOCKS: Final = frozenset({SHB, IDB, PB_OBSOLETE, SPB, NRB, ISB, EPB, IRIG_TS,
                                 ARINC_429, SJE, DSB, CUSTOM_COPY, CUSTOM_NOCOPY})
PACKET_BLOCKS: Final = frozenset({EPB, SPB, PB_OBSOLETE})
# The first bytes of every pcapng file.
SHB_BYTES: Final = SHB.to_bytes(4, "little")
BOM: Final = 0x1A2B3C4D  # byte-order magic in the section header
# A block longer than this is taken as corruption rather than a real block.
MAX_BLOCK: Final = 64 << 20
MIN_SHB_LEN: Final = 28
# Header bytes before the packet data: EPB and the obsolete PB 28, SPB 12.
EPB_DATA_OFF: Final = 28
SPB_DATA_OFF: Final = 12

# Option codes.
OPT_END: Final = 0
OPT_COMMENT: Final = 1
OPT_SHB_USERAPPL: Final = 4
OPT_IF_NAME: Final = 2
OPT_IF_TSRESOL: Final = 9
OPT_IF_FCSLEN: Final = 13
OPT_IF_TSOFFSET: Final = 14
DEFAULT_TSRESOL: Final = 6  # microseconds when an interface has no if_tsresol

_EPB_NATIVE = struct.Struct("=IIIIIII")  # type, total length, iface, ts hi, ts lo, caplen, len
_U32_NATIVE = struct.Struct("=I")
_PADDING = tuple(b"\x00" * n for n in range(4))


def pad_len(n: int) -> int:
    """Bytes of padding that bring ``n`` to a multiple of 4."""
    return -n % 4


def pad(data: bytes) -> bytes:
    """``data`` padded with zeros to 32 bits."""
    return data + _PADDING[-len(data) % 4]


def option(code: int, value: bytes, endian: str = "=") -> bytes:
    return struct.pack(endian + "HH", code, len(value)) + pad(value)


def options(items: list[tuple[int, bytes]], endian: str = "=") -> bytes:
    """An option list with its end marker, or nothing when there are no options."""
    if not items:
        return b""
    return b"".join(option(c, v, endian) for c, v in items) + option(OPT_END, b"", endian)


def iter_options(raw: bytes, endian: str) -> Iterator[tuple[int, bytes]]:
    """``(code, value)`` of an option list, stopping at opt_endofopt or its end."""
    pos = 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack_from(endian + "HH", raw, pos)
        if code == OPT_END:
            return
        yield code, raw[pos + 4: pos + 4 + length]
        pos += 4 + length + pad_len(length)


def block(btype: int, body: bytes, endian: str = "=") -> bytes:
    """One block: ``body`` is padded and framed by the two total-length fields."""
    body = pad(body)
    total = 12 + len(body)
    return struct.pack(endian + "II", btype, total) + body + struct.pack(endian + "I", total)


def section_header(*, userappl: str = "", endian: str = "=") -> bytes:
    """Version 1.0, section length unknown (-1)."""
    opts = [(OPT_SHB_USERAPPL, userappl.encode())] if userappl else []
    return block(SHB, struct.pack(endian + "IHHq", BOM, 1, 0, -1) + options(opts, endian), endian)


def section_endian(first12: bytes) -> str | None:
    """The byte order a section header announces ("<" or ">"), or None if its magic is bad."""
    if len(first12) < 12:
        return None
    if first12[8:12] == BOM.to_bytes(4, "little"):
        return "<"
    if first12[8:12] == BOM.to_bytes(4, "big"):
        return ">"
    return None


@dataclass(frozen=True, slots=True)
class Interface:
    """One capture interface, as an Interface Description Block records it.

    ``tsresol`` is the raw ``if_tsresol`` byte (a power of 10, or of 2 with the
    high bit set); ``tsoffset_s`` is ``if_tsoffset``; ``fcslen`` is ``if_fcslen``
    when present.  A classic pcap file has one implicit interface.
    """

    name: str = ""
    linktype: int = 1
    snaplen: int = 0
    tsresol: int = DEFAULT_TSRESOL
    tsoffset_s: int = 0
    fcslen: int | None = None

    def to_ns(self, ts: np.ndarray) -> np.ndarray:
        """Timestamps in interface units (uint64) to integer ns since the epoch."""
        r = self.tsresol
        if r & 0x80:
            shift = r & 0x7F
            secs = (ts >> np.uint64(shift)).astype(np.int64)
            frac = ts & np.uint64((1 << shift) - 1)
            if shift <= 34:
                ns = ((frac * np.uint64(1_000_000_000)) >> np.uint64(shift)).astype(np.int64)
            else:  # rare; exact in Python integers
                ns = np.array([(int(f) * 1_000_000_000) >> shift for f in frac.tolist()],
                              dtype=np.int64)
            out = secs * 1_000_000_000 + ns
        elif r <= 9:
            out = ts.astype(np.int64) * (10 ** (9 - r))
        else:
            div = 10 ** r
            secs = (ts // np.uint64(div)).astype(np.int64)
            frac = (ts % np.uint64(div)).astype(np.int64)
            out = secs * 1_000_000_000 + frac // (10 ** (r - 9))
        if self.tsoffset_s:
            out = out + self.tsoffset_s * 1_000_000_000
        return out


def parse_idb(body: bytes, endian: str) -> Interface:
    """An Interface Description Block's body (after type and length, before the trailer)."""
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body, 0)
    name, tsresol, tsoffset_s, fcslen = "", DEFAULT_TSRESOL, 0, None
    for code, value in iter_options(body[8:], endian):
        if code == OPT_IF_NAME:
            name = value.rstrip(b"\x00").decode("utf-8", "replace")
        elif code == OPT_IF_TSRESOL and value:
            tsresol = value[0]
        elif code == OPT_IF_TSOFFSET and len(value) >= 8:
            tsoffset_s = struct.unpack_from(endian + "q", value)[0]
        elif code == OPT_IF_FCSLEN and value:
            fcslen = value[0]
    return Interface(name, linktype, snaplen, tsresol, tsoffset_s, fcslen)


def interface_block(iface: Interface, endian: str = "=") -> bytes:
    """The IDB for ``iface``; options only where they differ from the defaults."""
    opts: list[tuple[int, bytes]] = []
    if iface.name:
        opts.append((OPT_IF_NAME, iface.name.encode()))
    if iface.tsresol != DEFAULT_TSRESOL:
        opts.append((OPT_IF_TSRESOL, bytes([iface.tsresol])))
    if iface.fcslen is not None:
        opts.append((OPT_IF_FCSLEN, bytes([iface.fcslen])))
    if iface.tsoffset_s:
        opts.append((OPT_IF_TSOFFSET, struct.pack(endian + "q", iface.tsoffset_s)))
    body = struct.pack(endian + "HHI", iface.linktype, 0, iface.snaplen) + options(opts, endian)
    return block(IDB, body, endian)


def enhanced_packet(iface: int, ts_units: int, data: bytes, wirelen: int) -> bytes:
    """One EPB in this machine's byte order; ``ts_units`` in the interface's resolution.

    The live writer calls this once per packet: one precompiled struct, no
    intermediate body.
    """
    caplen = len(data)
    padn = -caplen % 4
    total = 32 + caplen + padn
    return (_EPB_NATIVE.pack(EPB, total, iface, (ts_units >> 32) & 0xFFFFFFFF,
                             ts_units & 0xFFFFFFFF, caplen, wirelen)
            + data + _PADDING[padn] + _U32_NATIVE.pack(total))


def enhanced_packet_size(caplen: int) -> int:
    return 32 + caplen + pad_len(caplen)


def packet_block(iface: int, ts_hi: int, ts_lo: int, data: bytes, wirelen: int,
                 endian: str = "=") -> bytes:
    """One EPB with the timestamp words given verbatim (redaction keeps them as read)."""
    head = struct.pack(endian + "IIIII", iface, ts_hi, ts_lo, len(data), wirelen)
    return block(EPB, head + data, endian)


def simple_packet(data: bytes, wirelen: int, endian: str = "=") -> bytes:
    return block(SPB, struct.pack(endian + "I", wirelen) + data, endian)
