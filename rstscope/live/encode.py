"""pcap and pcapng records for a whole block of frames, built with numpy.

The per-packet writer (``_File.write``) packs a header and joins bytes for
every packet, about a microsecond each in Python: at a few hundred thousand
packets per second that alone loses packets.  Here a block becomes one byte
array in a handful of array passes (see :func:`encode_block`).

The bytes are the same as the per-packet writer's (a test compares them).
"""

from __future__ import annotations

import numpy as np

from rstscope.ingest.record_table import RecordTable
from rstscope.wire.gather import gather

_EPB = 0x00000006  # pcapng Enhanced Packet Block
_PCAP_HDR = 16  # ts_sec, ts_nsec, incl_len, orig_len
_EPB_HDR = 28  # type, total length, interface, ts high, ts low, captured, original


def record_sizes(caplen: np.ndarray, fmt: str) -> np.ndarray:
    """Bytes each frame takes in the file (int64)."""
    if fmt == "pcap":
        return np.asarray(caplen + _PCAP_HDR, dtype=np.int64)
    return np.asarray(caplen + (-caplen & 3) + (_EPB_HDR + 4), dtype=np.int64)


def _vview(out: np.ndarray, width: int) -> np.ndarray:
    """``out`` as overlapping ``width``-byte items, one starting at every byte."""
    return np.ndarray(shape=(out.size - width + 1,), dtype=np.dtype((np.void, width)),
                      buffer=out, strides=(1,))


def _put(out: np.ndarray, at: np.ndarray, items: np.ndarray) -> None:
    """Copy row ``i`` of the contiguous ``(n, w)`` uint8 array ``items`` to ``out[at[i]:]``."""
    w = items.shape[1]
    _vview(out, w)[at] = items.view(np.dtype((np.void, w))).ravel()


def encode_block(buf: np.ndarray, rec: RecordTable, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """``(bytes, sizes)``: the file records of every frame of ``rec``, in order, as one
    uint8 array, and each record's size (to cut the array at rotation points).

    Frames are copied straight from ``buf`` to their place in the output, one
    numpy copy per distinct frame length: live traffic cut to a snap length
    has few (full-size segments, bare ACKs, ...), so that is a handful of
    calls per block whatever its packet count.  A block with very many
    distinct lengths is laid out row by row and compacted with a mask instead.
    """
    n = len(rec)
    caplen = rec.caplen.astype(np.int64)
    sizes = record_sizes(caplen, fmt)
    if not n:
        return np.zeros(0, dtype=np.uint8), sizes
    head = _PCAP_HDR if fmt == "pcap" else _EPB_HDR
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    total = int(starts[-1] + sizes[-1])
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
    hb = h.view(np.uint8).reshape(n, head)
    order = np.argsort(caplen, kind="stable")
    lens = caplen[order]
    cuts = np.flatnonzero(np.diff(lens)) + 1
    if cuts.size > _MAX_GROUPS:
        return _encode_rows(buf, rec, fmt, hb, sizes), sizes
    out = np.empty(total + 8, dtype=np.uint8)  # + room for the 4-byte writes at the end
    _put(out, starts, hb)
    for grp in np.split(order, cuts):
        w = int(caplen[grp[0]])
        if w:
            _put(out, starts[grp] + head, gather(buf, rec.off[grp], w))
    if fmt != "pcap":
        end = starts + head + caplen
        _put(out, end, np.zeros((n, 4), dtype=np.uint8))  # padding
        _put(out, end + (-caplen & 3), sizes.astype("=u4").view(np.uint8).reshape(n, 4))
    return out[:total], sizes


_MAX_GROUPS = 48


def _encode_rows(buf: np.ndarray, rec: RecordTable, fmt: str, hb: np.ndarray,
                 sizes: np.ndarray) -> np.ndarray:
    """The same bytes through fixed-width rows and a keep-mask (many distinct lengths)."""
    n = len(rec)
    caplen = rec.caplen.astype(np.int64)
    head = hb.shape[1]
    width = int(caplen.max())
    tail = 0 if fmt == "pcap" else 7  # up to 3 bytes of padding and the 4-byte length
    rows = np.empty((n, head + width + tail), dtype=np.uint8)
    rows[:, head:head + width] = gather(buf, rec.off, width)
    rows[:, :head] = hb
    if fmt != "pcap":
        r = np.arange(n)[:, None]
        end = (head + caplen)[:, None]
        rows[r, end + np.arange(4)] = 0
        rows[r, end + (-caplen & 3)[:, None] + np.arange(4)] = \
            sizes.astype("=u4").view(np.uint8).reshape(n, 4)
    cols = rows.shape[1]
    keep = np.tri(cols + 1, cols, -1, dtype=bool)[sizes]  # row k: True for the first k
    return np.asarray(rows[keep], dtype=np.uint8)
