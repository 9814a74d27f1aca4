"""A block of captured frames: one buffer plus a record table, handed over whole.

Both live sources produce these: the TPACKET_V3 ring hands over each retired
ring block as a view of the mapped ring (no copy), the recvmsg fallback joins
the frames it read into one buffer.  The writer encodes a block with a few
numpy passes and :class:`rstscope.ingest.FrameDecoder` decodes it the same
way, so nothing downstream does Python work per packet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rstscope.ingest.frame_decoder import join_frames
from rstscope.ingest.record_table import RecordTable

_FIELDS = ("off", "caplen", "wirelen", "ts_ns", "linktype", "iface")


@dataclass(frozen=True, slots=True)
class FrameBlock:
    """``rec`` indexes ``buf``; ``buf`` may be ring memory valid only until released."""

    buf: np.ndarray  # uint8
    rec: RecordTable

    def __len__(self) -> int:
        return len(self.rec)

    def head(self, n: int) -> FrameBlock:
        """The first ``n`` frames (``-c`` and the -G/-W file budget stop mid-block)."""
        if n >= len(self.rec):
            return self
        return FrameBlock(self.buf, RecordTable(*(getattr(self.rec, f)[:n] for f in _FIELDS)))


def frames_to_block(frames: list[tuple[int, int, bytes, int, int]]) -> FrameBlock:
    """Join ``(ts_ns, linktype, data, wirelen, iface)`` tuples into one block."""
    return FrameBlock(*join_frames(frames))
