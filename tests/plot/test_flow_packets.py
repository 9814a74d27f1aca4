"""One flow's packets come from a streaming pass that keeps only that flow, not from a
DataFrame of the whole capture; the rows are the same either way, and the same as
packed rows re-read without pandas (what the report draws from)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rstscope.api import analyze
from rstscope.ingest import read_packets
from rstscope.plot import packets_of_flow
from rstscope.plot.select import FlowRows, flow_rows
from rstscope.schema import PACKET_DTYPE
from tests.conftest import make_capture

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "samples").glob("*.pcap"))


def test_one_flow_without_reading_every_packet(tmp_path: Path) -> None:
    cap = tmp_path / "g.pcap"
    make_capture(cap, 4000)
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


def _same_rows(a: FlowRows, b: FlowRows) -> None:
    for name in ("ts_ns", "flags", "payload_len", "ttl", "orig"):
        got, want = getattr(a, name), getattr(b, name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name


@pytest.mark.parametrize("cap", SAMPLES, ids=[c.stem for c in SAMPLES])
def test_packed_rows_give_the_frame_s_packets(cap: Path) -> None:
    """The report draws from packed rows re-read without pandas; every flow of every
    committed sample gets the packets the DataFrame path gives (order and direction
    included), from its own re-read and from one shared by all flows."""
    a = analyze(cap)
    flows = a.typed_flows()
    if not flows:
        pytest.skip("no TCP flow in this capture")
    shared = a.flow_packets.rows_of_flows(flows)
    assert shared.dtype == PACKET_DTYPE
    frame = a.flow_packets.of_flows(flows)
    for f in flows:
        want = flow_rows(a, f, frame)
        assert len(want) > 0
        _same_rows(flow_rows(a, f, shared), want)
        _same_rows(flow_rows(a, f, a.flow_packets.rows_of_flows([f])), want)
        _same_rows(flow_rows(a, f), want)


def test_packed_rows_of_a_generated_capture(tmp_path: Path) -> None:
    """Thousands of flows on reused ports and addresses: rows through the sparse index
    match the frame's for a spread of flows, reset flows included."""
    cap = tmp_path / "g.pcap"
    make_capture(cap, 20000)
    a = analyze(cap)
    flows = a.typed_flows()
    reset_ids = {r.flow_id for r in a.typed_resets()}
    picked = flows[:: max(1, len(flows) // 25)] + [f for f in flows if f.flow_id in reset_ids][:10]
    shared = a.flow_packets.rows_of_flows(picked)
    everything = read_packets(cap)
    for f in picked:
        _same_rows(flow_rows(a, f, shared), flow_rows(a, f, everything))


def test_rows_need_a_source_that_can_be_read_again() -> None:
    with open(SAMPLES[0], "rb") as fh:
        a = analyze(fh)
    flows = a.typed_flows()
    with pytest.raises(ValueError):
        a.flow_packets.rows_of_flows(flows)
