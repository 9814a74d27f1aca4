"""Plots on real public captures (../shared/captures; skipped when absent).

Oracle: tshark's count of RST segments (``tcp.flags.reset == 1``) — the
overview must show one marker per RST, and each flow timeline one marker per
RST of that flow.
"""

from __future__ import annotations

import io
import subprocess

import pytest
from matplotlib.figure import Figure

from rstscope.plot import overview, timeline


@pytest.fixture(scope="module")
def small_reset_captures(shared_captures, tshark):
    chosen = []
    for cap in sorted(shared_captures, key=lambda p: p.stat().st_size):
        out = subprocess.run([tshark, "-r", str(cap), "-Y", "tcp.flags.reset == 1", "-T", "fields",
                              "-e", "frame.number"], capture_output=True, text=True).stdout
        if out.split():
            chosen.append((cap, len(out.split())))
        if len(chosen) == 8:
            break
    if not chosen:
        pytest.skip("no shared capture with resets")
    return chosen


def test_markers_match_tshark_rst_counts(small_reset_captures):
    from rstscope.api import analyze

    for cap, n_rst in small_reset_captures:
        a = analyze(cap)
        ax = overview(a, Figure().subplots(), max_flows=10_000)
        shown = sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() == "rst-marker")
        assert shown == n_rst, cap.name
        total = 0
        for flow in [f for f in a.flow_records() if f["resets"]][:5]:
            fig = Figure(figsize=(9, 4))
            lanes, ttl = fig.subplots(2, 1, sharex=True)
            timeline(a, flow["flow_id"], lanes, ttl_ax=ttl)
            fig.savefig(io.BytesIO(), format="png", dpi=30)
            markers = [ln for ln in lanes.lines if ln.get_gid() == "rst-marker"]
            assert len(markers) == flow["resets"], (cap.name, flow["flow_id"])
            total += len(markers)
        assert total <= n_rst
