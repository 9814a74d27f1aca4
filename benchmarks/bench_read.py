"""Time rstscope's reader against tshark, dpkt, scapy and tcpdump on the same capture.

    python benchmarks/bench_read.py CAPTURE [CAPTURE ...] [--repeat 3] [--scapy-sample 50000]
                                    [--only rstscope,tcpdump]

Every tool runs as its own process (start-up included), in the same run, on a
file already in the page cache, with the same warm-up (one unmeasured run of
each tool) and the same number of measured runs, interleaved (see
``benchmarks/harness.py``).  Reported: min and median wall time, min and
median CPU time (user + sys of that process, from ``wait4``; steadier than
wall time when other jobs share the cores), packets/s, peak RSS
(``ru_maxrss``), each tool's time relative to rstscope's, and the issue-2
targets (>= 20x tshark, >= 200x scapy, <= 4x tcpdump, RSS < 400 MB) checked
on both wall and CPU time.  All tools extract the same per-packet fields
(tshark: ``harness.TSHARK_FIELDS``, the reader's columns, TLS record type
included).

scapy is too slow to run on a whole large file: it reads the first
``--scapy-sample`` packets and the time is extrapolated as
start-up + loop time x (packets / sample); the table says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Any

from harness import loadavg, measure, params_line, tshark_fields_cmd

RSTSCOPE = """
import sys
from rstscope.ingest import open_capture
n = r = 0
with open_capture(sys.argv[1]) as rd:
    for b in rd:
        n += len(b)
print(n, rd.stats.rst)
"""

DPKT = """
import sys, dpkt
n = r = 0
with open(sys.argv[1], 'rb') as f:
    ng = f.read(4) == b'\\n\\r\\r\\n'
    f.seek(0)
    rd = dpkt.pcapng.Reader(f) if ng else dpkt.pcap.Reader(f)
    for ts, buf in rd:
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP):
            continue
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        row = (ts, ip.src, ip.dst, ip.ttl, ip.id, tcp.sport, tcp.dport, tcp.seq, tcp.ack,
               tcp.flags, tcp.win, len(tcp.data), dpkt.tcp.parse_opts(tcp.opts))
        n += 1
        r += bool(tcp.flags & dpkt.tcp.TH_RST)
print(n, r)
"""

SCAPY = """
import sys, time
t0 = time.perf_counter()
from scapy.utils import PcapReader
from scapy.layers.inet import IP, TCP
limit = int(sys.argv[2])
n = r = 0
t1 = time.perf_counter()
with PcapReader(sys.argv[1]) as rd:
    for pkt in rd:
        if TCP in pkt:
            ip, tcp = pkt[IP], pkt[TCP]
            row = (pkt.time, ip.src, ip.dst, ip.ttl, ip.id, tcp.sport, tcp.dport, tcp.seq,
                   tcp.ack, int(tcp.flags), tcp.window, len(tcp.payload), tcp.options)
            r += bool(int(tcp.flags) & 4)
        n += 1
        if n >= limit:
            break
t2 = time.perf_counter()
print(n, r, t1 - t0, t2 - t1)
"""


def count_packets(path: str) -> int:
    out = subprocess.run(["capinfos", "-T", "-r", "-c", path], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[-1])


def bench(path: str, repeat: int, sample: int, only: set[str] | None) -> list[dict[str, Any]]:
    py = sys.executable
    n = count_packets(path)
    tools = {
        "rstscope": [py, "-c", RSTSCOPE, path],
        "tcpdump -w /dev/null": ["tcpdump", "-r", path, "-w", "/dev/null"],
        "tshark -T fields": tshark_fields_cmd(path, seq_analysis=False),
        "dpkt": [py, "-c", DPKT, path],
        "scapy PcapReader": [py, "-c", SCAPY, path, str(sample)],
    }
    if only:
        tools = {k: v for k, v in tools.items() if k.split()[0] in only}
    res = measure(tools, repeat)
    rows: list[dict[str, Any]] = []
    for name, t in res.items():
        walls, cpus, note = list(t.walls), list(t.cpus), ""
        if name.startswith("scapy"):
            got, _r, startup, loop = t.out.split()
            # Extrapolated from the sample: start-up + loop time x (packets / sample); the
            # CPU time is not split by phase inside the child, so it scales alike.
            scale = n / int(got)
            factor = (float(startup) + float(loop) * scale) / (float(startup) + float(loop))
            walls = [w * factor for w in walls]
            cpus = [c * factor for c in cpus]
            note = f"extrapolated from the first {int(got):,} packets"
        rows.append({"tool": name, "wall_s": statistics.median(walls), "wall_min": min(walls),
                     "cpu_s": statistics.median(cpus), "cpu_min": min(cpus), "runs": len(walls),
                     "rss_mib": t.rss_mib, "note": note, "packets": n})
    base = next((r for r in rows if r["tool"] == "rstscope"), None)
    for r in rows:
        r["pps"] = r["packets"] / r["wall_s"]
        r["vs_rstscope"] = r["wall_s"] / base["wall_s"] if base else float("nan")
        r["cpu_vs_rstscope"] = r["cpu_s"] / base["cpu_s"] if base else float("nan")
    return rows


# Issue 2: (tool, how rstscope must compare, bound).  "faster": the tool's time over
# rstscope's must be >= bound; "within": rstscope's time over the tool's must be <= bound.
TARGETS = (("tshark -T fields", "faster", 20.0), ("scapy PcapReader", "faster", 200.0),
           ("tcpdump -w /dev/null", "within", 4.0))
RSS_LIMIT_MB = 400


def targets(rows: list[dict[str, Any]]) -> list[str]:
    by = {r["tool"]: r for r in rows}
    me = by.get("rstscope")
    if me is None:
        return []
    lines = ["| target | wall ratio | CPU ratio | met |", "|---|---:|---:|---|"]
    for tool, how, bound in TARGETS:
        r = by.get(tool)
        if r is None:
            continue
        if how == "faster":
            rw, rc = r["wall_s"] / me["wall_s"], r["cpu_s"] / me["cpu_s"]
            ok = rw >= bound and rc >= bound
            label = f">= {bound:g}x faster than {tool}"
        else:
            rw, rc = me["wall_s"] / r["wall_s"], me["cpu_s"] / r["cpu_s"]
            ok = rw <= bound and rc <= bound
            label = f"within {bound:g}x of {tool}"
        lines.append(f"| {label} | {rw:.2f}x | {rc:.2f}x | {'yes' if ok else '**no**'} |")
    mb = me["rss_mib"] * 1.048576
    lines.append(f"| peak RSS < {RSS_LIMIT_MB} MB | {mb:.0f} MB | | "
                 f"{'yes' if mb < RSS_LIMIT_MB else '**no**'} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scapy-sample", type=int, default=50000)
    ap.add_argument("--only", help="comma list of tools: rstscope,tcpdump,tshark,dpkt,scapy")
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    print(f"load average before: {loadavg()}")
    for path in a.captures:
        rows = bench(path, a.repeat, a.scapy_sample, only)
        print(f"\n{os.path.basename(path)}: {rows[0]['packets']:,} packets, "
              f"{os.path.getsize(path) / 1e6:,.1f} MB; {params_line(path)}")
        print(f"one warm-up run and {a.repeat} measured runs of every tool, interleaved\n")
        print("| tool | wall median (min) | CPU user+sys median (min) | packets/s | peak RSS | "
              "wall / rstscope's | CPU / rstscope's | note |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for r in rows:
            print(f"| {r['tool']} | {r['wall_s']:.2f} s ({r['wall_min']:.2f}) | "
                  f"{r['cpu_s']:.2f} s ({r['cpu_min']:.2f}) | {r['pps'] / 1e3:,.0f} k | "
                  f"{r['rss_mib']:.0f} MiB | "
                  f"{r['vs_rstscope']:.2f}x | {r['cpu_vs_rstscope']:.2f}x | {r['note']} |")
        lines = targets(rows)
        if lines:
            print()
            print("\n".join(lines))
        print(f"\nload average at the end: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
