"""One opener for every capture input: a path, ``-`` (stdin) or a binary file object.

Gzip is recognised by its magic, never by the name, and decompressed by a
streaming gunzip that hands over every byte decompressed before a cut or
damaged stream and only then reports the damage (``gzip.GzipFile`` raises
and loses the bytes of the failing read).  Readers then see one byte stream
with ``readinto``/``read``; a regular uncompressed file is also offered as a
file the caller may map.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, Final

from rstscope.errors import CaptureError, InputMissingError

GZIP_MAGIC: Final = b"\x1f\x8b"
_GUNZIP_READ = 1 << 20

Source = str | os.PathLike[str] | BinaryIO | IO[bytes]


class Gunzip(io.RawIOBase):
    """Streaming gunzip (multi-member) that keeps every byte decompressed before damage.

    A cut stream raises ``EOFError`` and a damaged one ``OSError``, each only
    once everything decompressed before it has been read.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._at = 0  # read position in _pending: no re-slicing per small read
        self._done = False
        self._members = 0
        self._started = False  # part of the current member has been fed

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while self._at >= len(self._pending) and not self._done:
            data = self._raw.read(_GUNZIP_READ)
            if not data:
                self._done = True
                if self._started:  # inside a member: the stream was cut
                    raise EOFError("compressed data ends before the end-of-stream marker")
                break
            self._pending, self._at = b"", 0
            self._feed(data)
        n = min(len(b), len(self._pending) - self._at)
        b[:n] = self._pending[self._at:self._at + n]
        self._at += n
        return n

    def _feed(self, data: bytes) -> None:
        out: list[bytes] = []
        try:
            while data:
                try:
                    chunk = self._d.decompress(data)
                except zlib.error as exc:
                    self._done = True
                    raise OSError(f"damaged gzip data ({exc})") from None
                self._started = True
                out.append(chunk)
                if self._d.eof:
                    self._members += 1
                    data = self._d.unused_data
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._started = False
                    if data.strip(b"\0") == b"":  # trailing padding after the last member
                        return
                else:
                    data = b""
        finally:
            self._pending = b"".join(out)
            self._at = 0


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with already-read bytes put back in front (magic sniffing)."""

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
        return readinto(self._raw, b)


def readinto(f: Any, b: Any) -> int:
    """``f.readinto(b)``, or a ``read`` copied into ``b`` for objects without it."""
    ri = getattr(f, "readinto", None)
    if ri is not None:
        n = ri(b)
        return int(n or 0)
    data = f.read(len(b))
    b[: len(data)] = data
    return len(data)


def _read_prefix(f: Any, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def rereadable(source: object) -> bool:
    """Whether ``source`` (a path, ``-``, a file object, or a list of them read as one
    stream) can be opened again from the start: only paths other than ``-`` can."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source) != "-"
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        return all(rereadable(s) for s in source)
    return False


def source_name(src: object) -> str:
    if src == "-":
        return "<stdin>"
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return str(getattr(src, "name", None) or f"<{type(src).__name__}>")


@dataclass(slots=True)
class Opened:
    """One opened input.

    ``raw`` yields the capture's bytes (gunzipped) from the first byte on,
    unbuffered: a ``readinto`` that fails has delivered everything before the
    failure in earlier calls, which a buffered reader would throw away with
    the failing call.  ``regular`` is the underlying regular, uncompressed
    file (positioned at 0) when there is one, for callers that map it
    instead.  ``close`` releases what this opener opened, never a caller's
    file object.
    """

    name: str
    raw: Any
    regular: IO[bytes] | None = None
    compressed: bool = False
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def buffered(self) -> Any:
        """``raw`` behind a read buffer, for readers that take a few bytes at a time."""
        if isinstance(self.raw, io.RawIOBase):
            return io.BufferedReader(self.raw)
        return self.raw

    def close(self) -> None:
        for c in self._closers:
            with contextlib.suppress(OSError):
                c()
        self._closers.clear()


def open_input(src: Source) -> Opened:
    """Open a path, ``-`` or a binary file object; gunzip by magic.

    Raises:
        InputMissingError: no such file, a directory, unreadable, or a text-mode object.
        CaptureError: an empty regular file.
    """
    name = source_name(src)
    if isinstance(src, (str, os.PathLike)) and os.fspath(src) != "-":
        path = os.fspath(src)
        try:
            f = open(path, "rb")  # noqa: SIM115 - owned by the Opened
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
        if head == GZIP_MAGIC:
            f.seek(0)
            return Opened(name, Gunzip(f), compressed=True, _closers=[f.close])
        if stat.S_ISREG(st.st_mode):
            f.seek(0)
            return Opened(name, f, regular=f, _closers=[f.close])
        return Opened(name, _Prefixed(head, f), _closers=[f.close])
    raw: Any = sys.stdin.buffer if src == "-" else src
    if not (hasattr(raw, "read") or hasattr(raw, "readinto")):
        raise InputMissingError(f"{name}: not a path or a binary file object")
    head = _read_prefix(raw, 2)
    if isinstance(head, str):
        raise InputMissingError(f"{name}: file object is in text mode; open it with 'rb'")
    if head == GZIP_MAGIC:
        return Opened(name, Gunzip(io.BufferedReader(_Prefixed(head, raw))), compressed=True)
    return Opened(name, _Prefixed(head, raw))
