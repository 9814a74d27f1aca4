"""Benchmark: every ratio of the speed issue, against its peer, in one run.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_analyze.py --packets 1000000 --payload tls,zeros \
        --nfstream-python nfs-venv/bin/python --repeat 3

For each generated capture (``benchmarks/make_capture.py``; with TLS record
headers in the first records, and the same packets with all-zero payload, as
the performance anchors' reference file had) it runs, each as its own
process, with the same warm-up and the same number of runs (see
``benchmarks/harness.py``):

- ``tcpdump -r FILE -w /dev/null`` (the libpcap floor);
- ``rstscope analyze FILE --format json -o ...`` (the real command);
- ``rstscope report FILE -o ...``;
- ``read_packets(FILE)`` to a pandas DataFrame, with its peak RSS over the
  imports against the size of the columns;
- ``one flow``: the packets of one flow through the analysis pass' sparse
  index and by a full pass, CPU time in-process;
- ``read + track``: reader and tracker without the output stage, with a CPU split;
- ``tshark -T fields`` exporting the fields rstscope's reader decodes;
- NFStream's flow export, in the interpreter you name (install it into a
  throwaway venv, never the project's).

It prints min and median wall and CPU time and peak RSS per tool, then each
ratio of the issue (analyze against tcpdump, tshark and NFStream; report and
read_packets against analyze), on the medians and on the minima, with the
generator's parameters and the load average.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from harness import Timing, loadavg, measure_capture, tshark_fields_cmd

ROOT = Path(__file__).resolve().parent.parent


def make_capture(n: int, path: Path, payload: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_capture.py"), str(n),
                    str(path), "--payload", payload, "--params"], check=True)


ANALYZE = """
import sys, time
t0 = time.process_time()
from rstscope.catalog import load_timeouts
from rstscope.core import Tracker, TrackerConfig
from rstscope.ingest import open_capture
t_imp = time.process_time() - t0
tr = Tracker(TrackerConfig(timeouts=load_timeouts(), settle_s=float(sys.argv[2])))
t_read = t_track = 0.0
with open_capture(sys.argv[1]) as rd:
    it = iter(rd)
    while True:
        a = time.process_time()
        b = next(it, None)
        c = time.process_time()
        t_read += c - a
        if b is None:
            break
        tr.feed(b)
        t_track += time.process_time() - c
a = time.process_time()
tr.finish()
t_track += time.process_time() - a
s = tr.stats
print(f"{s.packets} packets, {s.flows} flows, {s.resets} resets, "
      f"{s.packet_path} per-packet + {s.bulk_path} bulk; CPU s: "
      f"imports {t_imp:.2f}, read {t_read:.2f}, tracker {t_track:.2f}")
"""


NFSTREAM = """
import sys
from nfstream import NFStreamer
n = sum(1 for _ in NFStreamer(source=sys.argv[1], statistical_analysis=False))
print(n, "flows")
"""

READ_PACKETS = """
import resource, sys
import pandas
from rstscope.ingest import read_packets
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
base = rss_mib()
df = read_packets(sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cols = sum(int(df[c].memory_usage(index=False, deep=True)) for c in df.columns) / 2**20
print(f"{len(df)} rows, {cols:.0f} MiB of columns; RSS {base:.0f} MiB after imports, "
      f"peak {peak:.0f} MiB: {peak - base:.0f} MiB over the imports = "
      f"{(peak - base) / cols:.2f}x the columns (target <= 1.5x)")
"""

# Packets of one flow (Analysis.packets for one flow): through the analysis pass'
# sparse index, and by the full streaming pass it replaced; CPU time in-process.
ONE_FLOW = """
import sys, time
from rstscope.api import analyze
from rstscope.flowpackets import FlowPackets
a = analyze(sys.argv[1])
flows = {f.flow_id: f for f in a.typed_flows()}
wanted = [flows[r.flow_id] for r in a.typed_resets()[:5]] or list(flows.values())[:5]
indexed, full = a.flow_packets, FlowPackets(a.source, index=None)
indexed.of_flows(wanted[:1])  # imports pandas
idx = a.packet_index
t = time.process_time()
n = sum(len(indexed.of_flows([f])) for f in wanted)
t_idx = (time.process_time() - t) / len(wanted)
t = time.process_time()
m = sum(len(full.of_flows([f])) for f in wanted)
t_full = (time.process_time() - t) / len(wanted)
assert n == m
spans = sum(len(idx.select([(f.orig_p, f.resp_p)], f.first_ts_ns, f.last_ts_ns))
            for f in wanted) / len(wanted)
print(f"one flow's packets, mean of {len(wanted)} reset flows: indexed {t_idx * 1000:.0f} ms CPU "
      f"({spans:.1f} of {len(idx.spans)} batches, index {idx.nbytes / 1e6:.2f} MB), "
      f"full pass {t_full * 1000:.0f} ms CPU: {t_full / t_idx:.0f}x")
"""

# (name, peer, how): "faster" = the peer's time over rstscope's, "within" = ours over
# the peer's.  Targets from the speed issues.
RATIOS = (
    ("rstscope analyze", "tcpdump -r -w /dev/null", "within", 3.0),
    ("rstscope analyze", "tshark -T fields", "faster", 25.0),
    ("rstscope analyze", "NFStream", "faster", 4.0),
    ("rstscope report", "rstscope analyze", "within", 1.5),
    ("read_packets", "rstscope analyze", "within", None),
)


def commands(cap: Path, tmp: str, args: argparse.Namespace) -> dict[str, list[str]]:
    py = sys.executable
    cmds = {
        "tcpdump -r -w /dev/null": ["tcpdump", "-r", str(cap), "-w", "/dev/null"],
        "rstscope analyze": [py, "-m", "rstscope", "analyze", str(cap), "--format", "json",
                             "-o", str(Path(tmp) / "out.json")],
        "rstscope report": [py, "-m", "rstscope", "report", str(cap), "-o",
                            str(Path(tmp) / "report.html")],
        "read_packets": [py, "-c", READ_PACKETS, str(cap)],
        "  read + track": [py, "-c", ANALYZE, str(cap), str(args.settle_s)],
        "  one flow": [py, "-c", ONE_FLOW, str(cap)],
    }
    if not args.skip_tshark:
        cmds["tshark -T fields"] = tshark_fields_cmd(str(cap), seq_analysis=True)
    if args.nfstream_python:
        cmds["NFStream"] = [args.nfstream_python, "-c", NFSTREAM, str(cap)]
    if args.only:
        keep = set(args.only.split(","))
        cmds = {k: v for k, v in cmds.items() if keep.intersection(k.split()) or k.strip() in keep}
    return cmds


def report(res: dict[str, Timing]) -> None:
    print("| tool | wall min | wall median | CPU min | CPU median | peak RSS | runs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, t in res.items():
        print(f"| {name.strip()} | {t.wall_min:.2f} s | {t.wall_med:.2f} s | {t.cpu_min:.2f} s | "
              f"{t.cpu_med:.2f} s | {t.rss_mib:.0f} MiB | {len(t.walls)} |")
    print()
    print("| ratio | median wall | median CPU | min wall | min CPU | target |")
    print("|---|---:|---:|---:|---:|---|")
    for ours, peer, how, bound in RATIOS:
        if ours not in res or peer not in res:
            continue
        a, b = res[ours], res[peer]
        if how == "faster":
            vals = (b.wall_med / a.wall_med, b.cpu_med / a.cpu_med, b.wall_min / a.wall_min,
                    b.cpu_min / a.cpu_min)
            label = f"{ours} faster than {peer}"
            goal = f">= {bound:g}x" if bound else ""
            met = bound is not None and min(vals[:2]) >= bound
        else:
            vals = (a.wall_med / b.wall_med, a.cpu_med / b.cpu_med, a.wall_min / b.wall_min,
                    a.cpu_min / b.cpu_min)
            label = f"{ours} / {peer}"
            goal = f"<= {bound:g}x" if bound else ""
            met = bound is not None and max(vals[:2]) <= bound
        verdict = "" if bound is None else (": met" if met else ": **not met**")
        print(f"| {label} | " + " | ".join(f"{v:.2f}x" for v in vals) + f" | {goal}{verdict} |")
    for name in ("  read + track", "read_packets", "  one flow", "NFStream"):
        if name in res:
            print(f"{name.strip()}: {res[name].out.splitlines()[-1] if res[name].out else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--payload", default="tls,zeros",
                    help="generated captures: tls, zeros or both (comma-separated)")
    ap.add_argument("--capture", type=Path, action="append",
                    help="use this capture (repeatable) instead of generating")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    ap.add_argument("--repeat", type=int, default=3, help="measured runs of every tool")
    ap.add_argument("--settle-s", type=float, default=0.5)
    ap.add_argument("--skip-tshark", action="store_true")
    ap.add_argument("--nfstream-python", help="interpreter of a throwaway venv with nfstream")
    ap.add_argument("--only", help="comma list of tools (e.g. tcpdump,analyze,report)")
    args = ap.parse_args()
    caps = list(args.capture or [])
    if not caps:
        args.out.mkdir(parents=True, exist_ok=True)
        for payload in args.payload.split(","):
            cap = args.out / f"bench-{args.packets}-{payload}.pcap"
            if not cap.exists() or not Path(f"{cap}.params.json").exists():
                t = time.perf_counter()
                make_capture(args.packets, cap, payload)
                print(f"generated {cap.name} in {time.perf_counter() - t:.1f} s")
            caps.append(cap)
    print(f"load average before: {loadavg()}")
    for cap in caps:
        measure_capture(cap, args.repeat, lambda c, tmp: commands(c, tmp, args), report)


if __name__ == "__main__":
    main()
