"""The everyday-cause samples (rstscope.lab.everyday) get the right cause name.

Truth is the lab's: every RST's label carries the scenario's cause for the
device that emitted it; a stall scenario's configured cause is in its manifest.
The client of a PMTU black hole sees the hole (duplicate ACKs that never get it
filled); the client behind a buffering proxy sees whole-buffer bursts, but not
whether the last silence was the proxy or the upstream, so its verdict names
``idle-timeout`` as the alternative (docs/schema.md).  The older samples are the
negative set: none of them may be given one of the new names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rstscope.api import analyze
from rstscope.lab.everyday import SCENARIOS, STALL_SCENARIOS, stall_truth

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
NEW = [s.name for s in SCENARIOS]
NEW_CAUSES = {"keepalive-race", "pmtu-blackhole", "proxy-buffering", "total-timeout",
              "accept-overflow"}
VANTAGES = ("client", "client-any", "server")
#: (scenario, vantage) -> the alternatives its verdict must name (one capture
#: cannot rule them out); every other verdict names none.
ALTERNATIVES = {
    ("proxy-buffering", "client"): ("idle-timeout",),
    ("proxy-buffering", "client-any"): ("idle-timeout",),
}
#: Captures where no RST carries the cause at all: only the join tells (tests/join).
JOIN_ONLY = {("proxy-buffering", "server")}


def _labels(name: str, vantage: str) -> list[dict[str, object]]:
    return json.loads((SAMPLES / f"{name}.{vantage}.labels.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("vantage", VANTAGES)
@pytest.mark.parametrize("name", NEW)
def test_new_sample_gets_its_cause_name(name: str, vantage: str) -> None:
    a = analyze(SAMPLES / f"{name}.{vantage}.pcap")
    by_frame = {r.frame: r for r in a.tracker.resets()}
    primary = [lb for lb in _labels(name, vantage) if lb["cause"] != "side-effect"]
    for lb in primary:
        r = by_frame[int(lb["frame"])]  # type: ignore[call-overload]
        assert r.cause_id == lb["cause"], (lb["frame"], lb["cause"])
        assert r.cause_alternatives == ALTERNATIVES.get((name, vantage), ())
    if name in STALL_SCENARIOS:
        manifest = json.loads((SAMPLES / f"{name}.manifest.json").read_text())
        want_stall = stall_truth(manifest)
        if not (name == "haproxy-maxconn" and vantage == "server"):
            # (haproxy's queued clients stall on the client side of the proxy only)
            assert {s.cause_id for s in a.tracker.stalls()} == want_stall
    if not primary and name not in STALL_SCENARIOS and (name, vantage) not in JOIN_ONLY:
        pytest.fail(f"{name}.{vantage}: no RST carries the cause and it is no stall scenario")


@pytest.mark.parametrize("name", NEW)
def test_json_document_carries_cause_ids_and_stalls(name: str) -> None:
    doc = analyze(SAMPLES / f"{name}.client.pcap").to_document()
    assert all("cause_id" in r for r in doc["resets"])
    assert isinstance(doc["stalls"], list)
    for s in doc["stalls"]:
        assert s["cause_id"] and s["cause"] and s["advice"]


def _old_samples() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("*.pcap") if p.name.split(".")[0] not in NEW)


@pytest.mark.parametrize("cap", _old_samples(), ids=lambda p: p.stem)
def test_older_samples_get_none_of_the_new_names(cap: Path) -> None:
    a = analyze(cap)
    assert not {r.cause_id for r in a.tracker.resets()} & NEW_CAUSES
    assert a.tracker.stalls() == []


def test_stalls_frame_has_the_documented_columns() -> None:
    df = analyze(SAMPLES / "worker-timeout.client.pcap").stalls
    assert list(df.columns)[:3] == ["flow_id", "ts_ns", "kind"]
    assert df["cause_id"].tolist() == ["total-timeout"]
    empty = analyze(SAMPLES / "graceful-close.client.pcap").stalls
    assert list(empty.columns) == list(df.columns) and len(empty) == 0
