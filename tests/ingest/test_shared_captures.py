"""Every public capture in ../shared/captures against tshark, field by field.

All captures are concatenated once with ``mergecap -a`` into a multi-interface
pcapng and dissected by one tshark run (tshark start-up dominates per-file
runs); each original file is then read by rstscope and compared with its slice
of tshark's output.  The files keep their own formats (pcap, ns-pcap, pcapng,
gzip) on the rstscope side.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rstscope.ingest import open_capture
from rstscope.schema import TH_RST
from tests.conftest import shared_path
from tests.ingest.tshark_ref import compare, tshark_rows


def _list_captures() -> list[Path]:
    root = shared_path() / "captures"
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and
                  (p.suffix in (".pcap", ".pcapng") or p.name.endswith(".gz")))


CAPTURES = _list_captures()
IDS = [str(p.relative_to(shared_path() / "captures")) for p in CAPTURES]


@pytest.fixture(scope="module")
def reference(tshark: str, tmp_path_factory: pytest.TempPathFactory
              ) -> dict[Path, tuple[int, list[dict[str, str]]]]:
    """Per capture: (its first frame's number in the merged file - 1, tshark rows)."""
    if not CAPTURES:
        pytest.skip("shared captures not present")
    mergecap = shutil.which("mergecap")
    capinfos = shutil.which("capinfos")
    if not mergecap or not capinfos:
        pytest.skip("mergecap/capinfos not installed")
    merged = tmp_path_factory.mktemp("shared") / "all.pcapng"
    subprocess.run([mergecap, "-a", "-F", "pcapng", "-w", str(merged), *map(str, CAPTURES)],
                   check=True, capture_output=True)
    out = subprocess.run([capinfos, "-T", "-r", "-c", *map(str, CAPTURES)], check=True,
                         capture_output=True, text=True).stdout
    counts = [int(line.rsplit("\t", 1)[1]) for line in out.splitlines() if line.strip()]
    assert len(counts) == len(CAPTURES)
    rows = tshark_rows(tshark, merged)
    result: dict[Path, tuple[int, list[dict[str, str]]]] = {}
    start = 0
    it = 0
    for cap, n in zip(CAPTURES, counts, strict=True):
        mine = []
        while it < len(rows) and int(rows[it]["frame.number"]) <= start + n:
            mine.append(rows[it])
            it += 1
        result[cap] = (start, mine)
        start += n
    assert it == len(rows)
    return result


def _read_all(path: Path) -> tuple[np.ndarray, object]:
    with open_capture(path) as rd:
        parts = list(rd)
    batch = np.concatenate(parts) if parts else np.zeros(0)
    return batch, rd.stats


def test_shared_captures_present():
    if not CAPTURES:
        pytest.skip("shared captures not present (set RSTSCOPE_SHARED)")
    assert len(CAPTURES) > 100


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_counts_equal_tshark(path: Path, reference):
    offset, rows = reference[path]
    batch, stats = _read_all(path)
    assert stats.check(), stats
    assert stats.tcp == len(rows)
    tshark_rst = sum(1 for r in rows if int(r["tcp.flags"], 16) & TH_RST)
    assert stats.rst == tshark_rst
    assert stats.rst >= 1  # every shared capture holds at least one reset
    assert not [w for w in stats.warnings if "cut short" in w or "garbage" in w]


@pytest.mark.parametrize("path", CAPTURES, ids=IDS)
def test_every_field_equals_tshark(path: Path, reference):
    offset, rows = reference[path]
    batch, _stats = _read_all(path)
    # mergecap renumbers interfaces, so iface is checked by the pcapng tests instead.
    problems = compare(batch, rows, frame_offset=offset, check_iface=False)
    assert not problems, "\n".join(problems)
