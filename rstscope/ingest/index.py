"""A sparse packet index, recorded during the analysis pass, so that reading the
packets of a few flows later seeks to the batches that hold them instead of
walking and decoding the whole capture again.

One :class:`Span` per decoded batch: where its first record starts in the file,
how many records the walk took (so a replay walks exactly the same records),
the frame number of the first one, the container state at that point (pcap
header fields, pcapng section byte order and interface table), the batch's time
range and a 65,536-bit set of ``sport ^ dport`` over its TCP segments.  That is
about 8 KiB per 16,384 packets (0.5 MB per million), whatever the number of
flows.  The port set is symmetric in direction and may answer "maybe" for a
batch that holds none of the wanted flows (another flow with the same port
XOR); that only costs a batch decoded for nothing, because the caller filters
the rows exactly as a full pass would.  It never answers "no" for a batch that
holds one, so a replay returns the same rows as a full pass.

Only captures read through ``mmap`` (regular files) are indexed: streams
(stdin, gzip) cannot seek, and their index is marked incomplete.
"""

from __future__ import annotations

import contextlib
import copy
import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rstscope.ingest.decode import decode_records
from rstscope.ingest.source import Source, open_window

PORT_SET_BYTES = 65536 // 8


def port_set(sport: np.ndarray, dport: np.ndarray) -> np.ndarray:
    """The packed 65,536-bit set of ``sport ^ dport`` (direction-symmetric)."""
    bits = np.zeros(65536, dtype=np.bool_)
    bits[np.bitwise_xor(sport, dport)] = True
    return np.packbits(bits)


def port_key(a: int, b: int) -> int:
    """The bit a flow with ports ``a`` and ``b`` sets in :func:`port_set`."""
    return (int(a) ^ int(b)) & 0xFFFF


@dataclass(frozen=True, slots=True)
class Span:
    """One batch of the analysis pass: enough to decode it again on its own."""

    file_id: int
    offset: int  # byte offset of the batch's first record
    maxn: int  # the walk's record budget (a replay asks for the same)
    frame0: int  # frame number of that record in its file
    fmt: Any  # container state before the walk (PcapFormat / PcapngFormat copy)
    ts_lo_ns: int  # time range of the batch's TCP segments
    ts_hi_ns: int
    ports: np.ndarray  # port_set() of the batch's TCP segments

    def may_hold(self, keys: np.ndarray, t_lo_ns: int, t_hi_ns: int) -> bool:
        if self.ts_hi_ns < t_lo_ns or self.ts_lo_ns > t_hi_ns:
            return False
        return bool(((self.ports[keys >> 3] >> (7 - (keys & 7))) & 1).any())


@dataclass(slots=True)
class PacketIndex:
    """The spans of one analysis pass, in file order."""

    spans: list[Span] = field(default_factory=list)
    complete: bool = True  # False when some input could not be indexed (a stream)
    _last_fmt: Any = None
    _last_state: tuple[object, ...] | None = None

    def snapshot(self, fmt: Any) -> Any:
        """A copy of the container state, shared between spans while it does not change."""
        ifaces = getattr(fmt, "ifaces", None)
        state = (id(fmt), getattr(fmt, "endian", None), getattr(fmt, "sections", None),
                 None if ifaces is None else len(ifaces))
        if state != self._last_state:
            snap = copy.copy(fmt)
            if ifaces is not None:
                snap.ifaces = list(ifaces)
                snap.warnings = []
            self._last_fmt, self._last_state = snap, state
        return self._last_fmt

    def add(self, file_id: int, offset: int, maxn: int, frame0: int, snap: Any,
            batch: np.ndarray) -> None:
        """Record a decoded batch; ``snap`` is :meth:`snapshot` taken before its walk."""
        ts = batch["ts_ns"]
        self.spans.append(Span(file_id, offset, maxn, frame0, snap,
                               int(ts.min()), int(ts.max()),
                               port_set(batch["sport"], batch["dport"])))

    def select(self, port_pairs: Sequence[tuple[int, int]], t_lo_ns: int, t_hi_ns: int
               ) -> list[Span]:
        """Spans that may hold packets of flows with these port pairs in [t_lo, t_hi]."""
        keys = np.unique(np.asarray([port_key(a, b) for a, b in port_pairs], dtype=np.int64))
        return [s for s in self.spans if s.may_hold(keys, t_lo_ns, t_hi_ns)]

    @property
    def nbytes(self) -> int:
        return len(self.spans) * (PORT_SET_BYTES + 64)


def _release(w: Any, lo: int, hi: int) -> None:
    """Unmap the pages of a decoded span: mapped file pages count in RSS (a report's
    16 spans of 14 MB kept 220 MB resident before this)."""
    mm = w._mm
    lo -= lo % mmap.PAGESIZE
    if mm is not None and hasattr(mm, "madvise") and hi > lo:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def read_spans(sources: Sequence[Source], spans: Sequence[Span]) -> Iterator[np.ndarray]:
    """Decode the batches of ``spans`` again, seeking to each (file order).

    Each batch equals the one the analysis pass decoded at that place: the same
    records (same start, same walk budget, same container state) decoded with the
    same frame numbers.
    """
    by_file: dict[int, list[Span]] = {}
    for s in spans:
        by_file.setdefault(s.file_id, []).append(s)
    for file_id in sorted(by_file):
        src = sources[file_id]
        if not isinstance(src, (str, os.PathLike)):
            raise ValueError("indexed reads need files on disk")
        w = open_window(src)
        try:
            if w._mm is None:
                raise ValueError(f"{w.name}: not a regular file; cannot seek")
            for s in sorted(by_file[file_id], key=lambda sp: sp.offset):
                fmt = copy.copy(s.fmt)  # the walk may update its state (IDBs, last time)
                if hasattr(fmt, "ifaces"):
                    fmt.ifaces = list(fmt.ifaces)
                    fmt.warnings = []
                w.start = s.offset
                res = fmt.walk(w, s.maxn)
                if len(res.rec):
                    dec = decode_records(w.buf, res.rec, frame0=s.frame0, file_id=file_id)
                    _release(w, s.offset, res.pos)
                    if len(dec.batch):
                        yield dec.batch
        finally:
            w.close()
