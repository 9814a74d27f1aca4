"""Per-address TTL baselines across flows (rstscope.core.hosts)."""

from __future__ import annotations

from rstscope.core.flow import DirTable, Flow
from rstscope.core.hosts import LIVE_FLOWS_READ, HostBaselines

CLIENT = bytes([198, 51, 100, 10])
SERVER = bytes([203, 0, 113, 20])


def flow(table: DirTable, flow_id: int, server_ttls: dict[int, int],
         server: bytes = SERVER) -> Flow:
    f = Flow(table, flow_id, 1, flow_id.to_bytes(4, "big"), True, "syn", False, 4, CLIENT,
             40000 + flow_id, server, 443)
    f.dirs[0].ttl_counts.update({64: 3})
    f.dirs[1].ttl_counts.update(server_ttls)
    return f


def test_live_and_retired_flows_of_the_address_count_but_not_the_asking_flow() -> None:
    table = DirTable(16)
    hosts = HostBaselines(max_hosts=8)
    a, b, asking = flow(table, 1, {52: 4}), flow(table, 2, {52: 2}), flow(table, 3, {})
    for f in (a, b, asking):
        hosts.add(f)
    assert hosts.baseline(SERVER, asking) == {52: 6}
    hosts.remove(a)  # retired: folded in, still counted once
    assert hosts.baseline(SERVER, asking) == {52: 6}
    assert hosts.baseline(CLIENT, asking) == {64: 6}  # the client side of its flows
    assert hosts.baseline(bytes([192, 0, 2, 1]), asking) == {}


def test_a_look_up_reads_only_the_newest_live_flows() -> None:
    # A port scan of one host: thousands of live flows; a look-up stays bounded.
    table = DirTable(4 * (LIVE_FLOWS_READ + 10))
    hosts = HostBaselines(max_hosts=8)
    flows = [flow(table, i, {52: 1}) for i in range(1, LIVE_FLOWS_READ + 10)]
    for f in flows:
        hosts.add(f)
    assert hosts.baseline(SERVER, flows[-1]) == {52: LIVE_FLOWS_READ}


def test_retired_addresses_are_bounded() -> None:
    table = DirTable(16)
    hosts = HostBaselines(max_hosts=2)
    servers = [bytes([203, 0, 113, n]) for n in (1, 2, 3)]
    fs = [flow(table, i + 1, {50 + i: 1}, server=s) for i, s in enumerate(servers)]
    for f in fs:
        hosts.add(f)
        hosts.remove(f)
    probe = flow(table, 9, {})
    assert hosts.baseline(servers[0], probe) == {}  # the oldest address went first
    assert hosts.baseline(servers[2], probe) == {52: 1}
