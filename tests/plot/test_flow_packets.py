"""One flow's packets come from a streaming pass that keeps only that flow, not from a
DataFrame of the whole capture; the rows are the same either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from rstscope.api import analyze
from rstscope.ingest import read_packets
from rstscope.plot import packets_of_flow

ROOT = Path(__file__).resolve().parents[2]


def test_one_flow_without_reading_every_packet(tmp_path: Path) -> None:
    cap = tmp_path / "g.pcap"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_capture.py"), "4000",
                    str(cap)], check=True, capture_output=True)
    a = analyze(cap)
    everything = read_packets(cap)
    flows = a.flow_records()
    assert len(flows) >= 10
    for f in flows[:: max(1, len(flows) // 6)] + [a.reset_records()[0]]:
        fid = f["flow_id"]
        alone = packets_of_flow(a, fid)
        assert a._packets_df is None  # the whole capture was never materialised
        pd.testing.assert_frame_equal(alone, packets_of_flow(a, fid, packets=everything))
        assert len(alone) > 0
