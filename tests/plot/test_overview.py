"""The Gantt overview on a real capture: lanes, RST markers by origin, order by death."""

from __future__ import annotations

from matplotlib.figure import Figure

from rstscope.plot import overview


def test_overview_lanes_and_markers(abort_analysis, abort_capture):
    ax = overview(abort_analysis, Figure(figsize=(10, 4)).subplots())
    lanes = [c for c in ax.collections if c.get_gid() == "flow-lane"]
    assert len(lanes) == 3  # two aborted flows + the graceful one
    markers = [c for c in ax.collections if c.get_gid() == "rst-marker"]
    assert sum(len(c.get_offsets()) for c in markers) == 2
    assert {c.get_label() for c in markers} <= {"client", "server", "load-balancer", "firewall",
                                                "unknown"}
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # Sorted by time of death: the server abort, the client abort, the graceful close.
    ports = abort_capture.client_ports
    assert [f":{p} \u2192" in lab for lab, p in zip(labels, ports, strict=True)] == [True] * 3
    assert "3 flows, 2 RSTs" in ax.get_title()


def test_overview_caps_lanes_and_prefers_reset_flows(abort_analysis):
    ax = overview(abort_analysis, Figure().subplots(), max_flows=2)
    assert len([c for c in ax.collections if c.get_gid() == "flow-lane"]) == 2
    assert sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() == "rst-marker") == 2
    assert ax.get_title().startswith("2 of 3 flows")
    ax = overview(abort_analysis, Figure().subplots(), reset_flows_only=True)
    assert len([c for c in ax.collections if c.get_gid() == "flow-lane"]) == 2
