"""One-flow reads through the analysis pass' sparse index return exactly the rows a
full pass over the capture returns (rstscope.ingest.index, rstscope.flowpackets)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from rstscope.api import Analysis, analyze  # noqa: E402
from rstscope.core.records import FlowRecord  # noqa: E402
from rstscope.flowpackets import FlowPackets  # noqa: E402
from rstscope.ingest import open_capture  # noqa: E402
from rstscope.ingest.index import read_spans  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples").glob("*.pcap"))


def _full_pass(a: Analysis, flows: list[FlowRecord]) -> pd.DataFrame:
    """The same provider without the index: one pass over the whole capture."""
    return FlowPackets(a.source, index=None).of_flows(flows)


def _same_as_full_pass(a: Analysis, every: int = 1) -> int:
    flows = a.typed_flows()[::every]
    assert a.flow_packets.index is not None
    for f in flows:
        pd.testing.assert_frame_equal(a.flow_packets.of_flows([f]), _full_pass(a, [f]))
    if len(flows) > 1:  # several flows at once, as the report asks
        pd.testing.assert_frame_equal(a.flow_packets.of_flows(flows[:5]), _full_pass(a, flows[:5]))
    return len(flows)


@pytest.mark.parametrize("cap", SAMPLES, ids=[c.stem for c in SAMPLES])
def test_samples_one_flow_reads_match_full_pass(cap: Path) -> None:
    a = analyze(cap)
    assert a.packet_index is not None
    _same_as_full_pass(a)


def test_shared_captures_one_flow_reads_match_full_pass(shared_captures: list[Path]) -> None:
    checked = 0
    for cap in shared_captures:
        a = analyze(cap)
        if cap.name.endswith(".gz"):
            assert a.packet_index is None  # a stream cannot be sought in
            continue
        assert a.packet_index is not None, cap.name
        n = len(a.typed_flows())
        checked += _same_as_full_pass(a, every=max(1, n // 10))
    assert checked > 100


def test_replayed_spans_are_the_pass_batches(shared_captures: list[Path]) -> None:
    """Every span decodes to the very batch the analysis pass saw (pcap and pcapng)."""
    kinds = set()
    for cap in shared_captures:
        if cap.name.endswith(".gz"):
            continue
        with open_capture(cap, index=True) as rd:
            batches = list(rd)
        assert rd.index is not None and rd.index.complete
        again = list(read_spans([cap], rd.index.spans))
        assert len(again) == len(batches), cap.name
        for b, c in zip(batches, again, strict=True):
            assert b.tobytes() == c.tobytes(), cap.name
        kinds.add(rd.stats.files[0].format)
    assert {"pcap", "pcapng"} <= kinds


def test_rotated_list_and_stream(tmp_path: Path) -> None:
    two = [SAMPLES[0], SAMPLES[1]]
    a = analyze(two)
    assert a.packet_index is not None
    assert {s.file_id for s in a.packet_index.spans} == {0, 1}
    _same_as_full_pass(a)
    gz = tmp_path / "s.pcap.gz"
    with open(SAMPLES[0], "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    b = analyze(gz)
    assert b.packet_index is None  # falls back to the full pass
    assert b.flow_packets.index is None
    assert len(b.flow_packets.of_flows(b.typed_flows()[:1])) > 0


def test_index_skips_batches(tmp_path: Path) -> None:
    """A one-flow read decodes only the batches that may hold the flow."""
    a = analyze(SAMPLES[0], batch_size=2)
    idx = a.packet_index
    assert idx is not None and len(idx.spans) > 3
    f = a.typed_flows()[0]
    spans = idx.select([(f.orig_p, f.resp_p)], f.first_ts_ns, f.last_ts_ns)
    assert 0 < len(spans) <= len(idx.spans)
    assert np.all([s.ts_hi_ns >= f.first_ts_ns for s in spans])
