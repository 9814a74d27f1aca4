"""Content identity of an input: a BLAKE2b hash of every byte of its files, in order.

Why the whole content and not size + first/last MiB: captures are edited in
place by real tools (``editcap`` rewriting timestamps or snaplen keeps the
size; a ring buffer overwrites a file with one of the same size), and a
sampled hash would silently reuse stale results for those.  Hashing is
sequential I/O at roughly 1 GB/s per core, cheaper than the analysis of the
same bytes, and it runs on the Dask workers in parallel, so the full hash is
affordable.  The file names do not enter the hash: a renamed or copied capture
is the same input and is not analysed twice.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from rstscope.errors import InputMissingError

__all__ = ["ID_CHARS", "content_hash", "input_id"]

_CHUNK = 1 << 20
# 16 hex digits (64 bits) of the hash name the input's partition directory; collisions
# at that width need ~4e9 inputs.
ID_CHARS = 16


def content_hash(files: Sequence[str | os.PathLike[str]]) -> str:
    """Hex BLAKE2b-128 of the files' bytes; each file is framed by its length.

    The length frame keeps ``[ab, c]`` and ``[a, bc]`` apart.
    """
    total = hashlib.blake2b(digest_size=16, person=b"rstscope-input")
    for f in files:
        try:
            size = os.stat(f).st_size
            h = hashlib.blake2b(digest_size=16)
            with open(f, "rb") as fh:
                buf = bytearray(_CHUNK)
                view = memoryview(buf)
                while True:
                    n = fh.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
        except FileNotFoundError as exc:
            raise InputMissingError(f"no such file: {os.fspath(f)}") from exc
        except OSError as exc:
            raise InputMissingError(f"cannot read {os.fspath(f)}: {exc.strerror}") from exc
        total.update(size.to_bytes(8, "little"))
        total.update(h.digest())
    return total.hexdigest()


def input_id(digest: str) -> str:
    """The partition name of an input (a prefix of its content hash)."""
    return digest[:ID_CHARS]
