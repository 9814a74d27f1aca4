"""Byte sources: one interface over mmap'd files and chunked streams.

The record walkers see a window: a ``uint8`` array ``buf`` holding the
unconsumed bytes ``buf[start:end]``.  A regular uncompressed file is mapped
once and the window is the whole file (no copies); everything else (gzip,
stdin, file objects) is read in chunks into one reusable buffer, and
:meth:`Window.refill` slides the unconsumed tail to the front before reading
more.  Memory is bounded by the chunk size, not the file size: for mapped
files the pages already consumed are dropped from the process with
``MADV_DONTNEED`` so RSS stays flat on multi-GB captures.
"""

from __future__ import annotations

import contextlib
import mmap
import zlib
from collections.abc import Callable
from typing import IO

import numpy as np

from rstscope.wire.opener import Source, open_input, readinto, source_name

__all__ = ["STREAM_CHUNK", "Source", "Window", "open_window", "source_name"]

# Stream chunk: big enough that a 64k-record batch of full-size frames needs only
# a few refills, small enough to keep RSS low.
STREAM_CHUNK = 32 << 20
# Drop consumed mmap pages after this many bytes; a multiple of the page size.
# Mapped pages count in the process' RSS until dropped: 64 MiB put ~70 MiB of the
# file into read_packets' and analyze's peak; 8 MiB costs no measurable CPU
# (110 madvise calls per GB) and keeps ~15 MiB.
_RELEASE_EVERY = 8 << 20


class Window:
    """Unconsumed bytes ``buf[start:end]`` of one input; ``eof`` once nothing more can come."""

    __slots__ = ("buf", "start", "end", "eof", "base", "name", "_reader", "_mm", "_released",
                 "_closers", "error")

    def __init__(self, name: str) -> None:
        self.name = name
        self.buf: np.ndarray = np.empty(0, dtype=np.uint8)
        self.start = 0
        self.end = 0
        self.eof = False
        # File offset of buf[0], for messages that point at a byte in the input.
        self.base = 0
        self._reader: Callable[[memoryview], int] | None = None
        self._mm: mmap.mmap | None = None
        self._released = 0
        self._closers: list[Callable[[], None]] = []
        self.error: str | None = None

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_mmap(cls, name: str, fileobj: IO[bytes]) -> Window:
        w = cls(name)
        mm = mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        w._mm = mm
        w.buf = np.frombuffer(mm, dtype=np.uint8)
        w.end = len(mm)
        w.eof = True
        w._closers.append(fileobj.close)
        return w

    @classmethod
    def from_stream(cls, name: str, readinto: Callable[[memoryview], int],
                    prefix: bytes = b"", chunk: int = STREAM_CHUNK) -> Window:
        w = cls(name)
        w.buf = np.empty(max(chunk, len(prefix) + 65536), dtype=np.uint8)
        w.buf[: len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        w.end = len(prefix)
        w._reader = readinto
        return w

    # -- use ----------------------------------------------------------------------
    @property
    def offset(self) -> int:
        """File offset of the first unconsumed byte."""
        return self.base + self.start

    def consume_to(self, pos: int) -> None:
        self.start = pos
        mm = self._mm
        if mm is not None and hasattr(mm, "madvise") and pos - self._released >= _RELEASE_EVERY:
            upto = pos - pos % mmap.PAGESIZE
            with contextlib.suppress(OSError):
                mm.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

    def refill(self, need: int = 0) -> bool:
        """Read more bytes after the unconsumed tail; False if nothing more arrived.

        ``need`` asks that the window can hold at least that many unconsumed bytes
        (a record bigger than the chunk).
        """
        if self.eof or self._reader is None:
            self.eof = True
            return False
        tail = self.end - self.start
        size = self.buf.size
        if need > size:
            size = need + (need >> 1)
        if size != self.buf.size:
            nb = np.empty(size, dtype=np.uint8)
            nb[:tail] = self.buf[self.start:self.end]
            self.buf = nb
        elif self.start:
            self.buf[:tail] = self.buf[self.start:self.end]
        self.base += self.start
        self.start, self.end = 0, tail
        got_any = False
        mv = memoryview(self.buf)  # type: ignore[arg-type]
        while self.end < self.buf.size:
            try:
                n = self._reader(mv[self.end:])
            except (EOFError, OSError, zlib.error) as exc:
                # A cut or damaged gzip stream: keep what was decompressed, report it.
                self.error = f"compressed stream ended early or is damaged ({exc})"
                n = 0
            if not n:
                self.eof = True
                break
            self.end += n
            got_any = True
        mv.release()
        return got_any

    def close(self) -> None:
        self.buf = np.empty(0, dtype=np.uint8)
        if self._mm is not None:
            # BufferError: a caller still holds a view; the GC unmaps it later.
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None
        for c in self._closers:
            with contextlib.suppress(OSError):
                c()
        self._closers.clear()


def open_window(src: Source, chunk: int = STREAM_CHUNK) -> Window:
    """Open one input as a :class:`Window`, transparently gunzipping (by magic)."""
    opened = open_input(src)
    if opened.regular is not None:
        w = Window.from_mmap(opened.name, opened.regular)
        return w
    raw = opened.raw
    w = Window.from_stream(opened.name, lambda b: readinto(raw, b), chunk=chunk)
    w._closers.append(opened.close)
    return w
