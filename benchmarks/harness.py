"""What every benchmark here shares, so that no tool gets a better deal than another.

- **Same warm-up, same runs.**  Every tool gets one unmeasured run first (page
  cache, compiled imports, the dissector tables tshark builds on first use),
  then the same number of measured runs, interleaved (A B C A B C ...) so load
  from other jobs on a shared machine hits all tools alike.  Min and median
  are both reported: the min is the least disturbed run, the median the
  typical one.
- **Same work.**  tshark exports the fields rstscope's reader decodes (the
  schema's columns, :data:`TSHARK_FIELDS`), including the TLS record type
  that makes it dissect TLS, as rstscope reads the TLS record header.
- **Same machine state, printed.**  The load average before and after, and
  the capture generator's parameters, go out with the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# One tshark field per column of rstscope.schema.PACKET_DTYPE that comes from the
# packet (frame numbering and file ids aside).
TSHARK_FIELDS = (
    "frame.time_epoch", "ip.version", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.ttl",
    "ipv6.hlim", "ip.id", "ip.flags.df", "ip.len", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
    "tcp.ack_raw", "tcp.flags", "tcp.window_size_value", "tcp.len", "tcp.options.mss_val",
    "tcp.options.wscale.shift", "tcp.options.sack_perm", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr", "tls.record.content_type", "tls.handshake.type",
)


def tshark_fields_cmd(path: str, *, seq_analysis: bool) -> list[str]:
    """tshark exporting :data:`TSHARK_FIELDS`; ``seq_analysis`` when the rstscope side
    analyses sequence numbers too (the tracker does, the bare reader does not)."""
    cmd = ["tshark", "-n", "-r", path, "-T", "fields"]
    if not seq_analysis:
        cmd += ["-o", "tcp.analyze_sequence_numbers:FALSE"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    return cmd


@dataclass(frozen=True, slots=True)
class Timing:
    walls: tuple[float, ...]
    cpus: tuple[float, ...]  # user + sys of the process and the children it waited for
    rss_mib: float  # peak RSS of the largest run (ru_maxrss)
    out: str  # stdout tail of the last run

    @property
    def wall_min(self) -> float:
        return min(self.walls)

    @property
    def wall_med(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu_min(self) -> float:
        return min(self.cpus)

    @property
    def cpu_med(self) -> float:
        return statistics.median(self.cpus)


#: Every tool runs with Python's bytecode cache allowed, whatever the caller's
#: environment says: an installed package has its ``.pyc`` files (pip writes them
#: at install, an editable install at first import), so a user never pays for
#: compiling rstscope's sources on each run.  With ``PYTHONDONTWRITEBYTECODE`` set
#: (some CI and container images set it) every run compiled them again, about
#: 0.1 s of CPU that no user sees.  The warm-up run of ``measure`` writes the cache.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cmd: list[str]) -> tuple[float, float, float, str]:
    """(wall s, CPU s, peak RSS MiB, stdout tail) of one run; exits on failure."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=CHILD_ENV)
        _, status, ru = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed: {err.read().decode(errors='replace')[-400:]}")
        # Only the tail: holding a tool's whole output (tshark writes hundreds of MB)
        # would grow this process, and a child's peak RSS as the kernel reports it
        # starts from its parent's at fork.  For the same reason nothing here imports
        # numpy.
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - 4000))
        text = out.read().decode(errors="replace").strip()
    return elapsed, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, text[-400:]


def measure(cmds: dict[str, list[str]], repeat: int) -> dict[str, Timing]:
    """One unmeasured warm-up run of every tool, then ``repeat`` runs each, interleaved."""
    for cmd in cmds.values():
        run_once(cmd)
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    cpus: dict[str, list[float]] = {k: [] for k in cmds}
    rss: dict[str, float] = dict.fromkeys(cmds, 0.0)
    outs: dict[str, str] = {}
    for _ in range(repeat):
        for name, cmd in cmds.items():
            w, c, m, outs[name] = run_once(cmd)
            walls[name].append(w)
            cpus[name].append(c)
            rss[name] = max(rss[name], m)
    return {k: Timing(tuple(walls[k]), tuple(cpus[k]), rss[k], outs[k]) for k in cmds}


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def params_line(capture: str) -> str:
    """How a capture was generated, from the file ``make_capture.py --params`` writes beside it."""
    try:
        with open(capture + ".params.json") as pf:
            p = json.load(pf)
    except (OSError, ValueError):
        return f"generator parameters unknown (no {os.path.basename(capture)}.params.json)"
    return (f"{p['generator']} {p['packets']} --seed {p['seed']} --format {p['format']} "
            f"--payload {p['payload']} ({p['written']:,} packets, {p['flows']:,} flows)")


def measure_capture(cap: Path, repeat: int,
                    commands: Callable[[Path, str], dict[str, list[str]]],
                    report: Callable[[dict[str, Timing]], None]) -> None:
    """Measure ``commands(cap, tmpdir)`` on one capture and print the result with
    the capture's generator parameters and the load average after the runs."""
    print(f"\n### {cap.name} ({cap.stat().st_size / 1e6:.1f} MB): {params_line(str(cap))}")
    print(f"one warm-up run and {repeat} measured runs of every tool, interleaved\n")
    with tempfile.TemporaryDirectory() as tmp:
        res = measure(commands(cap, tmp), repeat)
    report(res)
    print(f"load average: {loadavg()}")

