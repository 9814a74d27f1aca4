"""Raw frame I/O for redaction: read pcap/pcapng records and write them back.

The ingestion readers decode frames into header records; redaction needs the
opposite: the raw frame bytes, their container metadata (timestamps verbatim,
interface, wire length) and a writer for the same container format.  Only the
blocks needed to carry packets survive; every other pcapng block (name
resolution, decryption secrets, custom, statistics) and every free-text
option (comments, interface names, OS, hardware, capture filters) is dropped
because any of them can identify the site.

Streaming: one record in memory at a time, whatever the file size.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Final, cast

from rstscope.errors import CaptureError, InputMissingError, OutputError

PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", False),  # µs, little-endian
    b"\xa1\xb2\xc3\xd4": (">", False),  # µs, big-endian
    b"\x4d\x3c\xb2\xa1": ("<", True),  # ns, little-endian
    b"\xa1\xb2\x3c\x4d": (">", True),  # ns, big-endian
}
SHB_TYPE: Final = 0x0A0D0D0A
BOM: Final = 0x1A2B3C4D
IDB_TYPE: Final = 1
OPB_TYPE: Final = 2  # obsolete packet block
SPB_TYPE: Final = 3
EPB_TYPE: Final = 6
# IDB options kept: if_tsresol (9), if_fcslen (13), if_tsoffset (14).  They
# carry timing/framing only; names, descriptions, addresses, filters do not survive.
KEPT_IDB_OPTIONS: Final = frozenset({9, 13, 14})
MAX_BLOCK: Final = 64 << 20  # larger than any real packet block: a corrupt length
MAX_RECORD: Final = 1 << 20  # classic pcap: no link type has frames of a MiB


@dataclass(slots=True)
class Frame:
    """One captured frame with its container metadata.  ``data`` may be rewritten."""

    linktype: int
    data: bytes
    wirelen: int
    ts_raw: tuple[int, int]  # pcap (sec, frac) or pcapng (ts_high, ts_low), verbatim
    iface: int = 0
    fixed_length: bool = False  # pcapng SPB: no caplen field, the length must not change


@dataclass(slots=True)
class ContainerStats:
    """What the raw reader saw; every dropped block and stop is counted."""

    fmt: str = ""
    frames: int = 0
    dropped_blocks: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _Source:
    """Exact reads from a (possibly gzipped) byte stream."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self.error: str | None = None

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end (or where a compressed stream breaks)."""
        chunks = []
        need = n
        while need > 0 and self.error is None:
            try:
                b = self._fh.read(need)
            except (OSError, EOFError, zlib.error) as exc:
                # A corrupt or cut gzip stream ends the input like EOF, with a warning.
                self.error = f"compressed stream is corrupt or cut short ({exc})"
                break
            if not b:
                break
            chunks.append(b)
            need -= len(b)
        return b"".join(chunks)


def open_input(source: str | os.PathLike[str] | IO[bytes]) -> tuple[IO[bytes], bool]:
    """Open ``source`` for binary reading, unwrapping gzip by magic.  Returns (stream, owned)."""
    if isinstance(source, (str, os.PathLike)):
        try:
            fh: IO[bytes] = open(source, "rb")  # noqa: SIM115 - closed by the caller
        except FileNotFoundError as exc:
            raise InputMissingError(f"{os.fspath(source)}: no such file") from exc
        except OSError as exc:
            raise InputMissingError(f"{os.fspath(source)}: cannot open: {exc.strerror}") from exc
        owned = True
    else:
        fh, owned = source, False
    buffered: Any = fh if hasattr(fh, "peek") else io.BufferedReader(fh)  # type: ignore[arg-type,type-var]
    head = buffered.peek(2)[:2]
    if head == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb")), True
    return buffered, owned


class RawReader:
    """Iterate :class:`Frame` objects of one pcap or pcapng stream."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._src = _Source(fh)
        self.stats = ContainerStats()
        head = self._src.read(4)
        if len(head) < 4:
            raise CaptureError(self._src.error or "empty or too short to be a capture")
        if head in PCAP_MAGICS:
            self.stats.fmt = "pcap"
            self.endian, self.nanos = PCAP_MAGICS[head]
            rest = self._src.read(20)
            if len(rest) < 20:
                raise CaptureError("pcap file header is truncated")
            self.pcap_header = head + rest
            _, _, _, _, self.snaplen, network = struct.unpack(self.endian + "HHiIII", rest)
            self.linktype = network & 0xFFFF
        elif int.from_bytes(head, "little") == SHB_TYPE:
            self.stats.fmt = "pcapng"
            self._first = head
        else:
            raise CaptureError(f"not a pcap or pcapng capture (magic {head.hex()})")

    def __iter__(self) -> Iterator[Frame | SectionStart | InterfaceDesc]:
        if self.stats.fmt == "pcap":
            yield from self._pcap()
        else:
            yield from self._pcapng()
        if self._src.error:
            self.stats.warnings.append(self._src.error)

    # -- classic pcap --------------------------------------------------------
    def _pcap(self) -> Iterator[Frame | SectionStart | InterfaceDesc]:
        rec = struct.Struct(self.endian + "IIII")
        # The header's snaplen is untrusted too: never read more than 16 MiB for one record.
        limit = max(MAX_RECORD, min(self.snaplen, 16 << 20))
        while True:
            hdr = self._src.read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                self.stats.warnings.append(f"truncated record header after frame {self.stats.frames}")
                return
            sec, frac, incl, orig = rec.unpack(hdr)
            if incl > limit:
                self.stats.warnings.append(
                    f"corrupt record length {incl} after frame {self.stats.frames}; stopped there"
                )
                return
            data = self._src.read(incl)
            if len(data) < incl:
                self.stats.warnings.append(f"truncated last record (frame {self.stats.frames + 1})")
                return
            self.stats.frames += 1
            yield Frame(self.linktype, data, orig, (sec, frac))

    # -- pcapng --------------------------------------------------------------
    def _pcapng(self) -> Iterator[Frame | SectionStart | InterfaceDesc]:
        pending: bytes | None = self._first
        endian = "<"
        ifaces: list[tuple[int, int]] = []  # (linktype, snaplen) per interface in the section
        while True:
            head = pending if pending is not None else self._src.read(4)
            pending = None
            if not head:
                return
            if len(head) < 4:
                self.stats.warnings.append("trailing bytes after the last block")
                return
            if int.from_bytes(head, "little") == SHB_TYPE:
                lenbom = self._src.read(8)
                if len(lenbom) < 8:
                    self.stats.warnings.append("truncated section header block")
                    return
                if lenbom[4:8] == BOM.to_bytes(4, "little"):
                    endian = "<"
                elif lenbom[4:8] == BOM.to_bytes(4, "big"):
                    endian = ">"
                else:
                    if self.stats.frames == 0:
                        raise CaptureError("pcapng section header has no valid byte-order magic")
                    self.stats.warnings.append("corrupt section header; stopped there")
                    return
                (total,) = struct.unpack(endian + "I", lenbom[:4])
                if total < 28 or total % 4 or total > MAX_BLOCK:
                    if self.stats.frames == 0:
                        raise CaptureError(f"pcapng section header has a bad length {total}")
                    self.stats.warnings.append(f"corrupt section header length {total}; stopped")
                    return
                body = self._src.read(total - 12)
                if len(body) < total - 12:
                    self.stats.warnings.append("truncated section header block")
                    return
                ifaces = []
                yield SectionStart()
                continue
            (btype,) = struct.unpack(endian + "I", head)
            raw_len = self._src.read(4)
            if len(raw_len) < 4:
                self.stats.warnings.append("truncated block header at end of file")
                return
            (total,) = struct.unpack(endian + "I", raw_len)
            if total < 12 or total % 4 or total > MAX_BLOCK:
                self.stats.warnings.append(
                    f"corrupt block length {total} after frame {self.stats.frames}; stopped there"
                )
                return
            body = self._src.read(total - 8)
            if len(body) < total - 8:
                self.stats.warnings.append(f"truncated last block (after frame {self.stats.frames})")
                return
            body = body[:-4]
            try:
                item = self._block(btype, body, endian, ifaces)
            except (struct.error, IndexError):
                self.stats.warnings.append(f"malformed block of type {btype} skipped")
                continue
            if item is not None:
                yield item

    def _block(
        self, btype: int, body: bytes, e: str, ifaces: list[tuple[int, int]]
    ) -> Frame | InterfaceDesc | None:
        if btype == IDB_TYPE:
            linktype, _, snaplen = struct.unpack_from(e + "HHI", body, 0)
            ifaces.append((linktype, snaplen))
            return InterfaceDesc(linktype, snaplen, _kept_options(body[8:], e))
        if btype == EPB_TYPE:
            iface, ts_hi, ts_lo, caplen, orig = struct.unpack_from(e + "IIIII", body, 0)
            return self._frame(ifaces, iface, body[20 : 20 + caplen], orig, (ts_hi, ts_lo), caplen)
        if btype == OPB_TYPE:
            iface, _, ts_hi, ts_lo, caplen, orig = struct.unpack_from(e + "HHIIII", body, 0)
            return self._frame(ifaces, iface, body[20 : 20 + caplen], orig, (ts_hi, ts_lo), caplen)
        if btype == SPB_TYPE:
            (orig,) = struct.unpack_from(e + "I", body, 0)
            snap = ifaces[0][1] if ifaces and ifaces[0][1] else orig
            caplen = min(orig, snap, len(body) - 4)
            frame = self._frame(ifaces, 0, body[4 : 4 + caplen], orig, (0, 0), caplen)
            if frame is not None:
                frame.fixed_length = True
            return frame
        name = f"pcapng-block-0x{btype:08x}"
        self.stats.dropped_blocks[name] = self.stats.dropped_blocks.get(name, 0) + 1
        return None

    def _frame(
        self,
        ifaces: list[tuple[int, int]],
        iface: int,
        data: bytes,
        orig: int,
        ts: tuple[int, int],
        caplen: int,
    ) -> Frame | None:
        if iface >= len(ifaces) or len(data) < caplen:
            self.stats.warnings.append(
                f"packet block with bad interface {iface} or length {caplen} dropped"
            )
            return None
        self.stats.frames += 1
        return Frame(ifaces[iface][0], data, orig, ts, iface)


@dataclass(frozen=True, slots=True)
class SectionStart:
    """A pcapng section header: interface numbering restarts."""


@dataclass(frozen=True, slots=True)
class InterfaceDesc:
    """A pcapng interface: link type, snaplen and the timing options kept verbatim."""

    linktype: int
    snaplen: int
    options: tuple[tuple[int, bytes], ...]


def _kept_options(raw: bytes, e: str) -> tuple[tuple[int, bytes], ...]:
    out = []
    pos = 0
    while pos + 4 <= len(raw):
        code, length = struct.unpack_from(e + "HH", raw, pos)
        if code == 0:
            break
        value = raw[pos + 4 : pos + 4 + length]
        if code in KEPT_IDB_OPTIONS:
            if code == 14 and len(value) == 8:
                # if_tsoffset is a 64-bit integer in the section's byte order; re-encode.
                value = struct.pack("<q", struct.unpack(e + "q", value)[0])
            out.append((code, value))
        pos += 4 + length + (-length % 4)
    return tuple(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


class RawWriter:
    """Write frames in the input's container format (pcapng always little-endian)."""

    def __init__(self, fh: IO[bytes], reader: RawReader) -> None:
        self._fh = fh
        self.fmt = reader.stats.fmt
        self._endian = getattr(reader, "endian", "<")
        if self.fmt == "pcap":
            self._write(reader.pcap_header)

    def _write(self, b: bytes) -> None:
        try:
            self._fh.write(b)
        except OSError as exc:
            raise OutputError(f"cannot write the redacted capture: {exc.strerror or exc}") from exc

    def section(self) -> None:
        # Version 1.0, section length unknown (-1), no options: shb_hardware,
        # shb_os and shb_userappl describe the capturing machine.
        body = struct.pack("<IHHq", BOM, 1, 0, -1)
        self._block(SHB_TYPE, body)

    def interface(self, desc: InterfaceDesc) -> None:
        opts = b"".join(
            struct.pack("<HH", code, len(v)) + _pad4(v) for code, v in desc.options
        )
        if opts:
            opts += b"\x00\x00\x00\x00"
        self._block(IDB_TYPE, struct.pack("<HHI", desc.linktype, 0, desc.snaplen) + opts)

    def frame(self, fr: Frame) -> None:
        if self.fmt == "pcap":
            self._write(struct.pack(self._endian + "IIII", *fr.ts_raw, len(fr.data), fr.wirelen))
            self._write(fr.data)
        elif fr.fixed_length:
            self._block(SPB_TYPE, struct.pack("<I", fr.wirelen) + _pad4(fr.data))
        else:
            head = struct.pack("<IIIII", fr.iface, *fr.ts_raw, len(fr.data), fr.wirelen)
            self._block(EPB_TYPE, head + _pad4(fr.data))

    def _block(self, btype: int, body: bytes) -> None:
        total = len(body) + 12
        self._write(struct.pack("<II", btype, total) + body + struct.pack("<I", total))
