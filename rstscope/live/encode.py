"""pcap and pcapng records for a whole block of frames, built with numpy.

The per-packet writer (``_File.write``) packs a header and joins bytes for
every packet, about a microsecond each in Python: at a few hundred thousand
packets per second that alone loses packets.  Here a block becomes one byte
array in a handful of array passes: every frame is gathered into a row wide
enough for the block's longest frame, its record header is written in front
and, for pcapng, its padding and trailing length after it; a mask then keeps
each row's own bytes, in row order, which is the file's byte stream.

The bytes are the same as the per-packet writer's (a test compares them).
"""

from __future__ import annotations

import numpy as np

from rstscope.ingest._bytes import gather
from rstscope.ingest.records import RecordTable

_EPB = 0x00000006  # pcapng Enhanced Packet Block
_PCAP_HDR = 16  # ts_sec, ts_nsec, incl_len, orig_len
_EPB_HDR = 28  # type, total length, interface, ts high, ts low, captured, original


def record_sizes(caplen: np.ndarray, fmt: str) -> np.ndarray:
    """Bytes each frame takes in the file (int64)."""
    if fmt == "pcap":
        return np.asarray(caplen + _PCAP_HDR, dtype=np.int64)
    return np.asarray(caplen + (-caplen & 3) + (_EPB_HDR + 4), dtype=np.int64)


def encode_block(buf: np.ndarray, rec: RecordTable, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """``(bytes, sizes)``: the file records of every frame of ``rec``, in order, as one
    uint8 array, and each record's size (to cut the array at rotation points)."""
    n = len(rec)
    caplen = rec.caplen.astype(np.int64)
    sizes = record_sizes(caplen, fmt)
    if not n:
        return np.zeros(0, dtype=np.uint8), sizes
    width = int(caplen.max())
    head = _PCAP_HDR if fmt == "pcap" else _EPB_HDR
    tail = 0 if fmt == "pcap" else 7  # up to 3 bytes of padding and the 4-byte length
    rows = np.empty((n, head + width + tail), dtype=np.uint8)
    rows[:, head:head + width] = gather(buf, rec.off, width)
    ts = rec.ts_ns.astype(np.int64)
    if fmt == "pcap":
        # Nanosecond pcap (the writer's magic says so), this machine's byte order.
        h = np.empty((n, 4), dtype="=u4")
        h[:, 0] = ts // 1_000_000_000
        h[:, 1] = ts % 1_000_000_000
        h[:, 2] = caplen
        h[:, 3] = rec.wirelen
    else:
        h = np.empty((n, 7), dtype="=u4")
        h[:, 0] = _EPB
        h[:, 1] = sizes
        h[:, 2] = rec.iface
        h[:, 3] = ts >> 32
        h[:, 4] = ts & 0xFFFFFFFF
        h[:, 5] = caplen
        h[:, 6] = rec.wirelen
        # Zero the padding (it holds the next frame's bytes from the gather), then the
        # trailing copy of the block length right after it.
        r = np.arange(n)[:, None]
        end = (head + caplen)[:, None]
        rows[r, end + np.arange(4)] = 0
        rows[r, end + (-caplen & 3)[:, None] + np.arange(4)] = \
            sizes.astype("=u4").view(np.uint8).reshape(n, 4)
    rows[:, :head] = h.view(np.uint8).reshape(n, head)
    keep = np.arange(rows.shape[1]) < sizes[:, None]
    return rows[keep], sizes
