"""Per-address TTL baselines across the flows of one capture.

A RST with no packet of its own flow to compare with (a REJECT answering a SYN)
can still be compared with what the same address sent in *other* connections of
the capture: a server that answered port 443 with TTL 61 did not answer port 8443
with TTL 64 from its own stack.

Only handshake packets (SYN, SYN/ACK) are counted, and only those *earlier in the
capture* than the RST (by file and frame).  The tracker notes every handshake of a
batch before it handles any packet of that batch, and it interleaves flows freely
inside a batch; filtering by position makes a RST's baseline the same wherever
the batches were cut.  Per address the earliest :data:`PER_HOST` handshakes are
kept, which is also cut-independent (the earliest ones before a RST are always
among them).  Past ``max_hosts`` addresses the one noted least recently is
forgotten.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

#: Handshakes kept per address: plenty for a TTL mode.
PER_HOST = 16


class HostBaselines:
    """The earliest handshake TTLs of each address in the capture."""

    __slots__ = ("_max_hosts", "_notes")

    def __init__(self, max_hosts: int) -> None:
        self._max_hosts = max(1, max_hosts)
        # address -> sorted [(file_id, frame, ttl)]; insertion-ordered, so the address
        # noted least recently goes first when the table is full.
        self._notes: dict[bytes, list[tuple[int, int, int]]] = {}

    def note(self, addr: bytes, file_id: int, frame: int, ttl: int) -> None:
        """One SYN or SYN/ACK from ``addr``."""
        notes = self._notes.pop(addr, None)
        if notes is None:
            notes = []
            while len(self._notes) >= self._max_hosts:
                del self._notes[next(iter(self._notes))]
        item = (file_id, frame, ttl)
        at = bisect.bisect_left(notes, item)
        # The same packet noted twice (a shard's tracker is given every handshake
        # up front and then meets its own again) counts once.
        if (at == len(notes) or notes[at] != item) and at < PER_HOST:
            notes.insert(at, item)
            del notes[PER_HOST:]
        self._notes[addr] = notes  # re-inserted: most recently noted last

    def note_many(self, addrs: Iterable[bytes], file_ids: Iterable[int],
                  frames: Iterable[int], ttls: Iterable[int]) -> None:
        for a, fi, fr, t in zip(addrs, file_ids, frames, ttls, strict=True):
            self.note(a, fi, fr, t)

    def baseline(self, addr: bytes, file_id: int, frame: int) -> dict[int, int]:
        """TTL histogram of ``addr``'s handshakes before (file_id, frame)."""
        out: dict[int, int] = {}
        for fi, fr, ttl in self._notes.get(addr, ()):
            if (fi, fr) >= (file_id, frame):
                break
            out[ttl] = out.get(ttl, 0) + 1
        return out


__all__ = ["PER_HOST", "HostBaselines"]
