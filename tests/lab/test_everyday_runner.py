"""Run the everyday-cause scenarios for real (root) and check truth and verdicts.

Fresh runs, not the committed samples: the lab must reproduce each cause every
time, and the analyzer must name it (tests/core/test_everyday_samples.py holds
the committed samples to the same expectations).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from rstscope.api import analyze
from rstscope.join import join
from rstscope.lab import LabResult, run_scenario

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lab needs Linux namespaces"),
    pytest.mark.skipif(os.geteuid() != 0 if hasattr(os, "geteuid") else True,
                       reason="lab needs root (network namespaces)"),
]


def _run(tmp: Path, name: str, ip_v: int = 4) -> LabResult:
    return run_scenario(name, {"ip_v": str(ip_v)}, tmp / f"{name}-v{ip_v}")


def _pcap(r: LabResult, vantage: str) -> Path:
    return next(v.pcap for v in r.vantages if v.name == vantage)


def _primary_causes(r: LabResult, vantage: str) -> dict[int, str]:
    return {lb["frame"]: lb["cause"] for lb in r.labels(vantage) if lb["cause"] != "side-effect"}


@pytest.mark.parametrize(("name", "ip_v"), [("keepalive-race-fin-first", 4),
                                            ("keepalive-race-fin-first", 6),
                                            ("keepalive-race-request-first", 4),
                                            ("client-total-timeout", 4),
                                            ("accept-overflow", 4)])
def test_reset_scenarios_are_named_at_every_vantage(tmp_path: Path, name: str, ip_v: int) -> None:
    r = _run(tmp_path, name, ip_v)
    for vantage in ("client", "server"):
        want = _primary_causes(r, vantage)
        assert want, f"{name}: no RST with the scenario's cause at {vantage}"
        got = {x.frame: x.cause_id for x in analyze(_pcap(r, vantage)).tracker.resets()}
        for frame, cause in want.items():
            assert got[frame] == cause, (vantage, frame)


@pytest.mark.parametrize("ip_v", [4, 6])
def test_pmtu_blackhole_server_view_and_join(tmp_path: Path, ip_v: int) -> None:
    r = _run(tmp_path, "pmtu-blackhole", ip_v)
    assert r.emitters == ("client",)
    server = analyze(_pcap(r, "server"))
    assert [s.cause_id for s in server.tracker.stalls()] == ["pmtu-blackhole"]
    assert [x.cause_id for x in server.tracker.resets()] == ["pmtu-blackhole"]
    j = join(analyze(_pcap(r, "client")), server)
    assert [s.cause_id for s in j.stories] == ["pmtu-blackhole"]


def test_proxy_buffering_needs_and_gets_the_join(tmp_path: Path) -> None:
    r = _run(tmp_path, "proxy-buffering")
    j = join(analyze(_pcap(r, "client")), analyze(_pcap(r, "server")))
    assert [s.cause_id for s in j.stories] == ["proxy-buffering"]


@pytest.mark.parametrize(("name", "cause"), [("worker-timeout", "total-timeout"),
                                             ("haproxy-maxconn", "accept-overflow")])
def test_stall_scenarios_are_named_as_stalls(tmp_path: Path, name: str, cause: str) -> None:
    if name == "worker-timeout":
        pytest.importorskip("gunicorn")
    r = _run(tmp_path, name)
    stalls = analyze(_pcap(r, "client")).tracker.stalls()
    assert stalls and {s.cause_id for s in stalls} == {cause}
