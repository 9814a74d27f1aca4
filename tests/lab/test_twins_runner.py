"""Run the everyday twins for real (root) and check on the wire that each RST is what
the scenario claims: who made it, after what, and what the capture shows before it.

(The keep-alive races are run in tests/lab/test_everyday_runner.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rstscope.lab import LabResult, run_scenario
from rstscope.lab.truth import Seg, read_segments
from rstscope.schema import TH_ACK, TH_FIN, TH_RST, TH_SYN
from tests.lab.marks import LAB_ROOT_MARKS

pytestmark = LAB_ROOT_MARKS

# Default path: srv -> client crosses lb, rtr, fw (3 routers); TTLs of the defaults.
TTL_SRV, TTL_CLIENT = 64, 128


def _segs(r: LabResult, vantage: str) -> list[Seg]:
    return read_segments(next(v.pcap for v in r.vantages if v.name == vantage))


def _only(r: LabResult, vantage: str) -> dict[str, Any]:
    labels = r.labels(vantage)
    assert len(labels) == 1, labels
    return labels[0]


@pytest.mark.parametrize("ip_v", [4, 6])
def test_server_port_closed_is_the_servers_kernel_refusing_the_syn(tmp_path: Path, ip_v: int):
    r = run_scenario("server-port-closed", {"ip_v": str(ip_v)}, tmp_path)
    assert r.emitters == ("srv",)
    for vantage, hops in (("client", 3), ("server", 0)):
        lab = _only(r, vantage)
        assert (lab["emitter"], lab["origin"], lab["sender"], lab["cause"]) == (
            "srv", "server", "server-endpoint", "refused")
        assert lab["ttl"] == TTL_SRV - hops
        segs = _segs(r, vantage)
        # The whole connection is one SYN and its RST+ACK: nothing was ever accepted.
        assert [s.flags & (TH_SYN | TH_ACK | TH_RST) for s in segs] == [TH_SYN, TH_RST | TH_ACK]
        syn, rst = segs
        assert rst.ack == (syn.seq + 1) % 2**32 and rst.frame == lab["frame"]


@pytest.mark.parametrize(("late", "ip_v"), [("close-notify", 4), ("request", 4),
                                            ("close-notify", 6)])
def test_server_close_then_late_data(tmp_path: Path, late: str, ip_v: int):
    r = run_scenario("server-close-then-late-data",
                     {"ip_v": str(ip_v), "late": late, "late_s": "0.3"}, tmp_path)
    assert r.emitters == ("srv",)
    lab = _only(r, "client")
    assert (lab["emitter"], lab["origin"], lab["sender"], lab["cause"]) == (
        "srv", "server", "server-endpoint", "data-after-close")
    assert lab["ttl"] == TTL_SRV - 3
    segs = _segs(r, "client")
    server = {(s.src, s.sport) for s in segs if s.flags & (TH_SYN | TH_ACK) == TH_SYN}
    from_client = [s for s in segs if (s.src, s.sport) in server]
    from_server = [s for s in segs if (s.src, s.sport) not in server]
    fin = next(s for s in from_server if s.flags & TH_FIN)
    rst = next(s for s in from_server if s.flags & TH_RST)
    late_data = [s for s in from_client if s.payload_len and s.ts_ns > fin.ts_ns]
    # On the wire: the server's FIN (right after its complete response), then the client's
    # late record `late_s` later, then the server's RST answering it; nothing else.
    assert late_data and fin.ts_ns < late_data[0].ts_ns < rst.ts_ns
    assert 0.25 <= (late_data[0].ts_ns - fin.ts_ns) / 1e9 <= 0.6
    assert (rst.ts_ns - late_data[0].ts_ns) / 1e9 < 0.05
    # No new data from the server after its FIN (a retransmission of the FIN's own
    # segment may follow: the lab's sub-millisecond RTT fires a tail-loss probe before
    # the client's delayed ACK).
    end = (fin.seq + fin.payload_len) % 2**32
    assert all((s.seq + s.payload_len - fin.seq) % 2**32 <= fin.payload_len
               and (s.seq + s.payload_len) % 2**32 == end
               for s in from_server if s.ts_ns > fin.ts_ns and s.payload_len)
    assert not any(s.flags & TH_RST for s in from_client)
    # The server's own view: its RST leaves after the late data reached its closed socket.
    srv_lab = _only(r, "server")
    assert (srv_lab["emitter"], srv_lab["ttl"]) == ("srv", TTL_SRV)


@pytest.mark.parametrize("ip_v", [4, 6])
def test_lan_client_read_timeout_abort(tmp_path: Path, ip_v: int):
    r = run_scenario("lan-client-read-timeout-abort",
                     {"ip_v": str(ip_v), "read_timeout_s": "2"}, tmp_path)
    assert r.emitters == ("client",)
    import json

    m = json.loads(r.manifest.read_text())
    # The client on the server's own link: nothing between them.
    assert [n["node"] for n in m["path"]] == ["client", "srv"]
    assert m["path"][0]["hops_to_server"] == 0
    lab = _only(r, "server")
    assert (lab["emitter"], lab["origin"], lab["sender"], lab["cause"]) == (
        "client", "client", "client-endpoint", "client-read-timeout")
    # Unchanged TTL at the server: no router decremented it (what a proxy right in
    # front of the server shows too).
    assert lab["ttl"] == TTL_CLIENT
    assert abs(lab["idle_gap_s"] - 2.0) < 0.05
    segs = _segs(r, "server")
    # The server's last data, silence, then the client's RST: the server never closed.
    assert not any(s.flags & (TH_FIN | TH_RST) for s in segs if s.src == m["addresses"]["srv"])
    assert _only(r, "client")["ttl"] == TTL_CLIENT
