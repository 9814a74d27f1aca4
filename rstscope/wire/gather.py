"""Vectorised byte gathers from a capture buffer.

A byte-strided view ``np.ndarray(shape=(n - w + 1,), dtype=V<w>, strides=(1,))``
makes "the ``w`` bytes starting at offset i" one array element, so reading the
same header at a million different offsets is a single fancy-index gather.
Gathering raw ``V<w>`` items and then viewing them through a big-endian
structured dtype is several times faster than fancy-indexing a structured
view directly.
"""

from __future__ import annotations

from typing import cast

import numpy as np


def mv(buf: np.ndarray) -> memoryview:
    """A memoryview of a numpy buffer (numpy's stubs do not declare the buffer protocol)."""
    return memoryview(buf)  # type: ignore[arg-type]


def gather(buf: np.ndarray, offs: np.ndarray, width: int) -> np.ndarray:
    """``(len(offs), width)`` uint8 array of ``buf[o:o+width]``; bytes past the buffer read as 0.

    Callers must mask fields that lie beyond a record's captured length: the
    gathered bytes there belong to the next record.
    """
    n = buf.size
    m = offs.size
    if m == 0:
        return np.zeros((0, width), dtype=np.uint8)
    if n >= width:
        view = np.ndarray(shape=(n - width + 1,), dtype=np.dtype((np.void, width)),
                          buffer=buf, strides=(1,))
        last = n - width
        if int(offs.max()) <= last:
            return cast(np.ndarray, view[offs].view(np.uint8).reshape(m, width))
        ok = offs <= last
        out = np.zeros((m, width), dtype=np.uint8)
        out[ok] = view[offs[ok]].view(np.uint8).reshape(-1, width)
        idx = np.nonzero(~ok)[0]
    else:
        out = np.zeros((m, width), dtype=np.uint8)
        idx = np.arange(m)
    for i in idx.tolist():  # the few rows at the very end of the buffer
        o = int(offs[i])
        if 0 <= o < n:
            chunk = buf[o:o + width]
            out[i, : chunk.size] = chunk
    return out


def be16(g: np.ndarray, col: int) -> np.ndarray:
    """Big-endian uint16 from columns ``col, col+1`` of a gathered block, as int64."""
    return cast(np.ndarray, (g[:, col].astype(np.int64) << 8) | g[:, col + 1])


def be32(g: np.ndarray, col: int) -> np.ndarray:
    """Big-endian uint32 from 4 columns of a gathered block, as int64."""
    return np.ascontiguousarray(g[:, col:col + 4]).view(">u4").ravel().astype(np.int64)


def le32(g: np.ndarray, col: int) -> np.ndarray:
    return np.ascontiguousarray(g[:, col:col + 4]).view("<u4").ravel().astype(np.int64)


def byte_at(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``buf[pos]`` as int64 with positions past the buffer reading as 0."""
    n = buf.size
    if pos.size and int(pos.max()) >= n:
        out = np.zeros(pos.size, dtype=np.int64)
        ok = pos < n
        out[ok] = buf[pos[ok]]
        return out
    return cast(np.ndarray, buf[pos].astype(np.int64))
