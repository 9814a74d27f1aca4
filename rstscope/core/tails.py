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
                       ("seq", "u4"), ("ack", "u4"), ("plen", "u4"), ("tls_ct", "i2")])


class TailLedger:
    """Per-flow-key ring of the last :data:`TAIL_LEN` packets (pure, no I/O)."""

    def __init__(self, tail_len: int = TAIL_LEN) -> None:
        self.tail_len = tail_len
        self._tails: dict[bytes, np.ndarray] = {}
        # Per key: largest payload seen either way, and first packet time of the
        # current tail owner (a new SYN generation starts a fresh tail).
        self._max_plen: dict[bytes, tuple[int, int]] = {}

    def feed(self, batch: np.ndarray, inv: np.ndarray, swap: np.ndarray,
             key_bytes: list[bytes]) -> None:
        """Add a batch: ``inv`` maps packets to groups, ``key_bytes`` names each
        group's flow key, ``swap`` is True where the sender is the key's B end."""
        n = len(batch)
        if n == 0:
            return
        # Order by group, keeping file order inside a group.
        o = np.argsort(inv, kind="stable")
        g = inv[o]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], n]
        rows = np.empty(n, dtype=TAIL_DTYPE)
        rows["ts_ns"] = batch["ts_ns"][o]
        rows["frame"] = batch["frame"][o]
        rows["from_a"] = ~swap[o]
        rows["flags"] = batch["flags"][o]
        rows["seq"] = batch["seq"][o]
        rows["ack"] = batch["ack"][o]
        rows["plen"] = batch["payload_len"][o]
        rows["tls_ct"] = batch["tls_ct"][o]
        keep = self.tail_len
        tails = self._tails
        maxp = self._max_plen
        plen = rows["plen"]
        from_a = rows["from_a"]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            key = key_bytes[int(g[s])]
            seg = rows[max(s, e - keep):e]
            old = tails.get(key)
            tails[key] = seg.copy() if old is None else np.concatenate((old, seg))[-keep:]
            pa = plen[s:e][from_a[s:e]]
            pb = plen[s:e][~from_a[s:e]]
            ma, mb = maxp.get(key, (0, 0))
            maxp[key] = (max(ma, int(pa.max()) if len(pa) else 0),
                         max(mb, int(pb.max()) if len(pb) else 0))

    def tail(self, key: bytes) -> np.ndarray | None:
        return self._tails.get(key)

    def max_plen(self, key: bytes) -> tuple[int, int]:
        """(largest payload sent by the key's A end, by its B end) over the whole flow."""
        return self._max_plen.get(key, (0, 0))

    def drop(self, key: bytes) -> None:
        """Forget an evicted flow's tail (the memory guard evicts; so do we)."""
        self._tails.pop(key, None)
        self._max_plen.pop(key, None)

    def keys(self) -> list[bytes]:
        return list(self._tails)


__all__ = ["TAIL_DTYPE", "TAIL_LEN", "TailLedger"]
