"""Split one big capture into N flow-complete shards of packet records.

Theory of operation
-------------------
A single streaming pass reads the capture once (``rstscope.ingest``) and sends
every packet record to shard ``h(canonical 5-tuple) mod N``.  The canonical
5-tuple is direction-independent (the hash is a commutative sum of the two
endpoint hashes), so both directions of a connection, and every generation of
it, land in the same shard: each shard holds whole flows, in original packet
order, and can go through its own tracker.  Nothing is ever split by time or by
packet count, which would cut the very idle gaps and handshakes rstscope measures.

Shard files hold raw ``PACKET_DTYPE`` records (``shard-K.rec``, written with
``ndarray.tofile``) so the parallel pass does not decode frames again; the
records keep ``file_id`` and ``frame``, so results carry the original frame
numbers.  ``shards.json`` records the dtype, counts and *time marks*: after
each input batch, the number of records each shard had and the batch's last
timestamp.  The shard analysis replays those marks with ``Tracker.advance`` so
that time passes in every shard exactly as it did in the single stream (a
shard with no packets for a while still sees pending verdicts settle and idle
flows expire at the same packet time).

Handshakes: the tracker compares a RST that has no packet of its sender in its
own flow with the handshakes that address made in the capture's *other* flows
(``rstscope.core.hosts``), which may sit in other shards.  The first pass
therefore also writes every SYN and SYN/ACK's (address, file, frame, TTL) to
``handshakes.rec``; each shard's tracker reads them all before its own packets
(:func:`read_handshakes`), and since a baseline counts only handshakes earlier
than the RST, that is the baseline the single stream gives.

Memory: the first pass holds one input batch plus its per-shard slices; a
shard reader holds one chunk of records.  Both are bounded by the batch size,
not the file size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rstscope.errors import CaptureError, OutputError
from rstscope.ingest import open_capture
from rstscope.schema import PACKET_DTYPE, SCHEMA_VERSION, TH_RST, TH_SYN

__all__ = [
    "HANDSHAKE_DTYPE",
    "ShardSet",
    "flow_hash",
    "read_handshakes",
    "read_shard",
    "shard_batches",
    "shard_index",
    "write_shards",
]

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_MANIFEST = "shards.json"
_HANDSHAKES = "handshakes.rec"

#: One SYN or SYN/ACK as the per-address baselines need it (the PACKET_DTYPE names).
HANDSHAKE_DTYPE = np.dtype([("src", PACKET_DTYPE["src"]), ("file_id", PACKET_DTYPE["file_id"]),
                            ("frame", PACKET_DTYPE["frame"]), ("ttl", PACKET_DTYPE["ttl"])])


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a fixed, seedless 64-bit mix (stable across runs and hosts)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M2
    x = x ^ (x >> np.uint64(27))
    x = x * _M3
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _endpoint_hash(addr: np.ndarray, port: np.ndarray) -> np.ndarray:
    words = np.ascontiguousarray(addr).view(np.uint64).reshape(-1, 2)
    h = _mix(words[:, 0] ^ _M1)
    h = _mix(h ^ words[:, 1])
    return _mix(h ^ port.astype(np.uint64))


def flow_hash(batch: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each packet's canonical (direction-independent) TCP 5-tuple."""
    with np.errstate(over="ignore"):
        a = _endpoint_hash(batch["src"], batch["sport"])
        b = _endpoint_hash(batch["dst"], batch["dport"])
        # A commutative combination makes (A -> B) and (B -> A) hash alike.
        return _mix(a + b)


def shard_index(batch: np.ndarray, n_shards: int) -> np.ndarray:
    """Shard number (0..n_shards-1) of each packet."""
    return (flow_hash(batch) % np.uint64(n_shards)).astype(np.int64)


@dataclass(frozen=True, slots=True)
class ShardSet:
    """The shards of one capture, as written by :func:`write_shards`."""

    directory: str
    n_shards: int
    counts: tuple[int, ...]  # records per shard
    # marks[k] = ((records of shard k so far, batch's last ts_ns), ...) per input batch
    marks: tuple[tuple[tuple[int, int], ...], ...]
    read_stats: dict[str, Any]

    def path(self, k: int) -> str:
        return os.path.join(self.directory, f"shard-{k}.rec")

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ShardSet:
        d = Path(directory)
        meta = json.loads((d / _MANIFEST).read_text())
        if meta.get("dtype") != _dtype_text():
            raise CaptureError(f"{d}: shards were written with another packet schema")
        return cls(
            directory=str(d),
            n_shards=int(meta["n_shards"]),
            counts=tuple(int(c) for c in meta["counts"]),
            marks=tuple(tuple((int(n), int(t)) for n, t in m) for m in meta["marks"]),
            read_stats=dict(meta.get("read_stats", {})),
        )


def _dtype_text() -> str:
    return json.dumps(np.lib.format.dtype_to_descr(PACKET_DTYPE))


def _stats_dict(stats: Any) -> dict[str, Any]:
    """The JSON-safe part of the reader's statistics (for the summary)."""
    out: dict[str, Any] = {}
    for name in ("frames", "tcp"):
        v = getattr(stats, name, None)
        if isinstance(v, (int, np.integer)):
            out[name] = int(v)
    warnings = getattr(stats, "warnings", None)
    if warnings:
        out["warnings"] = [str(w) for w in warnings]
    return out


def write_shards(
    source: str | Sequence[str],
    directory: str | os.PathLike[str],
    n_shards: int,
    *,
    batch_size: int = 65536,
) -> ShardSet:
    """The streaming first pass: read ``source`` once, write ``n_shards`` record files.

    ``source`` is one path or the ordered files of one ring buffer.  Use the same
    ``batch_size`` as the single-tracker run: shard chunks end where its batches end.
    """
    src: Any = list(source) if not isinstance(source, str) else source
    with open_capture(src, batch_size=batch_size) as reader:
        shards = shard_batches(reader, directory, n_shards)
        stats = _stats_dict(reader.stats)
    # The reader's statistics are complete only after the last batch.
    meta_path = Path(shards.directory) / _MANIFEST
    meta = json.loads(meta_path.read_text())
    meta["read_stats"] = stats
    meta_path.write_text(json.dumps(meta))
    return ShardSet.load(shards.directory)


def shard_batches(
    batches: Iterable[np.ndarray],
    directory: str | os.PathLike[str],
    n_shards: int,
) -> ShardSet:
    """Write PACKET_DTYPE batches (stream order) into ``n_shards`` flow shards."""
    if n_shards < 1:
        raise ValueError("n_shards must be >= 1")
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        # N files open at once for the whole pass: a with-block per file does not fit.
        handles = [open(d / f"shard-{k}.rec", "wb") for k in range(n_shards)]  # noqa: SIM115
        handshakes = open(d / _HANDSHAKES, "wb")  # noqa: SIM115
    except OSError as exc:
        raise OutputError(f"cannot write shards to {d}: {exc.strerror}") from exc
    counts = np.zeros(n_shards, dtype=np.int64)
    marks: list[list[tuple[int, int]]] = [[] for _ in range(n_shards)]
    try:
        for batch in batches:
            if not len(batch):
                continue
            flags = batch["flags"]
            hs = batch[((flags & TH_SYN) != 0) & ((flags & TH_RST) == 0)]
            if len(hs):
                out = np.empty(len(hs), dtype=HANDSHAKE_DTYPE)
                for name in HANDSHAKE_DTYPE.names or ():
                    out[name] = hs[name]
                out.tofile(handshakes)
            idx = shard_index(batch, n_shards)
            # A stable sort keeps packet order inside each shard.
            order = np.argsort(idx, kind="stable")
            bounds = np.searchsorted(idx[order], np.arange(n_shards + 1))
            # np.take copies structured records ~20x faster than fancy indexing here.
            sorted_batch = np.take(batch, order)
            for k in range(n_shards):
                part = sorted_batch[bounds[k]:bounds[k + 1]]
                if len(part):
                    part.tofile(handles[k])
                    counts[k] += len(part)
            # The tracker's clock after a batch is the batch's largest timestamp.
            now = int(batch["ts_ns"].max())
            for k in range(n_shards):
                marks[k].append((int(counts[k]), now))
    except OSError as exc:
        raise OutputError(f"cannot write shards to {d}: {exc.strerror}") from exc
    finally:
        for h in handles:
            h.close()
        handshakes.close()
    meta = {
        "schema_version": SCHEMA_VERSION,
        "dtype": _dtype_text(),
        "n_shards": n_shards,
        "counts": [int(c) for c in counts],
        "marks": marks,
        "read_stats": {},
    }
    (d / _MANIFEST).write_text(json.dumps(meta))
    return ShardSet.load(d)


def read_handshakes(shards: ShardSet, chunk: int = 65536) -> Iterator[np.ndarray]:
    """Every SYN and SYN/ACK of the input (HANDSHAKE_DTYPE), in chunks, stream order.

    Shards written before this file existed have none: yields nothing."""
    path = os.path.join(shards.directory, _HANDSHAKES)
    if not os.path.exists(path):
        return
    with open(path, "rb") as fh:
        while True:
            recs = np.fromfile(fh, dtype=HANDSHAKE_DTYPE, count=chunk)
            if not len(recs):
                return
            yield recs


def read_shard(shards: ShardSet, k: int) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(records, now_ns)`` for shard ``k``: its part of each input batch, in order.

    Feed ``records`` to the tracker (one ``feed`` per input batch, as the single
    stream did), then ``advance(now_ns)``: the stream's clock after that batch.
    A part holds at most one input batch, so memory is bounded by the batch size.
    """
    path = shards.path(k)
    done = 0
    with open(path, "rb") as fh:
        for upto, ts in shards.marks[k]:
            n = upto - done
            recs = np.fromfile(fh, dtype=PACKET_DTYPE, count=n) if n else np.empty(
                0, dtype=PACKET_DTYPE)
            if len(recs) != n:
                raise CaptureError(f"{path}: shard file is shorter than its manifest")
            done = upto
            yield recs, ts
    if os.path.getsize(path) != done * PACKET_DTYPE.itemsize:
        raise CaptureError(f"{path}: shard file is longer than its manifest")
