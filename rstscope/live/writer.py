"""Streaming pcap/pcapng writer with tcpdump-style rotation (-C, -W, -G).

Records are appended as they arrive; nothing is held beyond the file object's
buffer.  Rotation happens *between* packets: the old file is flushed and
closed before the new one is opened, and the packet that triggered the
rotation goes into the new file, so no packet is ever lost or split.

File naming follows tcpdump so scripts written for it keep working:

* ``-w F`` alone: one file ``F``.
* ``-C`` (size): ``F``, ``F1``, ``F2``, ...; with ``-W N`` a ring ``F0`` ..
  ``F{N-1}`` (zero padded), overwritten in turn.
* ``-G`` (seconds): ``F`` is a strftime pattern expanded (local time) when
  each file opens; with ``-C`` the size counter is appended; with ``-W N``
  capture stops after N files.  A name that repeats (a pattern without
  strftime codes) gets ``.1``, ``.2`` appended instead of overwriting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from rstscope.errors import OutputError, UsageError
from rstscope.ingest.record_table import RecordTable
from rstscope.live.encode import encode_block
from rstscope.wire import pcap, pcapng
from rstscope.wire.pcapng import Interface

__all__ = ["Format", "Interface", "RotatingWriter", "RotationPolicy", "Written", "parse_size"]

Format = Literal["pcapng", "pcap"]

# Files carry nanosecond timestamps: pcap with the "modified" nanosecond magic,
# pcapng interfaces with if_tsresol 9 (10^-9 s).
_TSRESOL_NS = 9

_PCAP_REC = pcap.RECORD_NATIVE

# One size parser for every command (tcpdump's meaning), re-exported here for -C.
from rstscope.cliopts import parse_size as parse_size  # noqa: E402


@dataclass(frozen=True, slots=True)
class RotationPolicy:
    """When to start a new file: by size, by time, and how many files."""

    file_size_bytes: int | None = None  # -C
    ring_files: int | None = None  # -W
    rotate_s: float | None = None  # -G

    def __post_init__(self) -> None:
        if self.ring_files is not None and self.ring_files < 1:
            raise UsageError("-W must be at least 1")
        if self.ring_files is not None and self.file_size_bytes is None and self.rotate_s is None:
            raise UsageError("-W needs -C or -G")
        if self.rotate_s is not None and self.rotate_s <= 0:
            raise UsageError("-G must be positive")


@dataclass(frozen=True, slots=True)
class Written:
    """Where one packet went: index of the file in :attr:`RotatingWriter.paths`, 1-based frame."""

    file_id: int
    frame: int


class _File:
    """One open output file of either format."""

    def __init__(self, path: Path, fmt: Format, interfaces: Sequence[Interface]) -> None:
        self.path = path
        self.fmt = fmt
        self.frames = 0
        # The header first: a bad interface list must not leave an empty file (or an
        # open handle) behind.
        header = self._header(interfaces)
        try:
            fh: BinaryIO = open(path, "wb", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
        self.fh = fh
        self.size = len(header)
        try:
            self._write(header)
        except OutputError:
            fh.close()
            raise

    def _header(self, interfaces: Sequence[Interface]) -> bytes:
        if self.fmt == "pcap":
            if len({i.linktype for i in interfaces}) != 1:
                raise UsageError("pcap files hold one link type; use --format pcapng")
            snaplen = max(i.snaplen for i in interfaces)
            return pcap.file_header(interfaces[0].linktype, snaplen, nanos=True)
        out = pcapng.section_header(userappl="rstscope")
        for iface in interfaces:
            out += pcapng.interface_block(replace(iface, tsresol=_TSRESOL_NS))
        return out

    def record_size(self, caplen: int) -> int:
        if self.fmt == "pcap":
            return pcap.RECORD_HEADER_LEN + caplen
        return pcapng.enhanced_packet_size(caplen)

    def write(self, ts_ns: int, iface: int, data: bytes, wirelen: int) -> None:
        # Hot path (once per packet): precompiled structs, no intermediate concatenation.
        caplen = len(data)
        try:
            if self.fmt == "pcap":
                sec, nsec = divmod(ts_ns, 1_000_000_000)
                self.fh.write(_PCAP_REC.pack(sec, nsec, caplen, wirelen) + data)
                self.size += pcap.RECORD_HEADER_LEN + caplen
            else:
                block = pcapng.enhanced_packet(iface, ts_ns, data, wirelen)
                self.fh.write(block)
                self.size += len(block)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc
        self.frames += 1

    def write_encoded(self, data: np.ndarray, count: int) -> None:
        """Append ``count`` records already encoded for this file's format."""
        try:
            self.fh.write(memoryview(data))  # type: ignore[arg-type]
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc
        self.size += int(data.size)
        self.frames += count

    def _write(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        try:
            self.fh.close()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from exc


class RotatingWriter:
    """Append packets to ``pattern``-named files, rotating per :class:`RotationPolicy`.

    Files are opened lazily-but-eagerly: the first one in the constructor (so an
    unwritable path fails before capture starts), later ones on rotation.  The
    caller must construct it *after* dropping privileges so files belong to the
    invoking user.
    """

    def __init__(
        self,
        pattern: str | os.PathLike[str],
        *,
        interfaces: Sequence[Interface],
        fmt: Format = "pcapng",
        policy: RotationPolicy | None = None,
    ) -> None:
        if not interfaces:
            raise UsageError("a capture file needs at least one interface")
        self.pattern = os.fspath(pattern)
        self.fmt: Format = fmt
        self.interfaces = tuple(interfaces)
        self.policy = policy or RotationPolicy()
        self.paths: list[Path] = []  # every file opened, in order (a ring reuses names)
        self.packets = 0
        self.exhausted = False  # -G with -W: the file budget is used up; stop capturing
        self._size_count = 0  # -C counter within the current -G period
        self._period_start_s = time.time()
        self._used_names: set[str] = set()
        self._file: _File | None = None
        self._open(self._period_start_s)

    @property
    def current(self) -> Path | None:
        return self._file.path if self._file else None

    def _name(self, period_start_s: float) -> str:
        pol = self.policy
        base = self.pattern
        if pol.rotate_s is not None:
            base = time.strftime(self.pattern, time.localtime(period_start_s))
        if pol.file_size_bytes is not None:
            if pol.ring_files is not None and pol.rotate_s is None:
                width = len(str(pol.ring_files - 1))
                base += str(self._size_count % pol.ring_files).zfill(width)
            elif self._size_count:
                base += str(self._size_count)
        if pol.rotate_s is not None and base in self._used_names:
            # A -G pattern without strftime codes would overwrite itself; keep every packet.
            n = 1
            while f"{base}.{n}" in self._used_names:
                n += 1
            base = f"{base}.{n}"
        return base

    def _open(self, period_start_s: float) -> None:
        name = self._name(period_start_s)
        path = Path(name)
        self._file = _File(path, self.fmt, self.interfaces)
        self._used_names.add(name)
        self.paths.append(path)

    def _rotate(self, *, new_period_s: float | None) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        pol = self.policy
        if new_period_s is not None:
            if pol.ring_files is not None and len(self.paths) >= pol.ring_files:
                self.exhausted = True
                return
            self._period_start_s = new_period_s
            self._size_count = 0
        else:
            self._size_count += 1
        self._open(self._period_start_s)

    def tick(self, now_s: float | None = None) -> None:
        """Flush, and rotate by time (-G) even when no packets arrive."""
        now = time.time() if now_s is None else now_s
        pol = self.policy
        if (pol.rotate_s is not None and self._file is not None
                and now - self._period_start_s >= pol.rotate_s):
            # Periods stay aligned to the first file's start, like tcpdump's.
            periods = int((now - self._period_start_s) // pol.rotate_s)
            self._rotate(new_period_s=self._period_start_s + periods * pol.rotate_s)
        if self._file is not None:
            self._file.flush()

    def write(self, ts_ns: int, iface: int, data: bytes, wirelen: int) -> Written | None:
        """Append one packet; returns where it went, or None once exhausted."""
        if self._file is None:
            return None
        pol = self.policy
        if pol.rotate_s is not None and ts_ns / 1e9 - self._period_start_s >= pol.rotate_s:
            self.tick(ts_ns / 1e9)
            if self._file is None:
                return None
        if (pol.file_size_bytes is not None and self._file.frames
                and self._file.size + self._file.record_size(len(data)) > pol.file_size_bytes):
            self._rotate(new_period_s=None)
        assert self._file is not None
        self._file.write(ts_ns, iface, data, wirelen)
        self.packets += 1
        return Written(file_id=len(self.paths) - 1, frame=self._file.frames)

    def write_block(self, buf: np.ndarray,
                    rec: RecordTable) -> tuple[np.ndarray, np.ndarray, int]:
        """Append a block of frames: ``(file_id, frame, written)``.

        ``file_id[i]``/``frame[i]`` say where frame ``i`` went (as :meth:`write`
        does per packet); ``written`` is less than ``len(rec)`` only once the
        -G/-W budget is used up.  Rotation points are exactly those of
        :meth:`write`: the block is encoded once and cut between records.
        """
        n = len(rec)
        file_ids = np.zeros(n, dtype=np.int64)
        frames = np.zeros(n, dtype=np.int64)
        if not n or self._file is None:
            return file_ids, frames, 0
        data, sizes = encode_block(buf, rec, self.fmt)
        starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(sizes, out=starts[1:])
        ts_ns = rec.ts_ns
        pol = self.policy
        i = 0
        while i < n and self._file is not None:
            j = n
            if pol.rotate_s is not None:
                over = np.flatnonzero(ts_ns[i:] / 1e9 - self._period_start_s >= pol.rotate_s)
                if over.size:
                    if over[0] == 0:
                        self.tick(int(ts_ns[i]) / 1e9)
                        continue
                    j = i + int(over[0])
            if pol.file_size_bytes is not None:
                room = pol.file_size_bytes - self._file.size
                fit = int(np.searchsorted(starts[i + 1:j + 1] - starts[i], room, side="right"))
                if fit == 0:
                    if self._file.frames:
                        self._rotate(new_period_s=None)
                        continue
                    fit = 1  # a record larger than -C still goes in (alone), as in write()
                j = i + fit
            first = self._file.frames + 1
            self._file.write_encoded(data[starts[i]:starts[j]], j - i)
            file_ids[i:j] = len(self.paths) - 1
            frames[i:j] = np.arange(first, first + (j - i))
            self.packets += j - i
            i = j
        return file_ids, frames, i

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RotatingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
