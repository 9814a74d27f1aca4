"""Speed-up of ``rstscope batch`` with 2 Dask workers over 1, and per-worker memory.

Two workloads, generated with ``benchmarks/make_capture.py`` (deterministic):

* many small files: ``--files`` captures of ``--small`` packets each (distinct seeds);
* one big file: ``--big`` packets, sharded by flow into one shard per worker.

For each, the wall time of ``run_batch`` on a fresh LocalCluster of 1 and of 2
single-threaded worker processes (cluster start-up excluded, reported
separately), the single-process ``rstscope.api.analyze`` time for reference,
and the peak RSS of the worker processes (from the summary's
``peak_rss_bytes``).  ``--mem-sizes`` additionally shards captures of several
sizes with 2 workers to show that worker memory follows flow state, not file
size.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_scale.py --workdir bench-scale-work
    .venv/bin/python benchmarks/bench_scale.py --files 24 --small 40000 --big 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "benchmarks" / "make_capture.py"


def make(n: int, path: Path, seed: int) -> Path:
    if not path.exists():
        cmd = [sys.executable, str(GEN), str(n), str(path), "--seed", str(seed)]
        subprocess.run(cmd, check=True, capture_output=True)
    return path


def timed_batch(paths: list[Path], out: Path, workers: int, **kw: Any) -> dict[str, Any]:
    from rstscope.scale.batch import connect, read_summary, run_batch

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with connect(workers=workers) as client:
        t1 = time.perf_counter()
        cpu0 = client.run(_cpu_s)
        report = run_batch(paths, out, client=client, group=False, **kw)
        t2 = time.perf_counter()
        cpu1 = client.run(_cpu_s)
    rows = read_summary(out)
    assert report.errors == 0, [r["error"] for r in rows if r["status"] == "error"]
    return {
        "startup_s": t1 - t0,
        "run_s": t2 - t1,
        "resets": report.resets,
        "peak_rss_mb": max((r["peak_rss_bytes"] or 0) for r in rows) / 2**20,
        # CPU seconds each worker process spent in the run: on a shared machine the
        # wall-time speed-up depends on other load, the CPU split does not.
        "cpu_s": sorted(round(cpu1[w] - cpu0[w], 1) for w in cpu1),
    }


def _cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sequential(paths: list[Path]) -> float:
    """Single process, no Dask: analyze() each file in turn (in a fresh interpreter)."""
    code = ("import sys, time\nfrom rstscope.api import analyze\nt = time.perf_counter()\n"
            "for p in sys.argv[1:]:\n    analyze(p).tracker.resets()\n"
            "print(time.perf_counter() - t)\n")
    res = subprocess.run([sys.executable, "-c", code, *map(str, paths)], check=True,
                         capture_output=True, text=True)
    return float(res.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("bench-scale-work"))
    ap.add_argument("--files", type=int, default=16, help="number of small files")
    ap.add_argument("--small", type=int, default=50_000, help="packets per small file")
    ap.add_argument("--big", type=int, default=1_000_000, help="packets in the big file")
    ap.add_argument("--mem-sizes", default="", help="comma list of packet counts, e.g. 1e6,4e6")
    ap.add_argument("--keep", action="store_true", help="keep the generated captures")
    args = ap.parse_args()
    if not GEN.exists():
        sys.exit("benchmarks/make_capture.py is missing")
    w = args.workdir
    w.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")

    if args.files:
        small_files(args, w)
    if args.big:
        big_file(args, w)
    if args.mem_sizes:
        memory(args, w)
    if not args.keep:
        shutil.rmtree(w, ignore_errors=True)


def small_files(args: argparse.Namespace, w: Path) -> None:
    small = [make(args.small, w / f"small-{i:03d}.pcap", 100 + i) for i in range(args.files)]
    mb = sum(p.stat().st_size for p in small) / 1e6
    print(f"\nmany small files: {args.files} x {args.small} packets ({mb:.0f} MB)")
    seq = sequential(small)
    print(f"  single process (api.analyze loop): {seq:6.2f} s")
    res = {n: timed_batch(small, w / f"out-small-{n}", n) for n in (1, 2)}
    for n, r in res.items():
        print(f"  batch, {n} worker(s): {r['run_s']:6.2f} s  (cluster start {r['startup_s']:.1f} s,"
              f" worker CPU s {r['cpu_s']}, peak worker RSS {r['peak_rss_mb']:.0f} MiB,"
              f" {r['resets']} resets)")
    print(f"  speed-up 2 vs 1 worker: {res[1]['run_s'] / res[2]['run_s']:.2f}x")



def big_file(args: argparse.Namespace, w: Path) -> None:
    big = make(args.big, w / "big.pcap", 1)
    print(f"\none big file: {args.big} packets ({big.stat().st_size / 1e6:.0f} MB)")
    seq = sequential([big])
    print(f"  single process (api.analyze): {seq:6.2f} s")
    res = {n: timed_batch([big], w / f"out-big-{n}", n, shards=n if n > 1 else None,
                          shard_above_bytes=None) for n in (1, 2)}
    for n, r in res.items():
        how = f"{n} shards" if n > 1 else "whole"
        print(f"  batch, {n} worker(s), {how}: {r['run_s']:6.2f} s  (worker CPU s {r['cpu_s']}, "
              f"peak worker RSS {r['peak_rss_mb']:.0f} MiB, {r['resets']} resets)")
    print(f"  speed-up 2 vs 1 worker: {res[1]['run_s'] / res[2]['run_s']:.2f}x")



def memory(args: argparse.Namespace, w: Path) -> None:
    print("\nworker memory vs file size (2 workers, 2 shards):")
    for text in args.mem_sizes.split(","):
        n = int(float(text))
        cap = make(n, w / f"mem-{n}.pcap", 3)
        r = timed_batch([cap], w / f"out-mem-{n}", 2, shards=2)
        print(f"  {n:>10} packets {cap.stat().st_size / 1e9:5.2f} GB: {r['run_s']:6.1f} s, "
              f"peak worker RSS {r['peak_rss_mb']:.0f} MiB, {r['resets']} resets")
        if not args.keep:
            cap.unlink()


if __name__ == "__main__":
    main()
