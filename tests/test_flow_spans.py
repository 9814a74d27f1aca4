"""flow_spans() and flows_by_id(): what a report picks its few flows by, without
building every flow's record, must say what typed_flows() says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import rstscope.api as rs
from rstscope.api import Analysis
from rstscope.core.records import FlowRecord
from rstscope.errors import UsageError
from rstscope.flowsubset import FlowSubset
from rstscope.plot import overview
from rstscope.plot.select import find_flow
from rstscope.results import RecordSource
from tests.conftest import SAMPLES, make_capture, sample_captures


def _assert_agree(src: RecordSource) -> None:
    # Asked before typed_flows() (the tracker has not built its live records) and after.
    for _ in range(2):
        spans = list(src.flow_spans())
        ids = [s.flow_id for s in spans]
        some = set(ids[1::2]) | {10**9}  # every other flow, and one the capture has not
        by_id = list(src.flows_by_id(some))
        flows = list(src.typed_flows())
        assert [(s.flow_id, s.first_ts_ns, s.last_ts_ns) for s in spans] == [
            (f.flow_id, f.first_ts_ns, f.last_ts_ns) for f in flows]
        assert by_id == [f for f in flows if f.flow_id in some]
        assert list(src.flows_by_id(ids)) == flows


def _assert_agree_whole_and_subset(a: Analysis) -> None:
    _assert_agree(a)
    ids = [s.flow_id for s in a.flow_spans()]
    _assert_agree(FlowSubset.of(a, ids[::2]))


@pytest.mark.parametrize("pcap", sample_captures(), ids=lambda p: p.name)
def test_spans_and_records_by_id_agree_on_samples(pcap: Path):
    _assert_agree_whole_and_subset(rs.analyze(pcap))


MANY = SAMPLES / "accept-overflow.client.pcap"  # 8 flows


def test_agree_with_evicted_flows():
    # A flow table of two: the sample's other flows are evicted (finished records).
    a = rs.analyze(MANY, config=rs.make_config(max_flows=2))
    assert any(f.evicted for f in a.typed_flows())
    _assert_agree_whole_and_subset(rs.analyze(MANY, config=rs.make_config(max_flows=2)))


@pytest.mark.parametrize("name", ["zeek/Traces/pop3/pop3.pcap",  # later generations
                                  "tcpdump/tests/of13_ericsson.pcapng"])  # idle evictions
def test_agree_on_shared_captures_with_finished_flows(shared_dir: Path, name: str):
    path = shared_dir / "captures" / name
    if not path.is_file():
        pytest.skip(f"{name} is not among the shared captures")
    a = rs.analyze(path)
    assert any(f.generation > 1 or f.evicted for f in a.typed_flows())
    _assert_agree_whole_and_subset(a)


class _OwnFlows(Analysis):
    """An analysis whose typed_flows() is its own: spans and ids come from its records."""

    def typed_flows(self) -> list[FlowRecord]:
        return super().typed_flows()


def _lanes(src: RecordSource, max_flows: int) -> tuple[list[str], str]:
    ax = overview(src, Figure().subplots(), max_flows=max_flows)
    return [t.get_text() for t in ax.get_yticklabels()], ax.get_title()


def test_overview_lanes_do_not_depend_on_how_flows_are_found(tmp_path: Path):
    # Thousands of flows, a few dozen with resets: lanes are chosen among many, ties
    # in time of death included.  The tracker's spans and the records' agree.
    a = rs.analyze(make_capture(tmp_path / "gen.pcap", 30_000))
    ref = _OwnFlows(**{n: getattr(a, n) for n in a.__dataclass_fields__})
    assert not ref._own_flows() and a._own_flows()
    for max_flows in (3, 40, 10_000):
        assert _lanes(a, max_flows) == _lanes(ref, max_flows)


def test_find_flow_takes_what_it_took():
    a = rs.analyze(MANY)
    flows = a.typed_flows()
    f = flows[-1]
    for key in (f.flow_id, str(f.flow_id), np.int64(f.flow_id), float(f.flow_id)):
        assert find_flow(a, key) == f
    for key in (f"0{f.flow_id}", f.flow_id + 0.5, "x", None, 10**9):
        with pytest.raises(UsageError, match=f"flow ids are {flows[0].flow_id}..{f.flow_id}"):
            find_flow(a, key)
