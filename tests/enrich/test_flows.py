"""Cutting reset flows out of a capture: rstscope's frame selection vs tshark's view."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from rstscope.enrich.context import FlowKey
from rstscope.enrich.flows import (
    EDITCAP_MAX_SELECTIONS,
    display_filter,
    extract,
    frame_ranges,
    scan,
    source_paths,
)
from rstscope.errors import UsageError


def _tshark_fields(path, *fields, flt=None):
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t"]
    if flt:
        argv += ["-Y", flt]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line]


def test_flow_key_is_direction_free_and_normalised():
    a = FlowKey.of("192.0.2.1", 443, "192.0.2.9", 50000)
    assert a == FlowKey.of("192.0.2.9", 50000, "192.0.2.1", 443)
    assert a == FlowKey.of("::ffff:192.0.2.9", 50000, "192.0.2.1", 443)
    assert FlowKey.of("2001:db8:0::1", 1, "2001:db8::2", 2).a == "2001:db8::1"


def test_frame_ranges():
    assert frame_ranges(np.array([1, 2, 3, 7, 9, 10])) == ["1-3", "7", "9-10"]
    assert frame_ranges(np.array([], dtype=np.int64)) == []


def test_streams_are_refused():
    with pytest.raises(UsageError):
        source_paths("-")


def test_scan_matches_tshark_flow_filter(recording, tshark):
    """The frames rstscope picks for the reset flows are those tshark's 5-tuple filter picks."""
    keys, frames = scan(recording.pcap)
    want = [int(r[0]) for r in _tshark_fields(recording.pcap, "frame.number",
                                              flt=display_filter(keys[0]))]
    assert frames[0].tolist() == want
    rst_flows = {FlowKey.of(*r) for r in _tshark_fields(
        recording.pcap, "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport",
        flt="tcp.flags.reset==1")}
    assert keys[0] == {FlowKey(k.a, int(k.a_port), k.b, int(k.b_port)) for k in rst_flows}


def test_extract_beyond_editcap_selection_limit(shared_dir, tmp_path, tshark):
    """More than 512 selections: editcap runs are concatenated in order by mergecap -a."""
    src = shared_dir / "captures" / "zeek" / "Traces" / "llc.pcap"
    if not src.exists():
        pytest.skip("llc.pcap not in the shared captures")
    total = len(_tshark_fields(src, "frame.number"))
    frames = np.arange(1, total + 1, 2, dtype=np.int64)  # every other frame: no ranges merge
    assert len(frames) > EDITCAP_MAX_SELECTIONS  # at least two editcap runs
    out = tmp_path / "cut.pcapng"
    fmap = extract([str(src)], {0: frames}, out)
    assert fmap.frame.tolist() == frames.tolist()
    cut = _tshark_fields(out, "frame.time_epoch", "frame.len")
    orig = {int(r[0]): r[1:] for r in _tshark_fields(src, "frame.number", "frame.time_epoch",
                                                      "frame.len")}
    assert cut == [orig[int(f)] for f in frames]
