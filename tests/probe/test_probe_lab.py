"""rstscope probe in the lab (root): real routers, netfilter, NAT, balancer and injector.

Each case places one box at one hop, runs ``rstscope probe`` from the client
namespace, and checks the answer against provenance: the namespace that
emitted the RST (a RST that leaves a namespace without having arrived there,
the lab's truth rule), or for a silent DROP the namespace holding the rule.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rstscope.lab import topology
from rstscope.lab.probe_lab import ProbeLab, hop_of, nft_tables, probe_lab
from rstscope.lab.session import leftovers
from rstscope.probe.guard import TABLE_PREFIX
from rstscope.probe.runner import client_hello

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                       reason="the lab needs root (network namespaces)"),
]

#: Short waits: conntrack / balancer state lives 1 s in the box's namespace.
IDLE = ["--idle", "2.5", "--wait", "0.5", "--max-hops", "8"]
BLOCKED = "blocked.lab.test"
SNI = ["--trigger", "sni", "--sni", BLOCKED, "--wait", "0.5", "--max-hops", "8"]


def _first_emitter(lab: ProbeLab) -> str:
    em = [e for e in lab.emitters() if e.node != "client"]
    assert em, "no namespace emitted a RST"
    return em[0].node


def _router_addr(node: str, ip_v: int) -> str:
    """The address a router answers time-exceeded from: its side of the client-side link."""
    lk = next(lk for lk in topology.LINKS if lk.b == node)
    return lk.b4 if ip_v == 4 else lk.b6


def _check_path(doc: dict, ip_v: int) -> None:
    # Every router on the way answered from its client-side address, in order.
    te = [h for h in doc["path"] if h["reply"] == "time-exceeded"]
    assert [h["from"] for h in te] == [_router_addr(n, ip_v) for n in ("fw", "rtr", "lb")]
    assert doc["endpoint_hops"] == hop_of("srv")


@pytest.mark.parametrize("ip_v", [4, 6])
@pytest.mark.parametrize("node", ["fw", "rtr", "lb"])
def test_conntrack_reject_at_each_hop(node: str, ip_v: int) -> None:
    args = [*IDLE, *(["--sni", "api.lab.test"] if node == "rtr" else [])]
    with probe_lab(ip_v=ip_v, box="reject", node=node) as lab:
        doc = lab.run_probe(args)
        emitter = _first_emitter(lab)
    assert emitter == node
    _check_path(doc, ip_v)
    assert doc["outcome"] == "middlebox-reset" and doc["box"] == "firewall"
    assert doc["reset_hop"] == hop_of(node) and doc["reset_hop_basis"] == "rst-ttl"
    # A filtering router answers time-exceeded at its own hop, and resets one later.
    assert doc["rst_hop"] == hop_of(node) + 1 and not doc["on_path"]
    assert doc["reset_addr"] == _router_addr(node, ip_v)
    assert doc["rst_ttl"] is not None and (doc["rst_ip_id"] is None) == (ip_v == 6)
    assert len(doc["hops"]) == doc["rst_hop"]


@pytest.mark.parametrize(("node", "ip_v"), [("fw", 4), ("rtr", 4), ("lb", 4), ("rtr", 6)])
def test_injector_with_sni_trigger(node: str, ip_v: int) -> None:
    with probe_lab(ip_v=ip_v, box="inject", node=node, blocked_sni=BLOCKED) as lab:
        doc = lab.run_probe(SNI)
        emitter = _first_emitter(lab)
    assert emitter == node
    assert doc["outcome"] == "middlebox-reset" and doc["on_path"]
    # On-path: the probe that expires at the injector's hop also draws its RST.
    assert doc["rst_hop"] == doc["reset_hop"] == hop_of(node)
    assert doc["hops"][-1]["icmp_from"] == _router_addr(node, ip_v)


def test_data_trigger_with_the_users_bytes(tmp_path: Path) -> None:
    payload = tmp_path / "hello.bin"
    payload.write_bytes(client_hello(BLOCKED))
    with probe_lab(box="inject", node="rtr", blocked_sni=BLOCKED) as lab:
        doc = lab.run_probe(["--trigger", "data", "--payload", str(payload), "--wait", "0.5",
                             "--plot", str(tmp_path / "path.png")])
        emitter = _first_emitter(lab)
    assert emitter == "rtr" and doc["trigger"] == "data"
    assert doc["reset_hop"] == hop_of("rtr")
    assert (tmp_path / "path.png").read_bytes()[:4] == b"\x89PNG"


def test_sni_not_blocked_reaches_the_server() -> None:
    with probe_lab(box="inject", node="rtr", blocked_sni=BLOCKED) as lab:
        doc = lab.run_probe(["--trigger", "sni", "--sni", "fine.lab.test", "--wait", "0.5"])
    assert doc["outcome"] == "no-reset" and doc["rst_hop"] is None
    assert doc["hops"][-1]["reply"] == "ack" and doc["hops"][-1]["ttl"] == hop_of("srv")


@pytest.mark.parametrize("ip_v", [4, 6])
def test_l4_balancer_expiry(ip_v: int) -> None:
    with probe_lab(ip_v=ip_v, box="l4lb", node="lb") as lab:
        doc = lab.run_probe(IDLE)
        emitter = _first_emitter(lab)
    assert emitter == "lb"
    assert doc["outcome"] == "middlebox-reset" and doc["box"] == "load-balancer"
    assert doc["reset_hop"] == hop_of("lb") and doc["endpoint_hops"] == hop_of("srv")
    # The box that resets answers time-exceeded from the very address we targeted (the VIP).
    assert doc["reset_addr"] == doc["address"] == topology.LB_ADDR[ip_v]


def test_nat_rebinding_is_answered_by_the_server() -> None:
    with probe_lab(box="snat", node="fw") as lab:
        doc = lab.run_probe(IDLE)
        emitter = _first_emitter(lab)
    assert emitter == "srv"
    assert doc["outcome"] == "endpoint-unknown-connection" and doc["endpoint"] is True
    assert doc["reset_hop"] == hop_of("srv") and doc["rst_ttl"] == doc["endpoint_ttl"]
    assert doc["socket_alive"] is True and "NAT" in doc["verdict"]


@pytest.mark.parametrize(("node", "ip_v"), [("fw", 4), ("rtr", 6)])
def test_silent_drop_is_reported_at_its_hop(node: str, ip_v: int) -> None:
    with probe_lab(ip_v=ip_v, box="drop", node=node) as lab:
        doc = lab.run_probe(IDLE)
        emitters = [e for e in lab.emitters() if e.node != "client"]
    assert emitters == []
    assert doc["outcome"] == "silent-drop" and doc["rst_hop"] is None
    assert doc["drop_after_hop"] == hop_of(node)
    assert f"at or after hop {hop_of(node)}" in doc["verdict"]
    # It stops one hop past where the endpoint answered on the fresh connection.
    assert len(doc["hops"]) == hop_of("srv") + 1


def test_rate_limit_and_max_hops_are_kept() -> None:
    with probe_lab(box="drop", node="fw") as lab:
        doc = lab.run_probe(["--idle", "2.5", "--wait", "0.05", "--max-hops", "3"])
        segs = [s for c in lab.caps if c.name == "ns-client"
                for s in _client_probes(lab, c.path)]
    assert len(doc["hops"]) <= 3 and len(doc["path"]) <= 3
    gaps = [b - a for a, b in zip(segs, segs[1:], strict=False)]
    assert segs and min(gaps) >= 0.1e9 - 2e6  # 100 ms between probes (2 ms of clock slack)


def _client_probes(lab: ProbeLab, path: Path) -> list[int]:
    from rstscope.lab import truth

    lab.emitters()  # stops the captures
    # Probes are the client's outgoing segments sent with a small TTL (the kernel uses 128).
    return [s.ts_ns for s in truth.read_segments(path) if s.outgoing and s.ttl <= 8]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_teardown_after_signal(sig: signal.Signals) -> None:
    run_id = None
    with probe_lab(box="reject", node="fw") as lab:
        run_id = lab.session.run_id
        ns = lab.topo.ns["client"]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *lab.probe_argv([lab.target_arg(), "--idle", "60"])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while TABLE_PREFIX not in nft_tables(lab.session, ns):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the guard never appeared"
                time.sleep(0.1)
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, err
        assert err.strip().count("\n") == 0 and "Traceback" not in err
        assert TABLE_PREFIX not in nft_tables(lab.session, ns)
        # No socket of any process is left in the client namespace (TCP or raw).
        for kind in ("-t", "-w"):
            ss = lab.session.run(["ss", "-Hanp", kind], ns=ns).stdout
            assert "users:" not in ss, ss
        # Nothing runs in the client namespace but the lab's own tcpdump.
        pids = set(lab.session.run(["ip", "netns", "pids", ns]).stdout.split())
        assert pids <= {str(c.proc.pid) for c in lab.caps}, pids
    assert not [n for n in leftovers() if run_id in n]
