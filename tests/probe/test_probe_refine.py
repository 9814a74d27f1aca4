"""analyze --probe: lab probe results against the lab captures of the same boxes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from rstscope import api
from rstscope.core.vocab import Origin, Sender
from rstscope.probe.hop_evidence import judge
from rstscope.probe.model import result_from_dict
from tests.conftest import ANALYZE_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
DATA = Path(__file__).parent / "data"


def analyze(capture: str, *probes: str) -> dict:
    argv = [sys.executable, "-m", "rstscope", "analyze", "--format", "json",
            str(SAMPLES / f"{capture}.client.pcap")]
    for p in probes:
        argv += ["--probe", str(DATA / f"{p}.probe.json")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize(("capture", "probe"), [
    ("fw-idle-expiry-client-next", "fw-reject"),
    ("l4lb-idle-expiry", "l4lb"),
    ("nat-rebind-after-idle", "nat-rebind"),
    ("dpi-inject-single", "dpi-rtr"),
])
def test_agreeing_probe_raises_confidence(capture: str, probe: str) -> None:
    import jsonschema

    doc = analyze(capture, probe)
    jsonschema.validate(doc, ANALYZE_SCHEMA)  # the probe's additions keep the documented envelope
    before = analyze(capture)["resets"]
    after = doc["resets"]
    assert len(before) == len(after) >= 1
    for b, a in zip(before, after, strict=True):
        assert a["probe"]["agrees"] is True
        assert a["confidence"] > b["confidence"]
        # The classifier's origin stands; with the raised confidence it now clears the
        # --min-confidence bar (a verdict shown as "unknown" before may name its box).
        assert a["best_guess"] == b["best_guess"]
        assert a["origin"] == a["best_guess"]
        ev = a["evidence"][-1]
        assert ev["name"] == "probe" and ev["weight"] > 0
        assert len(a["evidence"]) == len(b["evidence"]) + 1


@pytest.mark.parametrize(("capture", "probe"), [
    # The firewall's RST (0 hops from the client) vs a probe that found the server's own
    # stack, or an on-path box at hop 2: both contradict the verdict.
    ("fw-idle-expiry-client-next", "nat-rebind"),
    ("fw-idle-expiry-client-next", "dpi-rtr"),
    # The server's RST vs a probe that found a firewall at hop 1.
    ("nat-rebind-after-idle", "fw-reject"),
])
def test_disagreeing_probe_never_raises_confidence(capture: str, probe: str) -> None:
    before = analyze(capture)["resets"]
    after = analyze(capture, probe)["resets"]
    for b, a in zip(before, after, strict=True):
        assert a["probe"]["agrees"] is False
        assert a["confidence"] < b["confidence"]
        assert a["evidence"][-1]["weight"] < 0
        assert a["best_guess"] == b["best_guess"]


def test_probe_without_a_reset_adds_context_only() -> None:
    before = analyze("fw-idle-expiry-client-next")["resets"]
    after = analyze("fw-idle-expiry-client-next", "fw-drop")["resets"]
    for b, a in zip(before, after, strict=True):
        assert a["confidence"] == b["confidence"]
        assert a["evidence"][-1]["weight"] == 0
        assert a["probe"]["outcome"] == "silent-drop"


def test_probe_on_another_target_changes_nothing() -> None:
    # The l4lb probe targets the VIP; the firewall capture's flow goes to the server.
    assert analyze("fw-idle-expiry-client-next", "l4lb") == analyze("fw-idle-expiry-client-next")


def test_probe_settles_which_box_when_the_verdict_listed_it() -> None:
    probe = result_from_dict(json.loads((DATA / "l4lb.probe.json").read_text()))
    # A real reset of the same capture, its verdict set to the case under test.
    first = api.analyze(str(SAMPLES / "l4lb-idle-expiry.client.pcap")).typed_resets()[0]
    reset = replace(first, origin=Origin.FIREWALL, sender=Sender.MIDDLEBOX, sender_hops=2,
                    confidence=0.4,
                    alternatives=(("load-balancer", "the wire shows a device"),))
    j = judge(reset, probe, "client")
    assert j.origin == "load-balancer" and j.confidence > 0.4
    # Same box kind claimed at another distance: no settling, no raise.
    j2 = judge(replace(reset, sender_hops=0), probe, "client")
    assert j2.origin == "firewall" and j2.confidence < 0.4


def test_bad_probe_files_are_one_line_errors(tmp_path: Path) -> None:
    cap = str(SAMPLES / "server-abort.client.pcap")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    for arg, code in ((str(tmp_path / "missing.json"), 66), (str(bad), 2)):
        r = subprocess.run([sys.executable, "-m", "rstscope", "analyze", cap, "--probe", arg],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == code, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
