"""Capture ingestion: pcap/pcapng (optionally gzipped), stdin, file objects and
rotated file lists into numpy batches of :data:`rstscope.schema.PACKET_DTYPE`.

``read_packets`` and ``batches_to_dataframe`` need pandas and are loaded on
first use, so importing this package stays numpy-only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rstscope.ingest.frame_decoder import FrameDecoder
from rstscope.ingest.reader import CaptureReader, open_capture
from rstscope.ingest.stats import FileStats, ReadStats

if TYPE_CHECKING:
    from rstscope.ingest.dataframe import batches_to_dataframe, read_packets

__all__ = [
    "CaptureReader",
    "FileStats",
    "FrameDecoder",
    "ReadStats",
    "batches_to_dataframe",
    "open_capture",
    "read_packets",
]


def __getattr__(name: str) -> Any:
    if name in ("read_packets", "batches_to_dataframe"):
        # lazy: pandas, only when a DataFrame is asked for
        from rstscope.ingest import dataframe

        return getattr(dataframe, name)
    raise AttributeError(f"module 'rstscope.ingest' has no attribute {name!r}")
