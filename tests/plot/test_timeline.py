"""The flow timeline on the lab's real captures: structure, not pixels.

Oracles are independent of rstscope: what the lab's scenario did (ports, the
configured timeout, which side aborted, from its labels) and tshark's dissection.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from rstscope.plot import packets_of_flow, timeline
from rstscope.plot.timeline import TTL_AXES_LABEL


def _flow_of_port(analysis, port):
    for f in analysis.flow_records():
        if port in (f["orig_p"], f["resp_p"]):
            return f
    raise AssertionError(f"no flow with port {port}")


def _tshark_count(path, display_filter):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    return len(out.split())


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(10, 5))


def test_packets_of_flow_matches_tshark(abort_analysis, abort_capture):
    for cport in abort_capture.client_ports:
        flow = _flow_of_port(abort_analysis, cport)
        pk = packets_of_flow(abort_analysis, flow["flow_id"])
        assert len(pk) == _tshark_count(abort_capture.path, f"tcp.port == {cport}")
        assert set(pk["direction"]) == {"orig", "resp"}
        # orig is the connecting client (it sent the SYN).
        syn = pk[(pk["flags"] & 0x12) == 0x02]
        assert (syn["direction"] == "orig").all() and (syn["sport"] == cport).all()
        assert np.all(np.diff(pk["ts_ns"].to_numpy()) >= 0)


def test_timeline_structure_of_an_aborted_flow(abort_analysis, abort_capture):
    lab = abort_capture.flow("client")
    cport = lab.client_port
    flow = _flow_of_port(abort_analysis, cport)
    fig = _figure()
    lanes, ttl = fig.subplots(2, 1, sharex=True)
    got = timeline(abort_analysis, flow["flow_id"], lanes, ttl_ax=ttl)
    assert got is lanes
    names = [t.get_text() for t in lanes.get_yticklabels()]
    assert names == [f"resp {lab.server}:{lab.server_port}", f"orig {lab.client}:{cport}"]
    markers = [ln for ln in lanes.lines if ln.get_gid() == "rst-marker"]
    # The client aborted exactly once: one RST, on the orig lane (y = 1).
    assert len(markers) == 1 == flow["resets"]
    assert markers[0].get_ydata()[0] == 1.0
    gap_labels = [t.get_text() for t in lanes.texts if t.get_gid() == "gap-label"]
    assert len(gap_labels) == 1
    # The client's read timeout was 3 s; the label shows the measured gap.
    value = float(gap_labels[0].split()[1])
    assert lab.timeout_s <= value < lab.timeout_s + 0.5
    assert [p for p in lanes.patches if p.get_gid() == "idle-gap"]
    title = lanes.get_title()
    assert title.startswith(f"flow {flow['flow_id']}: {lab.client}:{cport} \u2192 {lab.server}:")
    assert "1 RST" in title
    rst_labels = [t.get_text() for t in lanes.texts if t.get_gid() == "rst-label"]
    assert len(rst_labels) == 1 and rst_labels[0].startswith("RST #")
    assert f"TTL {lab.rst_ttl}" in rst_labels[0]
    # TTL track: the RST's TTL as the lab recorded it (the client starts at 128).
    assert ttl.get_label() == TTL_AXES_LABEL
    rst_ttl = [ln for ln in ttl.lines if ln.get_gid() == "rst-ttl"]
    assert len(rst_ttl) == 1 and rst_ttl[0].get_ydata()[0] == lab.rst_ttl
    fig.savefig(__import__("io").BytesIO(), format="png")  # renders without error


def test_timeline_accepts_reset_rows_and_records(abort_analysis):
    fig = _figure()
    row = abort_analysis.resets.iloc[0]
    ax = timeline(abort_analysis, row, fig.subplots(), ttl_track=False)
    markers = [ln for ln in ax.lines if ln.get_gid() == "rst-marker"]
    # The highlighted reset is drawn larger than the others (here: the only one).
    assert len(markers) == 1 and markers[0].get_markersize() == 13
    rec = abort_analysis.reset_records()[0]
    ax2 = timeline(abort_analysis, rec, _figure().subplots(), ttl_track=False)
    assert ax2.get_title() == ax.get_title()


def test_ttl_track_is_carved_from_given_axes(abort_analysis):
    fig = _figure()
    ax = fig.subplots()
    timeline(abort_analysis, abort_analysis.flow_records()[0]["flow_id"], ax)
    assert [a.get_label() for a in fig.axes].count(TTL_AXES_LABEL) == 1


def test_new_figure_when_no_axes_given(abort_analysis):
    ax = timeline(abort_analysis, abort_analysis.flow_records()[0]["flow_id"])
    assert len(ax.figure.axes) == 2
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_unknown_flow_is_a_usage_error(abort_analysis):
    from rstscope.errors import UsageError

    with pytest.raises(UsageError, match="no flow 987654"):
        timeline(abort_analysis, 987654, _figure().subplots())
    with pytest.raises(UsageError, match="axis must be"):
        timeline(abort_analysis, abort_analysis.flow_records()[0]["flow_id"], axis="weird")
