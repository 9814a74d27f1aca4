"""The last packets of every flow, kept for the findings that live at a flow's end.

A stall (a flow that ends in a FIN after retransmissions, or still hangs when the
capture ends) and a path-MTU black hole are read from how a connection *ended*:
which segments were retransmitted, which sizes were acknowledged, how long data
sat unacknowledged.  The tracker's bulk path keeps only running totals, so this
ledger keeps, per 5-tuple, the last :data:`TAIL_LEN` packets as a small numpy
record array, updated per batch with vectorised grouping (one Python step per
flow per batch, like the tracker's own).  Direction is stored as "sent by the
key's A end"; :mod:`rstscope.core.stalls` maps it to orig/resp with the flow.
"""

from __future__ import annotations

import numpy as np

#: Packets kept per flow: enough for a retransmission ladder (RTO backoff gives
#: ~6-15 retransmissions before an endpoint gives up) plus what came before it.
TAIL_LEN = 32

TAIL_DTYPE = np.dtype([("ts_ns", "i8"), ("frame", "u8"), ("from_a", "?"), ("flags", "u2"),
                       ("seq", "u4"), ("ack", "u4"), ("payload_len", "u4"), ("tls_ct", "i2")])

_ITEM = TAIL_DTYPE.itemsize


class TailLedger:
    """Per-flow-key ring of the last :data:`TAIL_LEN` packets (pure, no I/O)."""

    def __init__(self, tail_len: int = TAIL_LEN) -> None:
        self.tail_len = tail_len
        # Per key: the tail's records as bytes (joining two bytes objects is much
        # cheaper than joining record arrays, done once per flow per batch).
        self._tails: dict[bytes, bytes] = {}
        # Per key: largest payload seen either way, and first packet time of the
        # current tail owner (a new SYN generation starts a fresh tail).
        self._max_payload_len: dict[bytes, tuple[int, int]] = {}

    def feed(self, batch: np.ndarray, o: np.ndarray, starts: np.ndarray, swap: np.ndarray,
             key_bytes: list[bytes]) -> None:
        """Add a batch: ``o`` lists its packets by group (file order inside a
        group), group j starting at ``o[starts[j]]`` and named by ``key_bytes[j]``
        (its flow key); ``swap`` is True where the sender is the key's B end."""
        n = len(batch)
        if n == 0:
            return
        ends = np.r_[starts[1:], n]
        payload_len = batch["payload_len"][o].astype(np.int64)
        from_a = ~swap[o]
        # Largest payload per group and direction, vectorised.
        max_a = np.maximum.reduceat(np.where(from_a, payload_len, 0), starts)
        max_b = np.maximum.reduceat(np.where(from_a, 0, payload_len), starts)
        # Only each group's last tail_len packets can survive: build rows for those.
        keep = self.tail_len
        pos_from_end = np.repeat(ends, ends - starts) - np.arange(n) - 1
        sel = pos_from_end < keep
        so = o[sel]
        rows = np.empty(len(so), dtype=TAIL_DTYPE)
        rows["ts_ns"] = batch["ts_ns"][so]
        rows["frame"] = batch["frame"][so]
        rows["from_a"] = ~swap[so]
        rows["flags"] = batch["flags"][so]
        rows["seq"] = batch["seq"][so]
        rows["ack"] = batch["ack"][so]
        rows["payload_len"] = batch["payload_len"][so]
        rows["tls_ct"] = batch["tls_ct"][so]
        cnt = np.minimum(ends - starts, keep)
        r_end = np.cumsum(cnt)
        r_start = r_end - cnt
        tails = self._tails
        maxp = self._max_payload_len
        raw = rows.tobytes()
        keep_bytes = keep * _ITEM
        for key, rs, re_, ma, mb in zip(key_bytes, (r_start * _ITEM).tolist(),
                                        (r_end * _ITEM).tolist(), max_a.tolist(),
                                        max_b.tolist(), strict=True):
            old = tails.get(key)
            tails[key] = raw[rs:re_] if old is None else (old + raw[rs:re_])[-keep_bytes:]
            pa, pb = maxp.get(key, (0, 0))
            maxp[key] = (ma if ma > pa else pa, mb if mb > pb else pb)

    def tail(self, key: bytes) -> np.ndarray | None:
        """The flow's last packets, oldest first (a read-only record array)."""
        raw = self._tails.get(key)
        return None if raw is None else np.frombuffer(raw, dtype=TAIL_DTYPE)

    def tail_bytes(self, key: bytes) -> bytes | None:
        """:meth:`tail` as the :data:`TAIL_DTYPE` records' bytes, as kept (for a
        caller that joins many flows' tails: no array made and copied back)."""
        return self._tails.get(key)

    def max_payload_len(self, key: bytes) -> tuple[int, int]:
        """(largest payload sent by the key's A end, by its B end) over the whole flow."""
        return self._max_payload_len.get(key, (0, 0))

    def drop(self, key: bytes) -> None:
        """Forget an evicted flow's tail (the memory guard evicts; so do we)."""
        self._tails.pop(key, None)
        self._max_payload_len.pop(key, None)

    def keys(self) -> list[bytes]:
        return list(self._tails)


__all__ = ["TAIL_DTYPE", "TAIL_LEN", "TailLedger"]
