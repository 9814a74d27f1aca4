"""Timelines of big and long flows: binned lanes, compressed hour-long gaps.

The captures are real: 100k packets of loopback ping-pong (tcpdump in a private
user + network namespace, so no root),
and the lab's merged samples with a 3 h silence spliced in by editcap/mergecap
(time shift of the second part), as a long-lived customer flow would look.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from rstscope.plot import timeline
from tests.loopback import pingpong_then_abort


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory):
    return pingpong_then_abort(tmp_path_factory.mktemp("big") / "pingpong.pcap")


@pytest.mark.slow  # no sample has a 100k-packet flow: captured on a private namespace's loopback
def test_100k_packet_flow_is_binned_and_fast(big_capture):
    from matplotlib.figure import Figure

    from rstscope.api import analyze

    a = analyze(big_capture.path)
    flow = max(a.flow_records(), key=lambda f: f["orig_pkts"] + f["resp_pkts"])
    assert flow["orig_pkts"] + flow["resp_pkts"] >= 90_000
    fig = Figure(figsize=(10, 5))
    lanes, ttl = fig.subplots(2, 1, sharex=True)
    t0 = time.perf_counter()
    timeline(a, flow["flow_id"], lanes, ttl_ax=ttl, max_ticks=3000)
    import io

    fig.savefig(io.BytesIO(), format="png", dpi=60)
    elapsed = time.perf_counter() - t0
    for direction in ("orig", "resp"):
        (coll,) = [c for c in lanes.collections if c.get_gid() == f"packets-{direction}"]
        assert "binned" in coll.get_label()
        assert 10 < len(coll.get_segments()) <= 750  # one tick per bin, not per packet
    assert sum(len(ln.get_xdata()) for ln in ttl.lines) < 5_000
    assert len([ln for ln in lanes.lines if ln.get_gid() == "rst-marker"]) == 1
    assert elapsed < 20, f"plotting a 100k-packet flow took {elapsed:.1f} s"


def _tool(name):
    if shutil.which(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, but CI must provide it")
        pytest.skip(f"{name} is not installed")
    return name


@pytest.fixture(scope="module")
def long_capture(tmp_path_factory, abort_capture):
    """The merged samples with 3 h of silence inserted after frame 12 (mid-stream of the
    first flow, which has 15 frames): editcap splits and shifts, mergecap -a concatenates."""
    d = tmp_path_factory.mktemp("long")
    head, tail, shifted, out = (d / n for n in ("head.pcap", "tail.pcap", "tail3h.pcap", "long.pcap"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run(_tool("editcap"), "-r", str(abort_capture.path), str(head), "1-12")
    run("editcap", str(abort_capture.path), str(tail), "1-12")  # without -r: drop 1-12
    run("editcap", "-t", "10800", str(tail), str(shifted))
    run(_tool("mergecap"), "-a", "-F", "pcap", "-w", str(out), str(head), str(shifted))
    return out


def test_hours_long_flow_gets_a_compressed_labelled_gap(long_capture, abort_capture):
    from matplotlib.figure import Figure

    from rstscope.api import analyze

    a = analyze(long_capture)
    cport = abort_capture.client_ports[0]
    flow = next(f for f in a.flow_records() if cport in (f["orig_p"], f["resp_p"]))
    assert flow["duration_s"] > 3 * 3600
    fig = Figure(figsize=(10, 5))
    lanes = fig.subplots()
    timeline(a, flow["flow_id"], lanes, ttl_track=False)
    labels = [t.get_text() for t in lanes.texts if t.get_gid() == "gap-label"]
    long_labels = [t for t in labels if t.startswith("idle 3 h") and "compressed" in t]
    assert len(long_labels) == 1, labels
    assert len([t for t in lanes.texts if t.get_gid() == "axis-break"]) >= 2
    # The packets before the gap must keep a readable share of the axis: on a
    # linear axis they would be squeezed into < 0.01 % of it.
    (coll,) = [c for c in lanes.collections if c.get_gid() == "packets-orig"]
    xs = sorted(seg[0][0] for seg in coll.get_segments())
    x_lo, x_hi = lanes.get_xlim()
    before_gap = [x for x in xs if x < xs[0] + (x_hi - x_lo) * 0.5]
    assert len(before_gap) >= 3
    # Tick labels are distinct (clock style on the far side of the gap).
    import io

    fig.savefig(io.BytesIO(), format="png", dpi=50)  # tick labels are set at draw time
    ticks = [t.get_text() for t in lanes.get_xticklabels() if t.get_text()]
    assert len(ticks) == len(set(ticks)) >= 3
