"""Analyse one big input in parallel: shard by flow, track shards, renumber, write.

Theory of operation
-------------------
1. :func:`rstscope.scale.shard.write_shards` streams the input once into N
   flow-complete shard files (packets of a connection never straddle shards).
2. Each shard goes through its own :class:`rstscope.core.Tracker` on a Dask
   worker (:func:`analyze_shard`).  The shard replays the first pass's time
   marks with ``Tracker.advance`` so packet time passes in every shard as in
   the single stream.
3. Flow ids.  Sharded flows are numbered 1, 2, 3, ... in the order of the
   packets that create them (a flow's first packet, or the SYN that starts a
   new generation): every shard notes the original position ``(file_id,
   frame)`` of each creating packet, and the merge of the N sorted lists gives
   the global numbering.  Only these small arrays travel to the coordinating
   task; the records stay on the workers and each shard writes its own
   ``part-K.parquet`` files.  A single tracker numbers flows in its own
   processing order, which inside one batch handles control packets in rounds,
   so the two numberings can differ by a permutation (the records are
   otherwise identical; the tests match flows by 5-tuple + generation).

What the tracker keeps across flows, and how the sharded path matches it:

* per-address TTL baselines (``rstscope.core.hosts``): every shard is given
  every handshake of the stream first (``read_handshakes``), and a baseline
  counts only those earlier than its RST, so it is the single stream's;
* per-flow vantage: computed from the flow's own packets, so it is the same;
  the capture-wide vantage (a majority vote over flows) is recomputed here
  from the merged flow records exactly as ``Tracker.vantage`` counts them;
* flow ids: renumbered as above (a permutation of the single tracker's ids);
* pending verdicts: settle at the end of the input batch in which packet time
  passes the settle window; a shard is fed its part of each input batch in one
  ``feed`` and then advanced to the batch's clock, so a verdict sees the same
  packets of its flow as in the single stream;
* idle eviction (``evict_idle_s``): the same time marks drive the sweep;
* ``max_flows`` (least-recently-seen eviction when the table is full) is the
  one rule that cannot be identical: a shard's table holds only its flows, so
  it fills later.  It only matters when more than ``max_flows`` (default
  1,000,000) flows are live at once; such runs report it in the summary warnings.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rstscope.catalog import make_config
from rstscope.core import FlowOpened, Tracker, TrackerConfig
from rstscope.core.records import FlowRecord, ResetRecord
from rstscope.core.stalls import StallRecord
from rstscope.scale.discover import CaptureInput
from rstscope.scale.identity import content_hash, input_id
from rstscope.scale.parquet import partition_dir, write_partition
from rstscope.scale.rows import base_row, error_row, peak_rss_bytes, stat_of
from rstscope.scale.shard import ShardSet, read_handshakes, read_shard, write_shards
from rstscope.scale.tables import records_table

__all__ = ["ShardResult", "analyze_shard", "analyze_sharded_local", "submit_sharded"]

@dataclass(frozen=True, slots=True)
class ShardResult:
    """One shard's tracker output (records keep shard-local flow ids)."""

    k: int
    flows: tuple[Any, ...]  # FlowRecord
    resets: tuple[Any, ...]  # ResetRecord
    created: np.ndarray  # uint64 stream position of each local flow id 1..n (index id-1)
    packets: int
    peak_rss_bytes: int
    elapsed_s: float
    # StallRecord: a flow lives in one shard, so its stall is found there (an open
    # flow's silence runs to its shard's last packet, not the stream's: a shard
    # ends no later than the stream, so it can only be shorter).
    stalls: tuple[Any, ...] = ()


def analyze_shard(shards_dir: str, k: int, config: TrackerConfig) -> ShardResult:
    """Track one shard, replaying the stream's time marks."""
    started = time.perf_counter()
    shards = ShardSet.load(shards_dir)
    tracker = Tracker(config)
    # The other shards' handshakes too, for the per-address TTL baselines.
    for hs in read_handshakes(shards):
        tracker.note_handshakes(hs)
    # Stream position of each local flow's first packet: file by file, frame by frame.
    created_pos: dict[int, int] = {}
    packets = 0
    for recs, now in read_shard(shards, k):
        if len(recs):
            for ev in tracker.feed(recs):
                if isinstance(ev, FlowOpened):
                    created_pos[ev.flow_id] = (ev.file_id << 48) | ev.frame
            packets += len(recs)
            if int(recs["ts_ns"].max()) >= now:
                continue  # feed already moved the clock to the batch's end
        tracker.advance(now)
    tracker.finish()
    flows = tracker.flows()
    n = len(flows)
    created = np.zeros(n, dtype=np.uint64)
    for fid, pos in created_pos.items():
        created[fid - 1] = pos
    return ShardResult(
        k=k, flows=tuple(flows), resets=tuple(tracker.resets()), created=created,
        packets=packets, peak_rss_bytes=peak_rss_bytes(),
        elapsed_s=time.perf_counter() - started, stalls=tuple(tracker.stalls()),
    )


def global_ids(created: list[np.ndarray]) -> list[np.ndarray]:
    """Per shard, local flow id - 1 -> the id a single tracker gives (1-based)."""
    sizes = [len(c) for c in created]
    if not sum(sizes):
        return [np.zeros(0, dtype=np.int64) for _ in created]
    allpos = np.concatenate(created)
    order = np.argsort(allpos, kind="stable")
    ranks = np.empty(len(allpos), dtype=np.int64)
    ranks[order] = np.arange(1, len(allpos) + 1)
    out, start = [], 0
    for n in sizes:
        out.append(ranks[start:start + n])
        start += n
    return out


def renumber(result: ShardResult, ids: np.ndarray) -> tuple[list[Any], list[Any]]:
    """The shard's flow and reset records with global flow ids."""
    flows = [replace(f, flow_id=int(ids[f.flow_id - 1])) for f in result.flows]
    resets = [replace(r, flow_id=int(ids[r.flow_id - 1])) for r in result.resets]
    return flows, resets


def write_shard_parts(result: ShardResult, ids: np.ndarray, outdir: str, ident: str
                      ) -> tuple[int, int]:
    """Write ``part-K.parquet`` of the flows, resets and stalls datasets; returns the
    (reset, stall) counts."""
    flows, resets = renumber(result, ids)
    stalls = [replace(s, flow_id=int(ids[s.flow_id - 1])) for s in result.stalls]
    part = f"part-{result.k}"
    write_partition(records_table(resets, ResetRecord), outdir, "resets", ident, part)
    write_partition(records_table(flows, FlowRecord), outdir, "flows", ident, part)
    write_partition(records_table(stalls, StallRecord), outdir, "stalls", ident, part)
    return len(resets), len(stalls)


def capture_vantage(flows: list[Any], config: TrackerConfig) -> str:
    """The capture-wide vantage as ``Tracker.vantage`` computes it (majority over flows)."""
    if config.vantage != "auto":
        return str(config.vantage)
    votes: Counter[str] = Counter(f.vantage for f in flows)
    if not votes:
        return "middle"
    return votes.most_common(1)[0][0]


def analyze_sharded_local(source: str | list[str], n_shards: int, workdir: str,
                          config: TrackerConfig | None = None,
                          batch_size: int = 65536) -> tuple[list[Any], list[Any]]:
    """Shard and analyse in this process (no Dask): the reference for tests and debugging.

    Returns (flows, resets) with global flow ids, sorted by flow id / stream position.
    """

    cfg = config or make_config()
    shards = write_shards(source, workdir, n_shards, batch_size=batch_size)
    results = [analyze_shard(shards.directory, k, cfg) for k in range(n_shards)]
    ids = global_ids([r.created for r in results])
    flows: list[Any] = []
    resets: list[Any] = []
    for r, m in zip(results, ids, strict=True):
        f, rs = renumber(r, m)
        flows += f
        resets += rs
    flows.sort(key=lambda f: f.flow_id)
    resets.sort(key=lambda r: (r.file_id, r.frame))
    return flows, resets


def submit_sharded(
    inp: CaptureInput,
    outdir: str,
    done: frozenset[str],
    n_shards: int,
    *,
    vantage: str = "auto",
    batch_size: int = 65536,
    hash_first: bool = True,
) -> dict[str, Any]:
    """The coordinating task of a sharded input (runs on a worker, fans out via worker_client).

    ``hash_first``: hash before the first pass (the input may be done already) rather
    than alongside it.
    """
    # lazy: the dask extra, needed only when a cluster runs
    import distributed

    worker_client: Any = distributed.worker_client


    started = time.perf_counter()
    row = base_row(inp, "", 0)
    shard_dir = os.path.join(outdir, ".shards", f"{os.getpid()}-{time.time_ns()}")
    try:
        row["size_bytes"] = inp.size_bytes
        cfg = make_config(vantage)
        source: str | list[str] = list(inp.files) if len(inp.files) > 1 else inp.files[0]
        if hash_first:
            # Something of this size is done already: a cheap skip is likely.
            digest = content_hash(inp.files)
            if input_id(digest) in done:
                row.update(content_hash=digest, input=input_id(digest), shards=n_shards,
                           status="skipped")
                return row
            shards = write_shards(source, shard_dir, n_shards, batch_size=batch_size)
        else:
            # New content: hash in a thread while the first pass runs (hashlib drops the
            # GIL on large updates), so the identity costs no extra wall time.
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(content_hash, inp.files)
                shards = write_shards(source, shard_dir, n_shards, batch_size=batch_size)
                digest = pending.result()
        ident = input_id(digest)
        row.update(content_hash=digest, input=ident, shards=n_shards)
        for ds in ("resets", "flows", "stalls"):  # a previous partial run may have left parts
            shutil.rmtree(partition_dir(outdir, ds, ident), ignore_errors=True)
        with worker_client() as client:
            futs = [client.submit(analyze_shard, shards.directory, k, cfg, pure=False)
                    for k in range(n_shards)]
            meta = client.gather([client.submit(_meta, f, pure=False) for f in futs])
            ids = global_ids([m["created"] for m in meta])
            writes = [client.submit(write_shard_parts, f, m, outdir, ident, pure=False)
                      for f, m in zip(futs, ids, strict=True)]
            counts = client.gather(writes)
            resets = sum(c[0] for c in counts)
            stalls = sum(c[1] for c in counts)
            votes = client.gather([client.submit(_vantages, f, pure=False) for f in futs])
            del futs

        tally: Counter[str] = Counter()
        for v in votes:
            tally.update(v)
        warnings = list(shards.read_stats.get("warnings", []))
        n_flows = sum(len(m["created"]) for m in meta)
        if n_flows > cfg.max_flows:
            # Necessary (not sufficient) for the table to fill: say that results may differ.
            warnings.append(f"{n_flows} flows > max_flows {cfg.max_flows}: evictions of the "
                            "sharded run may differ from a single tracker's")
        row.update(
            packets=stat_of(shards.read_stats, "frames"),
            tcp_packets=stat_of(shards.read_stats, "tcp"),
            flows=n_flows, resets=resets, stalls=stalls,
            vantage=(vantage if vantage != "auto"
                     else (tally.most_common(1)[0][0] if tally else "middle")),
            warnings=warnings,
            peak_rss_bytes=max([peak_rss_bytes()] + [m["peak_rss_bytes"] for m in meta]),
        )
    except Exception as exc:  # noqa: BLE001 - one bad input must not stop the batch
        row = error_row(row, exc)
    finally:
        shutil.rmtree(shard_dir, ignore_errors=True)
        with contextlib.suppress(OSError):  # other sharded inputs may still use it
            os.rmdir(os.path.join(outdir, ".shards"))
    row["elapsed_s"] = time.perf_counter() - started
    if row.get("peak_rss_bytes") is None:
        row["peak_rss_bytes"] = peak_rss_bytes()
    row["finished_ts_ns"] = time.time_ns()
    return row


def _meta(result: ShardResult) -> dict[str, Any]:
    return {"created": result.created, "peak_rss_bytes": result.peak_rss_bytes}


def _vantages(result: ShardResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in result.flows:
        out[f.vantage] = out.get(f.vantage, 0) + 1
    return out
