"""``FrameDecoder``: decode frames handed over one by one (live capture, tests).

Live capture code gets ``(ts_ns, linktype, data, wirelen, iface)`` per frame
from its capture library and hands a list of them over; the decoding rules
and statistics are exactly those of the file readers.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from rstscope.ingest.decode import decode_records
from rstscope.ingest.record_table import RecordTable
from rstscope.ingest.stats import FileStats, ReadStats
from rstscope.schema import empty_batch
from rstscope.wire.linktypes import SUPPORTED_LINKTYPES

Frame = tuple[int, int, bytes, int, int]


class FrameDecoder:
    """Stateful decoder: frame numbers continue across :meth:`decode` calls."""

    def __init__(self, name: str = "<live>", file_id: int = 0) -> None:
        self.stats = ReadStats()
        self._fs = FileStats(name=name, file_id=file_id, format="frames")
        self.stats.files.append(self._fs)
        self._file_id = file_id
        self._next_frame = 1
        self._warned: set[int] = set()

    def decode(self, frames: Iterable[Frame]) -> np.ndarray:
        """One PACKET_DTYPE batch for these frames (TCP segments only, in order)."""
        items = list(frames)
        if not items:
            return empty_batch(0)
        buf, rec = join_frames(items)
        return self.decode_block(buf, rec)

    def decode_block(self, buf: np.ndarray, rec: RecordTable) -> np.ndarray:
        """Like :meth:`decode`, for frames already laid out in one buffer (a capture ring
        block): no per-frame Python work.  The batch is a copy; ``buf`` may be reused."""
        n = len(rec)
        if not n:
            return empty_batch(0)
        dec = decode_records(buf, rec, frame0=self._next_frame, file_id=self._file_id)
        self._next_frame += n
        self.stats.add_frames(self._fs, n, len(dec.batch), dec.rst, dec.non_tcp,
                              dec.linktypes)
        for lt in dec.linktypes:
            if lt not in SUPPORTED_LINKTYPES and lt not in self._warned:
                self._warned.add(lt)
                self.stats.warn(self._fs, f"link type {lt} is not supported; its frames are "
                                          "counted, not decoded")
        return dec.batch


def join_frames(items: list[Frame]) -> tuple[np.ndarray, RecordTable]:
    """Frames handed over one by one, laid out in one buffer with their record table."""
    n = len(items)
    lens = np.fromiter((len(f[2]) for f in items), dtype=np.int64, count=n)
    off = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(lens[:-1], out=off[1:])
    buf = np.frombuffer(b"".join(bytes(f[2]) for f in items), dtype=np.uint8)
    rec = RecordTable(
        off=off,
        caplen=lens,
        wirelen=np.fromiter((f[3] for f in items), dtype=np.int64, count=n),
        ts_ns=np.fromiter((f[0] for f in items), dtype=np.int64, count=n),
        linktype=np.fromiter((f[1] for f in items), dtype=np.int64, count=n),
        iface=np.fromiter((f[4] for f in items), dtype=np.int64, count=n),
    )
    return buf, rec
