"""Analyse many captures on a Dask cluster into Parquet datasets, resumably.

Theory of operation
-------------------
``run_batch`` turns PATHS into inputs (:mod:`rstscope.scale.discover`: files,
ring-buffer sibling groups), then submits one task per input to a Dask
cluster (a ``LocalCluster`` of single-threaded worker processes, or an
existing scheduler).  A task hashes the input's bytes (its identity,
:mod:`rstscope.scale.identity`), skips it when that content is already done,
otherwise runs it through one tracker (``rstscope.api.analyze`` over the
ordered file list, so flows survive rotations) and writes its own partitions:

    OUTDIR/resets/input=<id>/part.parquet    one row per RST (ResetRecord)
    OUTDIR/flows/input=<id>/part.parquet     one row per connection (FlowRecord)
    OUTDIR/stalls/input=<id>/part.parquet    one row per stalled flow (StallRecord)
    OUTDIR/summary.parquet                   one row per input (SUMMARY_SCHEMA)

Workers write partitions themselves (write to a temporary name, then
``os.replace``), so results never travel through the scheduler, and a crash
never leaves a half-written partition.  The driver writes the summary after
every few completed inputs and at the end; an input counts as done only when
its summary row says ``ok`` *and* its partition files exist, so a crash
between the two just redoes that input.

Big inputs (``shards=N``, or automatically above ``shard_above_bytes``) take
the sharded path (:mod:`rstscope.scale.sharded`): one streaming pass splits
the packets by flow into N shard files, the shards are tracked in parallel,
flow ids are renumbered to what a single tracker would have given, and each
shard writes ``part-K.parquet`` into the same partitions.

A bad input (not a capture, corrupt, missing) becomes a summary row with
``status = "error"``, its one-line message and the exit code ``rstscope
analyze`` would give; the other inputs go on.  Errored inputs are retried on
the next run (the fault may have been transient).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstscope.core.records import FlowRecord, ResetRecord
from rstscope.core.stalls import StallRecord
from rstscope.errors import (
    OutputError,
    ToolUnavailableError,
    UsageError,
    require,
)
from rstscope.scale.discover import CaptureInput, discover
from rstscope.scale.identity import content_hash, input_id
from rstscope.scale.parquet import (
    partition_dir,
    read_summary,
    write_partition,
    write_summary,
)
from rstscope.scale.rows import base_row, error_row, peak_rss_bytes, stat_of, vantage_text
from rstscope.scale.sharded import submit_sharded
from rstscope.scale.tables import records_table

__all__ = [
    "DEFAULT_SHARD_ABOVE_BYTES",
    "BatchReport",
    "analyze_input",
    "connect",
    "read_summary",
    "run_batch",
    "write_partition",
]

# Inputs bigger than this are sharded by flow when the cluster has more than one
# worker thread.  Below it, one task per file already keeps the workers busy.
DEFAULT_SHARD_ABOVE_BYTES = 2 * 1024**3
DATASETS = ("resets", "flows", "stalls")


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one ``run_batch`` call did."""

    outdir: str
    inputs: int
    analysed: int
    skipped: int
    errors: int
    resets: int  # resets in the inputs analysed by this run
    elapsed_s: float
    rows: tuple[dict[str, Any], ...] = field(repr=False)  # summary rows of this run's inputs
    stalls: int = 0  # stall findings in the inputs analysed by this run (like resets)


def analyze_input(
    inp: CaptureInput,
    outdir: str,
    done: frozenset[str] = frozenset(),
    *,
    vantage: str = "auto",
    batch_size: int = 65536,
) -> dict[str, Any]:
    """The per-input task: hash, skip if done, analyse, write partitions, return the summary row.

    Never raises for a bad input: errors become the row's ``status``/``error``.
    """
    started = time.perf_counter()
    row = base_row(inp, "", 0)
    try:
        row["size_bytes"] = inp.size_bytes
        digest = content_hash(inp.files)
        row.update(content_hash=digest, input=input_id(digest))
        if row["input"] in done:
            row["status"] = "skipped"
            return row
        # lazy: the api loads pandas; the command needs it only when it runs
        from rstscope.api import analyze

        result = analyze(list(inp.files), vantage=vantage, batch_size=batch_size)
        tracker = result.tracker
        flows = tracker.flows()
        resets = tracker.resets()
        stalls = tracker.stalls()
        write_partition(records_table(resets, ResetRecord), outdir, "resets", row["input"])
        write_partition(records_table(flows, FlowRecord), outdir, "flows", row["input"])
        write_partition(records_table(stalls, StallRecord), outdir, "stalls", row["input"])
        stats = result.read_stats
        row.update(
            packets=stat_of(stats, "frames"), tcp_packets=stat_of(stats, "tcp"),
            flows=len(flows), resets=len(resets), stalls=len(stalls),
            vantage=vantage_text(tracker.vantage),
            warnings=[str(w) for w in (getattr(stats, "warnings", None) or [])],
        )
    except Exception as exc:  # noqa: BLE001 - one bad input must not stop the batch
        row = error_row(row, exc)
    row["elapsed_s"] = time.perf_counter() - started
    row["peak_rss_bytes"] = peak_rss_bytes()
    row["finished_ts_ns"] = time.time_ns()
    return row


def _size(inp: CaptureInput) -> int | None:
    try:
        return inp.size_bytes
    except OSError:
        return None


def _is_complete(outdir: str, row: dict[str, Any]) -> bool:
    if row.get("status") != "ok" or not row.get("input"):
        return False
    for ds in DATASETS:
        d = partition_dir(outdir, ds, row["input"])
        if not d.is_dir() or not any(d.glob("*.parquet")):
            return False
    # A sharded input must have all its parts.
    n = int(row.get("shards") or 0)
    if n:
        return all(len(list(partition_dir(outdir, ds, row["input"]).glob("part-*.parquet"))) == n
                   for ds in DATASETS)
    return True


def _drop_partitions(outdir: str, ident: str) -> None:
    for ds in DATASETS:
        shutil.rmtree(partition_dir(outdir, ds, ident), ignore_errors=True)


# -- cluster ------------------------------------------------------------------

@contextmanager
def connect(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask ``Client``: to ``scheduler`` if given, else to a new LocalCluster.

    The LocalCluster runs ``workers`` single-threaded processes (the tracker is
    pure Python + numpy, so threads would share one GIL) and listens on loopback only.
    """
    require("distributed", extra="dask")
    # lazy: the dask extra, needed only when a cluster runs
    import distributed

    # distributed is untyped: go through Any so strict mypy accepts the calls.
    dist: Any = distributed
    if scheduler:
        try:
            client = dist.Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ToolUnavailableError(
                f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise UsageError("--workers must be at least 1")
    # lazy: the dask extra, needed only when a cluster runs
    import dask

    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which freezes glibc's
    # mmap threshold: every batch-sized numpy array is then a fresh mmap, and the
    # tracker spent ~40 % more CPU in page faults (measured: 5.7 vs 4.0 s CPU for
    # 1M packets, 5x the minor faults).  Leave glibc's adaptive default.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = dist.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None)
        client = dist.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


# -- driver -------------------------------------------------------------------

ProgressFn = Callable[[dict[str, Any]], None]


def run_batch(
    paths: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    client: Any,
    vantage: str = "auto",
    group: bool = True,
    shards: int | None = None,
    shard_above_bytes: int | None = DEFAULT_SHARD_ABOVE_BYTES,
    batch_size: int = 65536,
    on_start: Callable[[int], None] | None = None,
    on_done: ProgressFn | None = None,
) -> BatchReport:
    """Analyse every input under PATHS on ``client`` into OUTDIR (see the module docstring).

    Args:
        shards: shard every input into this many flow shards (``--shards``).
        shard_above_bytes: shard inputs larger than this into one shard per worker
            thread (None disables automatic sharding).
        on_start / on_done: progress hooks (number of inputs; each finished row).
    """
    # lazy: the dask extra, needed only when a cluster runs
    import distributed

    as_completed: Any = distributed.as_completed
    started = time.perf_counter()
    out = str(outdir)
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror}") from exc
    if shards is not None and shards < 1:
        raise UsageError("--shards must be at least 1")
    inputs = discover(paths, group=group)
    previous = {r["input"]: r for r in read_summary(out) if r.get("input")}
    done = frozenset(i for i, r in previous.items() if _is_complete(out, r))
    threads = sum(client.nthreads().values()) or 1

    def n_shards_for(inp: CaptureInput) -> int:
        if shards is not None:
            return shards
        if shard_above_bytes is None or threads < 2:
            return 0
        try:
            return threads if inp.size_bytes > shard_above_bytes else 0
        except OSError:
            return 0

    if on_start is not None:
        on_start(len(inputs))

    done_sizes = {previous[i].get("size_bytes") for i in done}
    futures = []
    for inp in inputs:
        n = n_shards_for(inp)
        if n:
            futures.append(client.submit(submit_sharded, inp, out, done, n, vantage=vantage,
                                         batch_size=batch_size,
                                         hash_first=_size(inp) in done_sizes, pure=False))
        else:
            futures.append(client.submit(analyze_input, inp, out, done, vantage=vantage,
                                         batch_size=batch_size, pure=False))
    index = {f.key: inp for f, inp in zip(futures, inputs, strict=True)}

    rows = dict(previous)
    run_rows: list[dict[str, Any]] = []
    last_write = time.monotonic()
    for fut in as_completed(futures):
        inp = index[fut.key]
        try:
            row = fut.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: record and go on
            row = error_row(base_row(inp, "", 0), exc)
        if row["status"] == "skipped":
            prev = previous.get(row["input"], {})
            run_rows.append({**prev, **{k: row[k] for k in ("name", "files", "scheme")},
                             "status": "skipped"})
        else:
            # The same paths with other content (the file changed): drop the stale partition.
            for ident, old in list(rows.items()):
                if old.get("files") == row["files"] and ident != row["input"]:
                    _drop_partitions(out, ident)
                    del rows[ident]
            if row["input"]:
                rows[row["input"]] = row
            else:  # unhashable input (missing/unreadable): keyed by its name
                rows["error:" + row["name"]] = row
            run_rows.append(row)
        if on_done is not None:
            on_done(run_rows[-1])
        if time.monotonic() - last_write > 5.0:
            write_summary(out, list(rows.values()))
            last_write = time.monotonic()
    write_summary(out, list(rows.values()))
    return BatchReport(
        outdir=out,
        inputs=len(inputs),
        analysed=sum(1 for r in run_rows if r["status"] == "ok"),
        skipped=sum(1 for r in run_rows if r["status"] == "skipped"),
        errors=sum(1 for r in run_rows if r["status"] == "error"),
        resets=sum(int(r.get("resets") or 0) for r in run_rows if r["status"] == "ok"),
        elapsed_s=time.perf_counter() - started,
        rows=tuple(run_rows),
        stalls=sum(int(r.get("stalls") or 0) for r in run_rows if r["status"] == "ok"),
    )
