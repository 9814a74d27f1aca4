"""Benchmark: the fixed costs under ``rstscope analyze``, against the libpcap floor.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_floor.py --capture CAPTURE.pcap --repeat 5 \
        [--numba-python NB_VENV/bin/python]

Issue #18 asks for ``analyze`` within 3x ``tcpdump -r FILE -w /dev/null``.
This script answers "how much of that budget is gone before any analysis
runs?" by timing, each as its own process with the harness' warm-up and
interleaved runs (``benchmarks/harness.py``):

- ``tcpdump -r FILE -w /dev/null`` (the floor the ratio is taken against);
- the interpreter with numpy imported, and with everything ``analyze`` imports;
- the reader's serial record walk alone (``PcapFormat.walk`` over the whole
  file, no decoding): each record's length says where the next one starts, so
  this part cannot be vectorised, and in pure Python it is one loop turn per
  record;
- the reader alone (walk + decode to packet rows);
- ``rstscope analyze FILE --format json``;
- with ``--numba-python``: in a throwaway interpreter that has numba (never the
  project's venv), ``import numpy, numba``, and the same serial walk compiled by
  numba with its on-disk cache warm (the warm-up run fills it).  numba is the
  one compiler that installs from wheels with the README's first command, so
  this is what a compiled kernel would cost and save.

It prints each figure as CPU time (user + sys, median and min), the budget
3x tcpdump leaves, and what is left of it after the fixed costs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from harness import Timing, loadavg, measure_capture

WALK = """
import sys
from rstscope.ingest.pcap_reader import PcapFormat, read_header
from rstscope.ingest.source import open_window
from rstscope.ingest.walk import Status
w = open_window(sys.argv[1])
fmt = PcapFormat(read_header(w), w.name)
w.start += 24
n = 0
while True:
    r = fmt.walk(w, 65536)
    n += len(r.rec)
    w.consume_to(r.pos)
    if r.status is not Status.MORE:
        break
print(n, "records")
"""

READ = """
import sys
from rstscope.ingest import open_capture
with open_capture(sys.argv[1]) as rd:
    print(sum(len(b) for b in rd), "packets")
"""

# The same walk as PcapFormat.walk's native path, for numba.  numba caches only
# functions that live in a file, so the runner writes this module into the
# run's temporary directory (never the project tree) and imports it from there.
NUMBA_KERNEL = """
import numpy as np
from numba import njit

@njit(cache=True, nogil=True)
def walk(buf, p, end, offs):
    n = 0
    while p + 16 <= end:
        cl = (np.int64(buf[p + 8]) | (np.int64(buf[p + 9]) << 8) |
              (np.int64(buf[p + 10]) << 16) | (np.int64(buf[p + 11]) << 24))
        q = p + 16 + cl
        if q > end or n == offs.size:
            break
        offs[n] = p
        n += 1
        p = q
    return n
"""

NUMBA_WALK = """
import os, sys, time
t0 = time.process_time()
tmp = sys.argv[2]
os.environ["NUMBA_CACHE_DIR"] = os.path.join(tmp, "cache")
path = os.path.join(tmp, "rstscope_floor_walk.py")
if not os.path.exists(path):
    with open(path, "w") as f:
        f.write(sys.argv[3])
sys.path.insert(0, tmp)
import mmap
import numpy as np
t1 = time.process_time()
from rstscope_floor_walk import walk
t2 = time.process_time()
offs = np.empty(1 << 21, dtype=np.int64)
walk(np.zeros(64, dtype=np.uint8), 0, 64, offs)  # loads the cached machine code
t3 = time.process_time()
# Mapped as the reader maps a file, so both walks pay the same page faults.
with open(sys.argv[1], "rb") as f:
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
mm.madvise(mmap.MADV_SEQUENTIAL)
buf = np.frombuffer(mm, dtype=np.uint8)
if offs.size < buf.size // 16 + 1:
    offs = np.empty(buf.size // 16 + 1, dtype=np.int64)
n = walk(buf, 24, buf.size, offs)
t4 = time.process_time()
print(n, "records; CPU s: numpy", round(t1 - t0, 3), "numba import", round(t2 - t1, 3),
      "first call (cache load)", round(t3 - t2, 3), "walk", round(t4 - t3, 3))
"""


def commands(cap: Path, tmp: str, args: argparse.Namespace) -> dict[str, list[str]]:
    py = sys.executable
    cmds = {
        "tcpdump -r -w /dev/null": ["tcpdump", "-r", str(cap), "-w", "/dev/null"],
        "python + numpy": [py, "-c", "import numpy"],
        "python + the reader's imports": [py, "-c", "import rstscope.ingest"],
        "python + analyze's imports": [py, "-c", "import rstscope.cli, rstscope.api"],
        "serial walk (pure)": [py, "-c", WALK, str(cap)],
        "reader (walk + decode)": [py, "-c", READ, str(cap)],
        "rstscope analyze": [py, "-m", "rstscope", "analyze", str(cap), "--format", "json",
                             "-o", f"{tmp}/a.json"],
    }
    if args.numba_python:
        nb = args.numba_python
        cmds["python + numpy + numba"] = [nb, "-c", "import numpy, numba"]
        cmds["serial walk (numba, cache warm)"] = [nb, "-c", NUMBA_WALK, str(cap), tmp,
                                                     NUMBA_KERNEL]
    return cmds


def report(res: dict[str, Timing]) -> None:
    print("| step | CPU median | CPU min | wall median | peak RSS |")
    print("|---|---:|---:|---:|---:|")
    for name, t in res.items():
        print(f"| {name} | {t.cpu_med:.2f} s | {t.cpu_min:.2f} s | {t.wall_med:.2f} s | "
              f"{t.rss_mib:.0f} MiB |")
    for name in ("serial walk (pure)", "serial walk (numba, cache warm)"):
        if name in res:
            print(f"{name}: {res[name].out}")
    floor = res["tcpdump -r -w /dev/null"].cpu_med
    budget = 3 * floor
    imports = res["python + analyze's imports"].cpu_med
    walk = res["serial walk (pure)"].cpu_med - res["python + the reader's imports"].cpu_med
    print(f"\n3x tcpdump = {budget:.2f} s of CPU; analyze takes "
          f"{res['rstscope analyze'].cpu_med:.2f} s "
          f"({res['rstscope analyze'].cpu_med / floor:.2f}x)")
    print(f"- interpreter and analyze's imports: {imports:.2f} s")
    print(f"- the pure serial walk over and above them: {walk:.2f} s")
    print(f"- left for decoding, tracking, classifying and writing: {budget - imports - walk:.2f} s")
    nb = res.get("serial walk (numba, cache warm)")
    if nb is not None:
        # The process' own split: its total also holds tearing down the whole
        # file's mapping at exit, which the reader avoids by releasing pages as it
        # goes, so the walk is compared on the in-process figures.
        split = dict(re.findall(r"(numba import|cache load\)|walk) ([0-9.]+)", nb.out))
        fixed = float(split["numba import"]) + float(split["cache load)"])
        nb_walk = float(split["walk"])
        print(f"- numba: importing it and loading the cached kernel cost {fixed:.2f} s; the "
              f"compiled walk {nb_walk:.2f} s against {walk:.2f} s pure: "
              f"net {walk - nb_walk - fixed:+.2f} s for compiling the walk alone")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, required=True, help="a classic pcap file")
    ap.add_argument("--repeat", type=int, default=5, help="measured runs of every step")
    ap.add_argument("--numba-python", help="interpreter of a throwaway venv with numba")
    args = ap.parse_args()
    print(f"load average before: {loadavg()}")
    measure_capture(args.capture, args.repeat, lambda cap, tmp: commands(cap, tmp, args), report)

if __name__ == "__main__":
    main()
