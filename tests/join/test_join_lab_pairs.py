"""--join on the lab's client+server capture pairs: every connection paired correctly.

The truth is computed here independently of rstscope, with dpkt: a connection
seen at both points through routers/NAT/L4 balancers keeps its initial sequence
numbers; a flow without a handshake at the server (NAT rebinding) continues the
sequence space of the client's connection; behind a full proxy, haproxy's own log names the upstream source port it used for
each client connection (the manifest's ``events.proxy``); behind nginx a
scenario with one client connection has exactly one upstream connection.
"""

from __future__ import annotations

import json
from pathlib import Path

import dpkt
import pytest

from rstscope.api import analyze
from rstscope.join import join
from rstscope.lab.scenarios import SCENARIOS

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
PAIRS = sorted(p.name[: -len(".client.pcap")] for p in SAMPLES.glob("*.client.pcap")
               if (SAMPLES / p.name.replace(".client.", ".server.")).exists())

Tuple4 = tuple[str, int, str, int]


def _conns(path: Path) -> dict[Tuple4, dict[str, object]]:
    """Connections by (client addr, port, server addr, port): ISNs and seq ranges."""
    out: dict[Tuple4, dict[str, object]] = {}
    with path.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            fam = 4 if isinstance(ip, dpkt.ip.IP) else 6
            import socket

            af = socket.AF_INET if fam == 4 else socket.AF_INET6
            src, dst = socket.inet_ntop(af, ip.src), socket.inet_ntop(af, ip.dst)
            # The server listens on 443 in every lab scenario.
            key = (src, tcp.sport, dst, tcp.dport) if tcp.dport == 443 else (dst, tcp.dport, src, tcp.sport)
            c = out.setdefault(key, {"isn_c": None, "isn_s": None, "seqs_c": set()})
            syn, ack = tcp.flags & dpkt.tcp.TH_SYN, tcp.flags & dpkt.tcp.TH_ACK
            if syn and not ack and tcp.dport == 443:
                c["isn_c"] = tcp.seq
            elif syn and ack:
                c["isn_s"] = tcp.seq
            if tcp.dport == 443:
                c["seqs_c"].add(tcp.seq)  # type: ignore[union-attr]
    return out


def _truth(name: str) -> tuple[set[tuple[Tuple4, Tuple4]], set[Tuple4], set[Tuple4]]:
    a, b = _conns(SAMPLES / f"{name}.client.pcap"), _conns(SAMPLES / f"{name}.server.pcap")
    manifest = json.loads((SAMPLES / f"{name}.manifest.json").read_text())
    scen = SCENARIOS[manifest["scenario"]]
    proxy = scen.plan(scen.params({k: str(v) for k, v in manifest["params"].items()
                                   if k in scen.params()})).full_proxy
    pairs: set[tuple[Tuple4, Tuple4]] = set()
    logged = [e for e in manifest["events"].get("proxy", []) if e.get("bp", "-").isdigit()]
    if proxy and logged:
        # haproxy logged each connection it relayed: client (ci, cp) -> upstream (bi, bp).
        for e in logged:
            ka = (e["ci"], int(e["cp"]), e["fi"], int(e["fp"]))
            kb = (e["bi"], int(e["bp"]), e["si"], int(e["sp"]))
            if ka in a and kb in b:
                pairs.add((ka, kb))
    elif proxy:
        if len(a) != 1 or len(b) > 1:
            pytest.fail(f"{name}: several proxied connections and no proxy log: no independent truth")
        pairs = {(ka, kb) for ka in a for kb in b}
    else:
        for ka, ca in a.items():
            for kb, cb in b.items():
                if ca["isn_c"] is not None and (ca["isn_c"], ca["isn_s"]) == (cb["isn_c"], cb["isn_s"]):
                    pairs.add((ka, kb))
                elif cb["isn_c"] is None and cb["seqs_c"] & ca["seqs_c"]:  # type: ignore[operator]
                    pairs.add((ka, kb))  # the rebound flow continues the connection
    return pairs, set(a) - {p[0] for p in pairs}, set(b) - {p[1] for p in pairs}


@pytest.mark.parametrize("name", PAIRS)
def test_join_pairs_every_connection_correctly(name: str) -> None:
    want, alone_a, alone_b = _truth(name)
    j = join(analyze(SAMPLES / f"{name}.client.pcap"), analyze(SAMPLES / f"{name}.server.pcap"))
    fa = {f.flow_id: (f.orig_h, f.orig_p, f.resp_h, f.resp_p) for f in j.a.tracker.flows()}
    fb = {f.flow_id: (f.orig_h, f.orig_p, f.resp_h, f.resp_p) for f in j.b.tracker.flows()}
    got = {(fa[s.a_flow], fb[s.b_flow]) for s in j.stories}
    assert got == want
    assert {fa[i] for i in j.unpaired_a} == alone_a
    assert {fb[i] for i in j.unpaired_b} == alone_b


def test_haproxy_maxconn_pairs_one_to_one_and_the_served_connection_with_its_upstream() -> None:
    # Five client connections behind haproxy maxconn 1: no independent truth for the
    # queued ones, but the pairing must be one to one and the one served connection
    # must pair with the upstream connection that carried its response.
    j = join(analyze(SAMPLES / "haproxy-maxconn.client.pcap"),
             analyze(SAMPLES / "haproxy-maxconn.server.pcap"))
    assert len({s.a_flow for s in j.stories}) == len({s.b_flow for s in j.stories}) == len(j.stories)
    served = [s for s in j.stories if s.a_bytes[1] > 1000]
    assert len(served) == 1 and served[0].b_bytes[1] == served[0].a_bytes[1]


def test_join_names_what_one_capture_cannot() -> None:
    jb = join(analyze(SAMPLES / "proxy-buffering.client.pcap"),
              analyze(SAMPLES / "proxy-buffering.server.pcap"))
    assert [s.cause_id for s in jb.stories] == ["proxy-buffering"]
    jp = join(analyze(SAMPLES / "pmtu-blackhole.client.pcap"),
              analyze(SAMPLES / "pmtu-blackhole.server.pcap"))
    (s,) = jp.stories
    assert s.cause_id == "pmtu-blackhole" and s.how == "same-connection"
    assert s.first_rst == "A" and s.rst_crossed == "yes"
    assert "never reached A" in s.bytes_stopped


@pytest.mark.parametrize("name", ["nginx-proxy-timeout", "client-read-timeout-abort",
                                  "haproxy-timeout", "fw-idle-expiry-client-next"])
def test_join_does_not_name_buffering_or_blackholes_elsewhere(name: str) -> None:
    j = join(analyze(SAMPLES / f"{name}.client.pcap"), analyze(SAMPLES / f"{name}.server.pcap"))
    assert all(s.cause_id is None for s in j.stories)


def test_join_of_a_firewall_reject_leaves_the_client_connection_alone() -> None:
    j = join(analyze(SAMPLES / "fw-policy-reject.client.pcap"),
             analyze(SAMPLES / "fw-policy-reject.server.pcap"))
    assert j.stories == [] and len(j.unpaired_a) == 1
