"""Calibration against the reset lab's labelled captures (samples/*.labels.json).

The labels come from provenance (which namespace emitted each RST), not from
rstscope.  Targets: every labelled RST gets a record, origin accuracy >= 95 %
(the remaining misses are full proxies the wire cannot tell from the server,
see docs/verdicts.md), and no wrong verdict at confidence >= 0.8.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rstscope.catalog import load_timeouts
from rstscope.core import Tracker, TrackerConfig

ingest = pytest.importorskip("rstscope.ingest", reason="capture ingestion not available")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _labelled() -> list[tuple[Path, list[dict]]]:  # type: ignore[type-arg]
    out = []
    for lab in sorted(SAMPLES.glob("*.labels.json")):
        labels = json.loads(lab.read_text())
        pcap = lab.with_name(lab.name.replace(".labels.json", ".pcap"))
        if labels and pcap.exists():
            out.append((pcap, labels))
    return out


def test_lab_verdicts_are_calibrated():
    cases = _labelled()
    if not cases:
        pytest.skip("no labelled lab samples")
    total = right = confident_wrong = 0
    misses = []
    for pcap, labels in cases:
        tr = Tracker(TrackerConfig(timeouts=load_timeouts()))
        with ingest.open_capture(str(pcap)) as rd:
            for batch in rd:
                tr.feed(batch)
        tr.finish()
        by_frame = {r.frame: r for r in tr.resets()}
        for label in labels:
            rec = by_frame[label["frame"]]  # every labelled RST has its record
            total += 1
            if rec.origin == label["origin"]:
                right += 1
            else:
                misses.append(f"{pcap.name}#{label['frame']}: {rec.origin} "
                              f"(truth {label['origin']}, {rec.confidence})")
                confident_wrong += rec.confidence >= 0.8
    assert confident_wrong == 0, misses
    assert right / total >= 0.95, misses
