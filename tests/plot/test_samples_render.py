"""Render every lab sample and check the figures against the lab's truth labels.

The labels (``samples/*.labels.json``) were written by the lab from
provenance (which namespace emitted each RST), not by rstscope, so they are an
independent oracle for: how many RST markers each flow's timeline shows, on
which lane, and the idle gap labelled before each RST.
"""

from __future__ import annotations

import io
import re

import pytest
from matplotlib.figure import Figure

from rstscope.plot import idle_gap_histogram, overview, timeline
from tests.conftest import SAMPLES, sample_labels

CAPTURES = sorted(SAMPLES.glob("*.pcap")) + sorted(SAMPLES.glob("*.pcapng"))


def test_samples_exist():
    # The samples are committed with the repo; an empty list would make the
    # parametrised tests below vanish silently.
    assert len(CAPTURES) >= 10, f"no lab samples found in {SAMPLES}"




def _flow_of(label: dict, flows: list[dict]) -> dict:
    ends = {(label["src"], label["sport"]), (label["dst"], label["dport"])}
    for f in flows:
        if {(f["orig_h"], f["orig_p"]), (f["resp_h"], f["resp_p"])} == ends and (
                f["first_ts_ns"] <= label["ts_ns"] <= f["last_ts_ns"]):
            return f
    raise AssertionError(f"no flow holds the labelled RST {label}")


_DUR = re.compile(r"idle (?:(\d+) h ?)?(?:(\d+) min ?)?(?:([\d.]+) s)?(?:(\d+) ms)?")


def _seconds(label_text: str) -> float:
    m = _DUR.match(label_text)
    assert m, label_text
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0) + int(ms or 0) / 1000


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_sample_timelines_match_truth(capture):
    from rstscope.api import analyze

    a = analyze(capture)
    flows = a.flow_records()
    labels = sample_labels(capture)
    by_flow: dict[object, list[dict]] = {}
    for lab in labels:
        by_flow.setdefault(_flow_of(lab, flows)["flow_id"], []).append(lab)
    for flow in flows:
        truth = by_flow.get(flow["flow_id"], [])
        if not truth and not flow["resets"]:
            continue
        fig = Figure(figsize=(10, 5))
        lanes, ttl = fig.subplots(2, 1, sharex=True)
        timeline(a, flow["flow_id"], lanes, ttl_ax=ttl)
        fig.savefig(io.BytesIO(), format="png", dpi=40)
        markers = [ln for ln in lanes.lines if ln.get_gid() == "rst-marker"]
        assert len(markers) == len(truth) == flow["resets"], (flow["flow_id"], truth)
        # Each marker sits on the lane of the RST's sender.
        lane_y = sorted(m.get_ydata()[0] for m in markers)
        want_y = sorted(1.0 if (t["src"], t["sport"]) == (flow["orig_h"], flow["orig_p"]) else 0.0
                        for t in truth)
        assert lane_y == want_y
        names = [t.get_text() for t in lanes.get_yticklabels()]
        assert names[1].startswith("orig ") and str(flow["orig_p"]) in names[1]
        assert names[0].startswith("resp ") and str(flow["resp_p"]) in names[0]
        assert lanes.get_title().startswith(f"flow {flow['flow_id']}:")
        gaps = [_seconds(t.get_text()) for t in lanes.texts if t.get_gid() == "gap-label"]
        for t in truth:
            gap = t.get("idle_gap_s")
            if gap is not None and gap >= 1.5:
                # The silence before this RST is shaded and labelled with its length.
                assert any(abs(g - gap) <= max(0.15, 0.05 * gap) for g in gaps), (gap, gaps)
        import matplotlib.pyplot as plt

        plt.close("all")


@pytest.mark.parametrize("capture", CAPTURES[:3] + [c for c in CAPTURES if "storm" in c.name][:1],
                         ids=lambda c: c.name)
def test_sample_overview_and_histogram(capture):
    from rstscope.api import analyze

    a = analyze(capture)
    labels = sample_labels(capture)
    ax = overview(a, Figure().subplots())
    assert sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() == "rst-marker") == len(labels)
    ax = idle_gap_histogram(a, Figure().subplots())
    counted = sum(p.get_height() for p in ax.patches if p.get_gid() == "gap-hist")
    assert counted <= len(labels)


def _tshark_times(path, display_filter):
    import shutil
    import subprocess

    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(["tshark", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-e", "frame.number", "-e", "frame.time_epoch"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    return {int(f): float(t) for f, t in rows}


# Client-side captures of idle-timeout scenarios: their RST follows a silence the lab
# measured (label idle_gap_s); the server side of a middlebox expiry may see none.
TIMEOUT_SAMPLES = [c for c in CAPTURES if c.name.split(".")[0] in (
    "fw-idle-expiry-client-next", "server-idle-abort", "l4lb-idle-expiry",
    "client-read-timeout-abort") and ".server." not in c.name]


@pytest.mark.parametrize("capture", TIMEOUT_SAMPLES, ids=lambda c: c.name)
def test_timeout_lines_start_at_a_real_last_packet(capture):
    """Each known-timeout line sits exactly T after the last activity it is measured
    from, and that last activity is a real packet of the flow before the RST (tshark)."""
    from rstscope.api import analyze
    from rstscope.plot import time_axis_of
    from rstscope.plot.timeout_lines import parse_candidates

    a = analyze(capture)
    (label,) = sample_labels(capture)
    (r,) = [r for r in a.reset_records() if r["frame"] == label["frame"]]
    # The silence the timeline measures from is the one the lab's scenario produced.
    assert r["silence_s"] == pytest.approx(label["idle_gap_s"], abs=1e-3)
    ax = timeline(a, r, Figure().subplots(), ttl_track=False)
    taxis = time_axis_of(ax)
    assert taxis is not None
    (last,) = [ln for ln in ax.lines if ln.get_gid() == "last-activity"]
    t_last = float(taxis.seconds_of_x([last.get_xdata()[0]])[0])
    lines = [ln for ln in ax.lines if ln.get_gid() == "timeout-line"]
    # One line per catalog candidate near that silence (none is fine: then none drawn).
    want = sorted(k.timeout_s for k in parse_candidates(r["timeout_candidates"] or "")[:3])
    got = sorted(float(taxis.seconds_of_x([ln.get_xdata()[0]])[0]) - t_last for ln in lines)
    assert got == pytest.approx(want, abs=1e-6)
    if want:
        # Timeout names live in the legend (the lines' labels), not as text on the plot.
        names = " ".join(" ".join(ln.get_label().split()) for ln in lines)
        assert parse_candidates(r["timeout_candidates"])[0].names[0].split(" (")[0] in names
    # The last activity is a packet tshark sees in this flow, before the RST.
    flt = (f"tcp.port == {r['sport']} && tcp.port == {r['dport']} && frame.number < {r['frame']}")
    times = _tshark_times(capture, flt)
    t_abs = taxis.t0_ns / 1e9 + t_last
    assert min(abs(t - t_abs) for t in times.values()) < 2e-6
