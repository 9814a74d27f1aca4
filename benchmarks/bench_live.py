"""Live-capture benchmark: a port-443 burst replayed into a veth pair, tcpdump and rstscope together.

Usage (from the repository root, as root; needs ``tcpreplay``, ``tcpdump`` and
``ip``: ``apt-get install tcpreplay``; ``--senders`` also needs ``editcap``, from
wireshark-common; benchmarks are not run by CI)::

    .venv/bin/python benchmarks/bench_live.py --packets 300000 --rates 300000,600000

What it does, for each rate and each rstscope command (``capture``, ``watch``):

1. creates two network namespaces joined by a veth pair (documentation
   addresses 192.0.2.1 and 192.0.2.2, offloads off) and removes them again,
   even on failure or Ctrl-C;
2. in the receiving namespace starts ``tcpdump -s 256 -B 16384 -w ...`` and
   the rstscope command with the same snap length, buffer and filter
   (``tcp port 443``), and waits until both are listening;
3. replays the burst from ``benchmarks/make_capture.py`` with
   ``tcpreplay --pps RATE`` (or ``--topspeed``) from the other namespace;
4. stops both with SIGINT once the burst is over and the rings are drained,
   and reports, for each tool, the packets kept (counted in the file it wrote,
   or captured for ``watch`` without a file) and dropped (its own kernel
   counter), the rate tcpreplay reached, and for ``watch`` how late each RST
   verdict was printed (report time minus the RST's kernel timestamp).

Both tools run in the same replay, so they see the same packets at the same
moment and share the machine the same way; the machine's load average is
printed with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
FILTER = "tcp port 443"
SND_ADDR = "192.0.2.1"
RCV_ADDR = "192.0.2.2"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=60)


class Pair:
    """Two namespaces joined by a veth pair (snd0 -- rcv0); removed on exit."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.snd = f"rsb{tag}s"
        self.rcv = f"rsb{tag}r"
        self.procs: list[subprocess.Popen[str]] = []

    def __enter__(self) -> Pair:
        try:
            for ns in (self.snd, self.rcv):
                sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", "snd0", "netns", self.snd, "type", "veth", "peer", "name",
               "rcv0", "netns", self.rcv)
            for ns, ifname, addr in ((self.snd, "snd0", SND_ADDR), (self.rcv, "rcv0", RCV_ADDR)):
                sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
                sh("ip", "-n", ns, "link", "set", ifname, "up")
                sh("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tso", "off", "gso", "off",
                   "gro", "off", check=False)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(self, ns: str, argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True,
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        for ns in (self.snd, self.rcv):
            sh("ip", "netns", "del", ns, check=False)


class Lines:
    """A stream's lines, collected by a thread with their arrival times."""

    def __init__(self, stream: IO[str]) -> None:
        self.items: list[tuple[float, str]] = []
        self._t = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._t.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.items.append((time.time(), line))

    @property
    def text(self) -> str:
        return "".join(line for _, line in self.items)

    def wait(self, needle: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while needle not in self.text:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {needle!r} within {timeout_s} s:\n{self.text}")
            time.sleep(0.05)

    def join(self) -> None:
        self._t.join(10)


@dataclass
class Outcome:
    tool: str
    kept: int = 0
    captured: int = 0
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def count_packets(path: Path) -> int:
    """Frames in a capture file, read by rstscope's reader (checked against capinfos in tests)."""
    sys.path.insert(0, str(ROOT))
    from rstscope.ingest import open_capture

    rd = open_capture(path)
    for _ in rd:
        pass
    return sum(f.frames for f in rd.stats.files)


def tcpdump_counts(text: str) -> tuple[int, int]:
    cap = re.search(r"(\d+) packets? captured", text)
    drop = re.search(r"(\d+) packets? dropped by kernel", text)
    return (int(cap.group(1)) if cap else -1, int(drop.group(1)) if drop else -1)


def split_capture(capture: Path, parts: int, out_dir: Path) -> list[Path]:
    """``capture`` cut into ``parts`` consecutive pieces of (nearly) equal packet count,
    for as many tcpreplay processes: one sender tops out at a few hundred thousand
    packets/s on a small machine, below twice the issue's rate."""
    if parts == 1:
        return [capture]
    total = count_packets(capture)
    per = -(-total // parts)
    stem = out_dir / "part.pcap"
    subprocess.run(["editcap", "-F", "pcap", "-c", str(per), str(capture), str(stem)],
                   check=True, capture_output=True)
    pieces = sorted(out_dir.glob("part_*.pcap"))
    if len(pieces) != parts:
        raise RuntimeError(f"editcap made {len(pieces)} pieces, not {parts}")
    return pieces


def _replay(pair: Pair, pieces: list[Path], rate: str) -> str:
    """Replay every piece at once, one tcpreplay each (``rate`` shared between them);
    the packets sent and the summed rate reached."""
    pace = (["--topspeed"] if rate == "topspeed"
            else [f"--pps={max(1, int(rate) // len(pieces))}"])
    procs = [subprocess.Popen(["ip", "netns", "exec", pair.snd, "tcpreplay", "-K", "-i",
                               "snd0", *pace, str(piece)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for piece in pieces]
    sent_total, pps_total, rates = 0, 0.0, []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"tcpreplay failed: {err or out}")
        m = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", out)
        sent = re.search(r"Actual: (\d+) packets", out)
        if not (m and sent):
            return out.strip()
        sent_total += int(sent.group(1))
        pps_total += float(m.group(1))
        rates.append(f"{float(m.group(1)) / 1000:.0f}k")
    # Each sender's rate is over its own run; they start together and carry equal
    # shares, so the sum is the rate the receiver saw while all of them were sending.
    how = f" ({' + '.join(rates)}, {len(pieces)} senders)" if len(pieces) > 1 else ""
    return f"{sent_total} packets at {pps_total / 1000:.0f}k pps{how}"


def replay_once(pair: Pair, pieces: list[Path], rate: str, tool: str, snaplen: int,
                buffer_kib: int, work: Path,
                mode: str = "ring") -> tuple[str, Outcome, Outcome, list[float]]:
    """One replay with tcpdump and ``rstscope TOOL`` listening; their outcomes."""
    for p in work.iterdir():
        p.unlink()
    td_file = work / "tcpdump.pcap"
    rs_file = work / "rstscope.pcapng"
    td = pair.spawn(pair.rcv, ["tcpdump", "-n", "-i", "rcv0", "-s", str(snaplen), "-B",
                               str(buffer_kib), "--time-stamp-precision=nano", "-w", str(td_file),
                               FILTER], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert td.stderr is not None
    td_err = Lines(td.stderr)
    argv = [sys.executable, "-m", "rstscope", tool, "-i", "rcv0", "-s", str(snaplen), "-B",
            str(buffer_kib), "-f", FILTER, "-w", str(rs_file)]
    if tool == "watch":
        argv.append("--json")
    env = dict(os.environ)
    if mode == "recvmsg":
        env["RSTSCOPE_LIVE_RING"] = "0"  # the per-packet fallback (the code before the ring)
    rs = pair.spawn(pair.rcv, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    cwd=str(ROOT), env=env)
    assert rs.stdout is not None and rs.stderr is not None
    rs_out, rs_err = Lines(rs.stdout), Lines(rs.stderr)
    td_err.wait("listening on")
    rs_err.wait("listening on")
    time.sleep(0.5)
    replay = _replay(pair, pieces, rate)
    time.sleep(2.0)  # both rings drain; a partly filled block is handed over after its timeout
    for proc in (td, rs):
        proc.send_signal(signal.SIGINT)
    for proc in (td, rs):
        proc.wait(timeout=120)
    for lines in (td_err, rs_out, rs_err):
        lines.join()

    t = Outcome("tcpdump")
    t.captured, t.dropped = tcpdump_counts(td_err.text)
    t.kept = count_packets(td_file)
    r = Outcome(f"rstscope {tool}")
    summary = re.search(r"(\d+) packets captured", rs_err.text)
    drops = re.search(r"(\d+) packets dropped by kernel", rs_err.text)
    r.captured = int(summary.group(1)) if summary else -1
    r.dropped = int(drops.group(1)) if drops else -1
    r.kept = count_packets(rs_file)
    live_drop_lines = [line for _, line in rs_err.items if "since the last report" in line]
    if live_drop_lines:
        r.notes.append(f"{len(live_drop_lines)} drop reports while running")
    latencies: list[float] = []
    if tool == "watch":
        for arrived, line in rs_out.items:
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if doc.get("event") == "reset":
                    latencies.append(arrived - float(doc["ts"]))
    return replay, t, r, latencies


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--capture", type=Path, help="replay this file instead of generating one")
    ap.add_argument("--rates", default="300000,600000",
                    help="comma-separated packets/s for tcpreplay --pps, or 'topspeed'")
    ap.add_argument("--tools", default="capture,watch")
    ap.add_argument("--modes", default="ring",
                    help="'ring', 'recvmsg' (the per-packet fallback) or both, comma-separated")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--snaplen", type=int, default=256)
    ap.add_argument("--buffer-kib", type=int, default=16384)
    ap.add_argument("--senders", type=int, default=1,
                    help="tcpreplay processes sending the burst's consecutive parts at once, "
                         "the rate shared between them (needs editcap)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_live.py needs root (namespaces, packet capture)")
    for tool in ("tcpreplay", "tcpdump", "ip", *(("editcap",) if args.senders > 1 else ())):
        if not shutil.which(tool):
            sys.exit(f"bench_live.py needs {tool} (apt-get install {tool})")
    with tempfile.TemporaryDirectory(prefix="rstscope-bench-live-") as tmp:
        work = Path(tmp, "out")
        work.mkdir()
        capture = args.capture
        if capture is None:
            capture = Path(tmp, "burst.pcap")
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_capture.py"),
                            str(args.packets), str(capture)], check=True)
        parts_dir = Path(tmp, "parts")
        parts_dir.mkdir()
        pieces = split_capture(capture, max(1, args.senders), parts_dir)
        print(f"burst: {capture.name}, {args.packets:,} packets from make_capture.py "
              f"(seed 443); snaplen {args.snaplen}, -B {args.buffer_kib}, filter '{FILTER}'")
        print(f"load average before: {loadavg()} ({os.cpu_count()} cores)")
        print("| rate asked | replayed | tool | kept (file) | captured | dropped by kernel "
              "| verdict delay max | note |")
        print("|---|---|---|---:|---:|---:|---:|---|")
        with Pair() as pair:
            for rate in args.rates.split(","):
                for tool, mode, _ in itertools.product(args.tools.split(","),
                                                       args.modes.split(","),
                                                       range(args.repeat)):
                        replay, t, r, lat = replay_once(pair, pieces, rate, tool, args.snaplen,
                                                        args.buffer_kib, work, mode)
                        delay = f"{max(lat):.3f} s ({len(lat)} RSTs)" if lat else ""
                        if mode != "ring":
                            r.tool += f" ({mode})"
                        for o, d in ((t, ""), (r, delay)):
                            print(f"| {rate} | {replay} | {o.tool} | {o.kept:,} | "
                                  f"{o.captured:,} | {o.dropped:,} | {d} | "
                                  f"{'; '.join(o.notes)} |", flush=True)
        print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
