"""Time rstscope's reader against tshark, dpkt, scapy and tcpdump on the same capture.

    python benchmarks/bench_read.py CAPTURE [CAPTURE ...] [--repeat 3] [--scapy-sample 50000]
                                    [--only rstscope,tcpdump]

Every tool runs as its own process (start-up included), in the same run, on a
file already in the page cache (one unmeasured warm-up read first).  Reported:
median wall time, packets/s, peak RSS of that process (``ru_maxrss`` from
``wait4``), and each tool's time relative to rstscope's.  All tools extract
the same per-packet fields (times, addresses, TTL, IP ID, ports, seq/ack,
flags, window, payload length, MSS/wscale/timestamps).

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
import time

FIELDS = ["frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ip.ttl", "ip.id",
          "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
          "tcp.window_size_value", "tcp.len", "tcp.options.mss_val",
          "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
          "tcp.options.timestamp.tsecr"]

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


def run(argv: list[str], stdout: int | None = subprocess.PIPE) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of one child process."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.DEVNULL, text=True)
    out = p.stdout.read() if p.stdout else ""
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with {p.returncode}")
    return wall, ru.ru_maxrss, out


def count_packets(path: str) -> int:
    out = subprocess.run(["capinfos", "-T", "-r", "-c", path], capture_output=True, text=True,
                         check=True).stdout
    return int(out.split()[-1])


def bench(path: str, repeat: int, sample: int, only: set[str] | None) -> list[dict]:
    py = sys.executable
    n = count_packets(path)
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)  # warm the cache
    tshark_cmd = ["tshark", "-n", "-r", path, "-o", "tcp.analyze_sequence_numbers:FALSE",
                  "-T", "fields"]
    for f in FIELDS:
        tshark_cmd += ["-e", f]
    tools = {
        "rstscope": ([py, "-c", RSTSCOPE, path], repeat),
        "tcpdump -w /dev/null": (["tcpdump", "-r", path, "-w", "/dev/null"], repeat),
        "tshark -T fields": (tshark_cmd, 1),
        "dpkt": ([py, "-c", DPKT, path], 1),
        "scapy PcapReader": ([py, "-c", SCAPY, path, str(sample)], 1),
    }
    rows = []
    for name, (argv, reps) in tools.items():
        if only and name.split()[0] not in only:
            continue
        walls, rss, note = [], [], ""
        for _ in range(reps):
            devnull = subprocess.DEVNULL if name.startswith(("tshark", "tcpdump")) else None
            w, m, out = run(argv, stdout=devnull if devnull is not None else subprocess.PIPE)
            if name.startswith("scapy"):
                got, _r, startup, loop = out.split()
                w = float(startup) + float(loop) * n / int(got) + (w - float(startup)
                                                                   - float(loop))
                note = f"extrapolated from the first {int(got):,} packets"
            walls.append(w)
            rss.append(m)
        rows.append({"tool": name, "wall_s": statistics.median(walls), "runs": reps,
                     "rss_mib": max(rss) / 1024, "note": note, "packets": n})
    base = next((r["wall_s"] for r in rows if r["tool"] == "rstscope"), None)
    for r in rows:
        r["pps"] = r["packets"] / r["wall_s"]
        r["vs_rstscope"] = r["wall_s"] / base if base else float("nan")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("captures", nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scapy-sample", type=int, default=50000)
    ap.add_argument("--only", help="comma list of tools: rstscope,tcpdump,tshark,dpkt,scapy")
    a = ap.parse_args(argv)
    only = set(a.only.split(",")) if a.only else None
    for path in a.captures:
        rows = bench(path, a.repeat, a.scapy_sample, only)
        print(f"\n{os.path.basename(path)}: {rows[0]['packets']:,} packets, "
              f"{os.path.getsize(path) / 1e6:,.1f} MB\n")
        print("| tool | wall (median) | packets/s | peak RSS | time / rstscope's | note |")
        print("|---|---:|---:|---:|---:|---|")
        for r in rows:
            print(f"| {r['tool']} | {r['wall_s']:.2f} s ({r['runs']} run(s)) | "
                  f"{r['pps'] / 1e3:,.0f} k | {r['rss_mib']:.0f} MiB | "
                  f"{r['vs_rstscope']:.2f}x | {r['note']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
