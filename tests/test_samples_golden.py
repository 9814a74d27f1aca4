"""The committed lab samples: golden analyzer output, and verdicts against the lab's truth.

The truth labels come from the lab's provenance (which namespace emitted each
RST), never from the analyzer, so the accuracy checks here can fail for real.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bless_goldens  # noqa: E402

from rstscope.api import analyze  # noqa: E402
from tests.conftest import sample_labels  # noqa: E402

CAPTURES = bless_goldens.captures()




@pytest.mark.parametrize("cap", CAPTURES, ids=[c.stem for c in CAPTURES])
def test_golden_output(cap: Path) -> None:
    golden = bless_goldens.GOLDEN / (cap.stem + ".json")
    assert golden.exists(), f"no golden for {cap.name}: run python scripts/bless_goldens.py"
    assert bless_goldens.golden_of(cap) == json.loads(golden.read_text())


def _verdicts() -> list[tuple[str, dict, dict]]:
    out = []
    for cap in CAPTURES:
        by_frame = {r["frame"]: r for r in analyze(cap).to_document()["resets"]}
        labels = sample_labels(cap)
        # Every RST gets exactly one record, and every labelled RST is one of them.
        assert len(by_frame) == len(labels), cap.name
        for lab in labels:
            out.append((cap.name, lab, by_frame[lab["frame"]]))
    return out


def test_accuracy_and_calibration_against_truth() -> None:
    rows = _verdicts()
    assert len(rows) >= 20
    right = [r for r in rows if r[1]["origin"] == r[2]["origin"]]
    wrong_confident = [f"{name} #{lab['frame']}: truth {lab['origin']}, said {v['origin']} "
                       f"at {v['confidence']:.2f}"
                       for name, lab, v in rows
                       if lab["origin"] != v["origin"] and v["confidence"] >= 0.8]
    accuracy = len(right) / len(rows)
    misses = [f"{n} #{lab['frame']}: truth {lab['origin']}, said {v['origin']} ({v['confidence']:.2f})"
              for n, lab, v in rows if lab["origin"] != v["origin"]]
    assert not wrong_confident, wrong_confident
    assert accuracy >= 0.95, f"origin accuracy {accuracy:.1%}; misses: {misses}"


def test_sender_matches_truth() -> None:
    rows = [r for r in _verdicts() if r[1].get("sender")]
    wrong = [f"{n} #{lab['frame']}: truth {lab['sender']}, said {v['sender']}"
             for n, lab, v in rows if lab["sender"] != v["sender"]]
    assert len(wrong) <= 0.05 * len(rows), wrong
