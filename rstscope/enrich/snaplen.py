"""Can a key log decrypt this capture?  Not when the snaplen cut the TLS records.

TLS decryption needs every byte of a record; a capture taken with a small
snapshot length (``tcpdump -s 128``, rstscope's live default of 256) keeps the
headers only, so ``--keylog`` silently decrypts nothing.  This reads the snaplen
the file declares (pcap header, pcapng interface blocks) so the user is told.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable

from rstscope.errors import RstscopeError
from rstscope.wire import opener, pcap, pcapng

#: Below this snaplen a full-size TLS record segment (MSS 1460 + headers) is cut.
FULL_SEGMENT_BYTES = 1514


def declared_snaplen(path: str | os.PathLike[str]) -> int | None:
    """The smallest snaplen the capture declares (0 means unlimited), or None if unknown."""
    try:
        opened = opener.open_input(path)
    except (OSError, RstscopeError):
        return None
    buf = bytearray(1 << 16)
    got = 0
    try:
        # Unbuffered reads: the headers decompressed before a cut gzip stream still count.
        while got < len(buf) and (n := opener.readinto(opened.raw, memoryview(buf)[got:])):
            got += n
    except (OSError, EOFError):
        pass
    finally:
        opened.close()
    data = bytes(buf[:got])
    header = pcap.parse_header(data)
    if header is not None:
        return header.snaplen
    endian = pcapng.section_endian(data[:12]) if data[:4] == pcapng.SHB_BYTES else None
    if endian is None:
        return None
    snaps: list[int] = []
    pos = 0
    while pos + 16 <= len(data):
        btype, blen = struct.unpack(endian + "II", data[pos:pos + 8])
        if blen < 12:
            break
        if btype == pcapng.IDB:
            snaps.append(pcapng.parse_idb(data[pos + 8:pos + blen - 4], endian).snaplen)
        pos += blen
    return min(snaps) if snaps else None


def keylog_warning(paths: Iterable[str | os.PathLike[str]]) -> str | None:
    """A one-line warning when the snaplen makes decryption with a key log impossible."""
    for p in paths:
        snap = declared_snaplen(p)
        if snap is not None and 0 < snap < FULL_SEGMENT_BYTES:
            return (f"{os.fspath(p)}: snaplen {snap} bytes cuts TLS records, so the key log "
                    "cannot decrypt them (capture again with -s 0 for full packets)")
    return None


__all__ = ["FULL_SEGMENT_BYTES", "declared_snaplen", "keylog_warning"]
