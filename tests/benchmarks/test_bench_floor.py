"""The floor benchmark runs end to end on a small capture.

It reaches into the reader's internals (the pcap walker and its window), so a
refactor there would otherwise break it silently; the figures themselves are
not checked, only that every step ran and the summary was printed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, make_capture

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")


def test_floor_benchmark_runs_every_step(tmp_path: Path) -> None:
    cap = make_capture(tmp_path / "small.pcap", 3000)
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_floor.py"), "--capture", str(cap),
         "--repeat", "1"], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for step in ("tcpdump -r -w /dev/null", "python + the reader's imports", "serial walk (pure)",
                 "reader (walk + decode)", "rstscope analyze"):
        assert f"| {step} |" in out
    # The walk snippet saw every record the generator wrote.
    assert "serial walk (pure): 3000 records" in out
    assert "3x tcpdump = " in out and "left for decoding" in out
