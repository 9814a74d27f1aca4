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

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, Final

from rstscope.errors import CaptureError, OutputError
from rstscope.wire import pcap, pcapng
from rstscope.wire.pcapng import Interface

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

    def __init__(self, fh: Any) -> None:
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


class RawReader:
    """Iterate :class:`Frame` objects of one pcap or pcapng stream."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._src = _Source(fh)
        self.stats = ContainerStats()
        head = self._src.read(4)
        if len(head) < 4:
            raise CaptureError(self._src.error or "empty or too short to be a capture")
        if head in pcap.MAGICS:
            self.stats.fmt = "pcap"
            rest = self._src.read(pcap.HEADER_LEN - 4)
            hdr = pcap.parse_header(head + rest)
            if hdr is None:
                raise CaptureError("pcap file header is truncated")
            self.pcap_header = head + rest
            self.endian = hdr.endian
            self.snaplen = hdr.snaplen
            self.linktype = hdr.linktype
        elif head == pcapng.SHB_BYTES:
            self.stats.fmt = "pcapng"
            self._first = head
        else:
            raise CaptureError(f"not a pcap or pcapng capture (magic {head.hex()})")

    def __iter__(self) -> Iterator[Frame | SectionStart | Interface]:
        if self.stats.fmt == "pcap":
            yield from self._pcap()
        else:
            yield from self._pcapng()
        if self._src.error:
            self.stats.warnings.append(self._src.error)

    # -- classic pcap --------------------------------------------------------
    def _pcap(self) -> Iterator[Frame | SectionStart | Interface]:
        rec = pcap.record_struct(self.endian)
        # The header's snaplen is untrusted too: never read more than 16 MiB for one record.
        limit = max(MAX_RECORD, min(self.snaplen, 16 << 20))
        while True:
            hdr = self._src.read(pcap.RECORD_HEADER_LEN)
            if not hdr:
                return
            if len(hdr) < pcap.RECORD_HEADER_LEN:
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
    def _pcapng(self) -> Iterator[Frame | SectionStart | Interface]:
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
            if head == pcapng.SHB_BYTES:
                lenbom = self._src.read(8)
                if len(lenbom) < 8:
                    self.stats.warnings.append("truncated section header block")
                    return
                section = pcapng.section_endian(head + lenbom)
                if section is not None:
                    endian = section
                else:
                    if self.stats.frames == 0:
                        raise CaptureError("pcapng section header has no valid byte-order magic")
                    self.stats.warnings.append("corrupt section header; stopped there")
                    return
                (total,) = struct.unpack(endian + "I", lenbom[:4])
                if total < pcapng.MIN_SHB_LEN or total % 4 or total > pcapng.MAX_BLOCK:
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
            if total < 12 or total % 4 or total > pcapng.MAX_BLOCK:
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
    ) -> Frame | Interface | None:
        if btype == pcapng.IDB:
            iface = pcapng.parse_idb(body, e)
            ifaces.append((iface.linktype, iface.snaplen))
            # Only timing and framing survive (if_tsresol, if_tsoffset, if_fcslen):
            # the name and every free-text option can identify the site.
            return replace(iface, name="")
        if btype == pcapng.EPB:
            iface_id, ts_hi, ts_lo, caplen, orig = struct.unpack_from(e + "IIIII", body, 0)
            return self._frame(ifaces, iface_id, body[20 : 20 + caplen], orig, (ts_hi, ts_lo),
                               caplen)
        if btype == pcapng.PB_OBSOLETE:
            iface_id, _, ts_hi, ts_lo, caplen, orig = struct.unpack_from(e + "HHIIII", body, 0)
            return self._frame(ifaces, iface_id, body[20 : 20 + caplen], orig, (ts_hi, ts_lo),
                               caplen)
        if btype == pcapng.SPB:
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
        # No options: shb_hardware, shb_os and shb_userappl describe the capturing machine.
        self._write(pcapng.section_header(endian="<"))

    def interface(self, iface: Interface) -> None:
        self._write(pcapng.interface_block(iface, endian="<"))

    def frame(self, fr: Frame) -> None:
        if self.fmt == "pcap":
            self._write(pcap.record_header(*fr.ts_raw, len(fr.data), fr.wirelen,
                                           endian=self._endian))
            self._write(fr.data)
        elif fr.fixed_length:
            self._write(pcapng.simple_packet(fr.data, fr.wirelen, endian="<"))
        else:
            self._write(pcapng.packet_block(fr.iface, *fr.ts_raw, fr.data, fr.wirelen,
                                            endian="<"))
