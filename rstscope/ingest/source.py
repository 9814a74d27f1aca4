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
import io
import mmap
import os
import stat
import sys
import zlib
from collections.abc import Callable
from typing import IO, Any, BinaryIO

import numpy as np

from rstscope.errors import CaptureError, InputMissingError

_GZIP_MAGIC = b"\x1f\x8b"
# Stream chunk: big enough that a 64k-record batch of full-size frames needs only
# a few refills, small enough to keep RSS low.
STREAM_CHUNK = 32 << 20
# Drop consumed mmap pages after this many bytes; a multiple of the page size.
_RELEASE_EVERY = 64 << 20

Source = str | os.PathLike[str] | BinaryIO | IO[bytes]


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


class _Gunzip:
    """Streaming gunzip (multi-member) that hands over every byte decompressed before a
    cut or damaged stream, then reports the damage; ``gzip.GzipFile`` raises instead
    and loses the bytes of the failing read."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._done = False
        self._members = 0
        self._started = False  # part of the current member has been fed

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._done:
            data = self._raw.read(1 << 20)
            if not data:
                self._done = True
                if self._started:  # inside a member: the stream was cut
                    raise EOFError("compressed data ends before the end-of-stream marker")
                break
            self._feed(data)
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _feed(self, data: bytes) -> None:
        while data:
            try:
                out = self._d.decompress(data)
            except zlib.error as exc:
                self._done = True
                raise OSError(f"damaged gzip data ({exc})") from None
            self._started = True
            self._pending += out
            if self._d.eof:
                self._members += 1
                data = self._d.unused_data
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._started = False
                if data.strip(b"\0") == b"":  # trailing padding after the last member
                    return
            else:
                data = b""


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with already-read bytes put back in front (for gzip sniffing)."""

    def __init__(self, prefix: bytes, raw: Any) -> None:
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return _readinto(self._raw, b)


def _readinto(f: Any, b: Any) -> int:
    ri = getattr(f, "readinto", None)
    if ri is not None:
        n = ri(b)
        return int(n or 0)
    data = f.read(len(b))
    b[: len(data)] = data
    return len(data)


def _read_exact_prefix(f: Any, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def source_name(src: object) -> str:
    if src == "-":
        return "<stdin>"
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return str(getattr(src, "name", None) or f"<{type(src).__name__}>")


def open_window(src: Source, chunk: int = STREAM_CHUNK) -> Window:
    """Open one input as a :class:`Window`, transparently gunzipping (by magic)."""
    name = source_name(src)
    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-":
        path = os.fspath(src)
        try:
            f = open(path, "rb")  # noqa: SIM115 - owned by the Window
        except FileNotFoundError:
            raise InputMissingError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputMissingError(f"{path}: is a directory, not a capture") from None
        except OSError as exc:
            raise InputMissingError(f"{path}: cannot open ({exc.strerror})") from None
        st = os.fstat(f.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            f.close()
            raise CaptureError(f"{path}: empty file (0 bytes), not a capture")
        head = f.read(2)
        if head == _GZIP_MAGIC:
            f.seek(0)
            gz = _Gunzip(f)
            w = Window.from_stream(name, gz.readinto, chunk=chunk)
            w._closers.append(f.close)
            return w
        if stat.S_ISREG(st.st_mode):
            return Window.from_mmap(name, f)
        w = Window.from_stream(name, lambda b: _readinto(f, b), prefix=head, chunk=chunk)
        w._closers.append(f.close)
        return w
    raw: Any = sys.stdin.buffer if src == "-" else src
    if not (hasattr(raw, "read") or hasattr(raw, "readinto")):
        raise InputMissingError(f"{name}: not a path or a binary file object")
    head = _read_exact_prefix(raw, 2)
    if isinstance(head, str):
        raise InputMissingError(f"{name}: file object is in text mode; open it with 'rb'")
    if head == _GZIP_MAGIC:
        gz = _Gunzip(io.BufferedReader(_Prefixed(head, raw)))
        return Window.from_stream(name, gz.readinto, chunk=chunk)
    return Window.from_stream(name, lambda b: _readinto(raw, b), prefix=head, chunk=chunk)
