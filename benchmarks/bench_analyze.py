"""Benchmark: rstscope analyze (ingest + core tracker) vs tshark fields export and NFStream.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_analyze.py --packets 1000000
    .venv/bin/python benchmarks/bench_analyze.py --nfstream-python /path/to/venv/bin/python

Every tool runs as its own process; the table gives the median wall time and the
median CPU time (user + sys, from ``wait4``) of each, and their ratios to
``rstscope analyze`` (the CLI, process start and JSON output included).  On a
shared machine the CPU ratio is the steadier figure.

The capture comes from ``benchmarks/make_capture.py`` when that generator is
present (the ingestion benchmark's), else from the small deterministic writer
below: port-443 flows with handshakes, request/response exchanges, idle gaps,
FIN closes and ~2 % RST endings (server aborts and injected RSTs).  Timings are
whole runs, median of ``--repeat`` runs after one warm-up; NFStream runs in the
interpreter you name (install it into a throwaway venv, never the project's).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rstscope.wire import pcap

ROOT = Path(__file__).resolve().parent.parent

TSHARK_FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ip.dst", "ip.ttl", "ip.id",
                 "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
                 "tcp.window_size_value", "tcp.len")


def synth_capture(n_packets: int, path: Path, seed: int = 443) -> None:
    """Write a classic pcap (Ethernet, snaplen 96: headers only) with ~n_packets."""
    rnd = random.Random(seed)
    n_flows = max(1, n_packets // 200)
    span_s = n_packets / 700.0
    out = bytearray(pcap.file_header(1, 96, nanos=False, endian="<"))
    eth = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    events: list[tuple[float, bytes, int]] = []

    def seg(t: float, src: bytes, dst: bytes, sp: int, dp: int, seq: int, ack: int,
            flags: int, plen: int, ttl: int, ipid: int, win: int = 502) -> None:
        iplen = 20 + 20 + plen
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, iplen, ipid & 0xFFFF, 0x4000, ttl, 6, 0,
                         src, dst)
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50,
                          flags, win, 0, 0)
        events.append((t, eth + ip + tcp, 14 + iplen))

    for i in range(n_flows):
        c = bytes([198, 51, 100, 1 + i % 250])
        s = bytes([203, 0, 113, 1 + (i * 7) % 250])
        cp, sp = 20000 + i % 40000, 443
        t = rnd.uniform(0, span_s * 0.8)
        rtt = rnd.uniform(0.005, 0.08)
        sttl = rnd.choice((64, 128)) - rnd.randint(5, 24)
        cs, ss = rnd.getrandbits(32), rnd.getrandbits(32)
        cid, sid = rnd.getrandbits(16), rnd.getrandbits(16)
        seg(t, c, s, cp, sp, cs, 0, 0x02, 0, 64, cid)
        cs += 1
        cid += 1
        t += rtt
        seg(t, s, c, sp, cp, ss, cs, 0x12, 0, sttl, sid)
        ss += 1
        sid += 1
        t += 0.0005
        seg(t, c, s, cp, sp, cs, ss, 0x10, 0, 64, cid)
        cid += 1
        pkts = 3
        while pkts < 190:
            if rnd.random() < 0.02:
                t += rnd.uniform(30, 400)
            req = rnd.choice((200, 500, 1200))
            seg(t, c, s, cp, sp, cs, ss, 0x18, req, 64, cid)
            cs += req
            cid += 1
            t += rtt
            for _ in range(rnd.randint(3, 8)):
                seg(t, s, c, sp, cp, ss, cs, 0x10, 1448, sttl, sid)
                ss += 1448
                sid += 1
                t += 0.0002
                pkts += 1
            seg(t, c, s, cp, sp, cs, ss, 0x10, 0, 64, cid)
            cid += 1
            t += rnd.uniform(0.01, 2.0)
            pkts += 2
        if i % 50 == 0:
            seg(t, s, c, sp, cp, ss, cs, 0x14, 0, sttl, sid)  # server abort
        elif i % 50 == 1:
            for k in range(3):  # injected: other TTL, unrelated IP ID, stepped seq
                seg(t + 0.001 * k, s, c, sp, cp, ss + 1460 * k, cs, 0x04, 0, 47, 999 + k)
        else:
            seg(t, c, s, cp, sp, cs, ss, 0x11, 0, 64, cid)
            cid += 1
            t += rtt
            seg(t, s, c, sp, cp, ss, cs + 1, 0x11, 0, sttl, sid)
            t += 0.0005
            seg(t, c, s, cp, sp, cs + 1, ss + 1, 0x10, 0, 64, cid)
    events.sort(key=lambda e: e[0])
    t0 = 1_700_000_000.0
    for t, frame, wire_len in events:
        ts = t0 + t
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        cap = frame[:96]
        out += struct.pack("<IIII", sec, usec, len(cap), wire_len) + cap
    path.write_bytes(bytes(out))


def make_capture(n: int, path: Path) -> str:
    gen = ROOT / "benchmarks" / "make_capture.py"
    if gen.exists():
        res = subprocess.run([sys.executable, str(gen), str(n), str(path)],
                             capture_output=True, text=True)
        if res.returncode == 0 and path.exists():
            return "benchmarks/make_capture.py"
        print(f"make_capture.py failed ({res.stderr.strip()[:200]}); using the built-in writer")
    synth_capture(n, path)
    return "built-in writer"


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


@dataclass(frozen=True, slots=True)
class Timing:
    wall_s: float  # median
    cpu_s: float  # median user+sys of the process and the children it waited for
    runs: int
    out: str


def run_once(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, user+sys CPU s, stdout tail) of one run of cmd."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, ru = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed: {err.read().decode(errors='replace')[-300:]}")
        text = out.read().decode(errors="replace").strip()
    return elapsed, ru.ru_utime + ru.ru_stime, text[-300:]


def interleaved(cmds: dict[str, list[str]], repeat: dict[str, int]) -> dict[str, Timing]:
    """Median wall and CPU time per command; runs are interleaved (A B C A B C ...)
    so that load from other processes on a shared machine hits all tools alike."""
    # Warm-up (page cache, compiled imports); the slow tools read the same file.
    subprocess.run(next(iter(cmds.values())), capture_output=True)
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    outs: dict[str, str] = {}
    for i in range(max(repeat.values())):
        for name, cmd in cmds.items():
            if i < repeat[name]:
                w, c, outs[name] = run_once(cmd)
                walls[name].append(w)
                cpus[name].append(c)
    return {k: Timing(statistics.median(walls[k]), statistics.median(cpus[k]), len(walls[k]),
                      outs[k]) for k in cmds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--capture", type=Path, help="use this capture instead of generating one")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-out")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slow-repeat", type=int, default=1,
                    help="runs of tshark and NFStream (each takes many times longer)")
    ap.add_argument("--settle-s", type=float, default=0.5)
    ap.add_argument("--skip-tshark", action="store_true")
    ap.add_argument("--nfstream-python", help="interpreter of a throwaway venv with nfstream")
    args = ap.parse_args()
    if args.capture:
        cap = args.capture
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        cap = args.out / f"bench-{args.packets}.pcap"
        if not cap.exists():
            t = time.perf_counter()
            how = make_capture(args.packets, cap)
            print(f"capture: {cap.name} from {how} in {time.perf_counter() - t:.1f} s")
    print(f"capture: {cap.name} ({cap.stat().st_size / 1e6:.1f} MB)")
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {
            # The real command, process start and JSON output included.
            "rstscope analyze": [sys.executable, "-m", "rstscope", "analyze", str(cap),
                                 "--format", "json", "-o", str(Path(tmp) / "out.json")],
            # Reader + tracker only, with a CPU breakdown.
            "  read + track": [sys.executable, "-c", ANALYZE, str(cap), str(args.settle_s)],
        }
        repeat = {k: args.repeat for k in cmds}
        if not args.skip_tshark:
            tshark = ["tshark", "-r", str(cap), "-T", "fields"]
            for f in TSHARK_FIELDS:
                tshark += ["-e", f]
            cmds["tshark -T fields"] = tshark
            repeat["tshark -T fields"] = args.slow_repeat
        if args.nfstream_python:
            cmds["NFStream"] = [args.nfstream_python, "-c", NFSTREAM, str(cap)]
            repeat["NFStream"] = args.slow_repeat
        res = interleaved(cmds, repeat)
    rs = res["rstscope analyze"]
    print(f"{'tool':18} {'wall s':>8} {'CPU s':>8} {'runs':>4}  {'wall ratio':>10} "
          f"{'CPU ratio':>9}  target")
    targets = {"tshark -T fields": ">= 10x", "NFStream": ">= 2x"}
    for name, t in res.items():
        ratio = "" if name.startswith(("rstscope", " ")) else \
            f"{t.wall_s / rs.wall_s:9.1f}x {t.cpu_s / rs.cpu_s:8.1f}x"
        print(f"{name:18} {t.wall_s:8.2f} {t.cpu_s:8.2f} {t.runs:4}  {ratio:>20}  "
              f"{targets.get(name, '')}")
    print(f"read + track: {res['  read + track'].out}")
    if "NFStream" in res:
        print(f"NFStream: {res['NFStream'].out}")


if __name__ == "__main__":
    main()
