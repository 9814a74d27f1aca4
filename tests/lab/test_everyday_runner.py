"""Run the everyday-cause scenarios for real (root) and check truth and verdicts.

Fresh runs, not the committed samples: the lab must reproduce each cause every
time, and the analyzer must name it (tests/core/test_everyday_samples.py holds
the committed samples to the same expectations).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rstscope.api import analyze
from rstscope.join import join
from rstscope.lab import LabResult, run_scenario  # noqa: F401 - run_scenario: maxconn test
from tests.lab.marks import LAB_ROOT_MARKS

pytestmark = LAB_ROOT_MARKS


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
    # The client sees the hole before the short last segment, never filled.
    client = analyze(_pcap(r, "client"))
    assert [x.cause_id for x in client.tracker.resets()] == ["pmtu-blackhole"]
    assert [(s.kind, s.cause_id) for s in client.tracker.stalls()] == [("data-hole",
                                                                         "pmtu-blackhole")]
    j = join(client, server)
    assert [s.cause_id for s in j.stories] == ["pmtu-blackhole"]


def test_proxy_buffering_needs_and_gets_the_join(tmp_path: Path) -> None:
    r = _run(tmp_path, "proxy-buffering")
    client = analyze(_pcap(r, "client"))
    # Alone, the client sees whole-buffer bursts and names buffering, with the quiet
    # upstream it cannot rule out as the alternative; the join settles it.
    (x,) = client.tracker.resets()
    assert (x.cause_id, x.cause_alternatives) == ("proxy-buffering", ("idle-timeout",))
    j = join(client, analyze(_pcap(r, "server")))
    assert [s.cause_id for s in j.stories] == ["proxy-buffering"]


@pytest.mark.parametrize(("name", "cause"), [("worker-timeout", "total-timeout"),
                                             ("haproxy-maxconn", "accept-overflow")])
def test_stall_scenarios_are_named_as_stalls(tmp_path: Path, name: str, cause: str) -> None:
    if name == "worker-timeout":
        pytest.importorskip("gunicorn")
    r = _run(tmp_path, name)
    stalls = analyze(_pcap(r, "client")).tracker.stalls()
    assert stalls and {s.cause_id for s in stalls} == {cause}


def _upstream_syn_times(pcap: Path) -> list[float]:
    import dpkt

    out = []
    with pcap.open("rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = getattr(ip, "data", None)
            if isinstance(tcp, dpkt.tcp.TCP) and tcp.flags & dpkt.tcp.TH_SYN \
                    and not tcp.flags & dpkt.tcp.TH_ACK:
                out.append(float(ts))
    return out


def test_haproxy_maxconn_is_what_holds_the_clients_back(tmp_path: Path) -> None:
    """On the wire: with maxconn 1 haproxy opens no second upstream connection while
    the first streams, the client's extra SYNs go unanswered and haproxy's log pairs
    every relayed client connection with the join's.  With the limit lifted (maxconn
    = conns) haproxy takes every connection and relays it upstream at once: no SYN
    goes unanswered (what still waits, waits in the one-at-a-time lab server's queue,
    which is what the samples showed while maxconn never reached haproxy's config)."""
    import json

    limited = run_scenario("haproxy-maxconn", {}, tmp_path / "limited")
    syns = _upstream_syn_times(_pcap(limited, "server"))
    assert len(syns) >= 2 and syns[1] - syns[0] > 4.0  # the queue waited for the slot
    client = analyze(_pcap(limited, "client"))
    kinds = sorted(s.kind for s in client.tracker.stalls())
    assert "syn-unanswered" in kinds and "request-unanswered" in kinds
    assert {s.cause_id for s in client.tracker.stalls()} == {"accept-overflow"}
    logged = {(int(e["cp"]), int(e["bp"])) for e in json.loads(
        limited.manifest.read_text())["events"]["proxy"] if e["bp"].isdigit()}
    j = join(client, analyze(_pcap(limited, "server")))
    fa = {f.flow_id: f.orig_p for f in j.a.tracker.flows()}
    fb = {f.flow_id: f.orig_p for f in j.b.tracker.flows()}
    assert {(fa[s.a_flow], fb[s.b_flow]) for s in j.stories} == logged

    free = run_scenario("haproxy-maxconn", {"maxconn": "5"}, tmp_path / "free")
    syns = _upstream_syn_times(_pcap(free, "server"))
    assert len(syns) == 5 and syns[-1] - syns[0] < 1.0
    assert all(s.kind != "syn-unanswered" for s in analyze(_pcap(free, "client")).tracker.stalls())
