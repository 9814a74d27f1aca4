"""Frame-order anomalies: timestamps that go backwards and duplicated packets.

Merged captures (mergecap of a client- and a server-side capture, or of two
interfaces that both saw a flow) and SPAN/TAP setups produce both.  The
analysis copes with them, but users must be told, because idle gaps and
"who sent first" read differently when the file is not in time order.

Counted per file, vectorised over each batch (a few array operations per
batch), with a small carry-over so that anomalies across batch boundaries
are not missed.
"""

from __future__ import annotations

from typing import Final

import numpy as np

# A duplicate is a TCP record with the same headers as one of the previous
# DUP_WINDOW records, at most DUP_MAX_NS apart: copies of one packet seen twice.
# Retransmissions differ (IPv4 ID, TCP timestamps) or come much later.
DUP_WINDOW: Final = 8
DUP_MAX_NS: Final = 50_000_000
_KEY_FIELDS: Final = ("sport", "dport", "seq", "ack", "flags", "win", "ip_id", "payload_len",
                      "tsval", "ttl")


def _keys(batch: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint of each record's headers (collisions are harmless here)."""
    h = np.full(len(batch), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for name in ("src", "dst"):
            words = np.ascontiguousarray(batch[name]).view(np.uint64).reshape(len(batch), 2)
            h = (h ^ words[:, 0]) * np.uint64(0x100000001B3)
            h = (h ^ words[:, 1]) * np.uint64(0x100000001B3)
        for name in _KEY_FIELDS:
            h = (h ^ batch[name].astype(np.uint64)) * np.uint64(0x100000001B3)
    return h


class OrderCheck:
    """Counts, for one file, frames out of time order and duplicated TCP records."""

    __slots__ = ("backwards", "duplicates", "_last_ts", "_tail_keys", "_tail_ts")

    def __init__(self) -> None:
        self.backwards = 0
        self.duplicates = 0
        self._last_ts: int | None = None
        self._tail_keys = np.zeros(0, dtype=np.uint64)
        self._tail_ts = np.zeros(0, dtype=np.int64)

    def frame_times(self, ts_ns: np.ndarray) -> None:
        """Every frame's timestamp, in frame order (TCP or not)."""
        if not len(ts_ns):
            return
        ts = ts_ns.astype(np.int64, copy=False)
        self.backwards += int(np.count_nonzero(ts[1:] < ts[:-1]))
        if self._last_ts is not None and ts[0] < self._last_ts:
            self.backwards += 1
        self._last_ts = int(ts[-1])

    def tcp_records(self, batch: np.ndarray) -> None:
        """The decoded TCP records of one batch, in frame order."""
        n = len(batch)
        if not n:
            return
        keys = np.concatenate([self._tail_keys, _keys(batch)])
        ts = np.concatenate([self._tail_ts, batch["ts_ns"].astype(np.int64)])
        start = len(self._tail_keys)
        dup = np.zeros(len(keys), dtype=bool)
        for k in range(1, DUP_WINDOW + 1):
            if k >= len(keys):
                break
            same = (keys[k:] == keys[:-k]) & (np.abs(ts[k:] - ts[:-k]) <= DUP_MAX_NS)
            dup[k:] |= same
        self.duplicates += int(np.count_nonzero(dup[start:]))
        self._tail_keys = keys[-DUP_WINDOW:]
        self._tail_ts = ts[-DUP_WINDOW:]

    def warnings(self) -> list[tuple[str, str, int]]:
        """(message, damage kind, count) for the anomalies seen."""
        out = []
        if self.backwards:
            out.append((f"{self.backwards} frame(s) have a timestamp earlier than the frame "
                        "before (merged or reordered capture?); idle gaps are computed in "
                        "frame order", "timestamp-backwards", self.backwards))
        if self.duplicates:
            out.append((f"{self.duplicates} TCP packet(s) are duplicates of a packet just "
                        "before (same headers; merged captures or a SPAN port seeing both "
                        "directions?)", "duplicate-packets", self.duplicates))
        return out
