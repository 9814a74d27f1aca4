"""The path description: the default path is the one the samples were recorded on, and
generated paths have unique addresses, real hop counts and the firewall where asked."""

from __future__ import annotations

import ipaddress

import pytest

from rstscope.errors import UsageError
from rstscope.lab import topology as t


def test_default_path_keeps_its_addresses_and_interface_names():
    assert t.path_for() == t.DEFAULT_PATH
    assert t.DEFAULT_PATH.nodes == t.NODES == ("client", "fw", "rtr", "lb", "srv")
    # The addresses every sample, doc and test was written against.
    assert [(lk.a, lk.b, lk.a_if, lk.b_if, lk.a4, lk.b4, lk.a6, lk.b6) for lk in t.LINKS] == [
        ("client", "fw", "eth0", "cli0", "192.0.2.2", "192.0.2.1", "2001:db8:1::2",
         "2001:db8:1::1"),
        ("fw", "rtr", "up0", "fw0", "198.51.100.1", "198.51.100.2", "2001:db8:2::1",
         "2001:db8:2::2"),
        ("rtr", "lb", "lb0", "up0", "198.51.100.9", "198.51.100.10", "2001:db8:3::9",
         "2001:db8:3::a"),
        ("lb", "srv", "srv0", "eth0", "203.0.113.1", "203.0.113.2", "2001:db8:4::1",
         "2001:db8:4::2"),
    ]
    topo = t.Topology(ns={}, ttl={}, path=t.DEFAULT_PATH)
    for v in (4, 6):
        assert topo.addr_toward_client("lb", v) == t.LB_ADDR[v]
        assert topo.addr_toward_server("lb", v) == t.LB_INNER_ADDR[v]
        assert topo.addr_toward_server("fw", v) == t.FW_OUTER_ADDR[v]
    assert topo.iface_toward_client("rtr") == "fw0"  # where the injector sniffs
    assert topo.iface_toward_server("fw") == "up0"   # where SNAT applies


@pytest.mark.parametrize("hops_client", range(1, 7))
@pytest.mark.parametrize("hops_server", range(1, 7))
@pytest.mark.parametrize("fw_at", t.FW_PLACEMENTS)
def test_generated_paths(hops_client, hops_server, fw_at):
    if fw_at == "mid-path" and hops_client < 3:
        with pytest.raises(UsageError):
            t.path_for(hops_client, hops_server, fw_at, with_rtr=False)
        return
    path = t.path_for(hops_client, hops_server, fw_at, with_rtr=hops_client >= 2)
    # Hop counts: forwarding nodes strictly between the ends and the lb slot.
    assert path.hops_between("client", "lb") == hops_client
    assert path.hops_between("lb", "srv") + 1 == hops_server
    assert path.hops_between("client", "srv") == hops_client + hops_server
    fw_hops = path.hops_between("client", "fw") if path.index("fw") > 1 else 0
    if fw_at == "client-edge":
        assert path.index("fw") == 1
    elif fw_at == "before-lb":
        assert path.index("lb") - path.index("fw") == 1
    else:
        assert fw_hops >= 1 and path.hops_between("fw", "lb") >= 1
    # Every address is unique, in the documentation ranges, and each link is one subnet.
    docs4 = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24",
                                               "203.0.113.0/24")]
    seen: set[str] = set()
    nets: set[str] = set()
    for lk in path.links:
        for a in (lk.a4, lk.b4, lk.a6, lk.b6):
            assert a not in seen
            seen.add(a)
        assert any(ipaddress.ip_address(lk.a4) in n for n in docs4)
        assert ipaddress.ip_address(lk.a6) in ipaddress.ip_network("2001:db8::/32")
        n4 = ipaddress.ip_interface(f"{lk.a4}/{t.PREFIX4}").network
        n6 = ipaddress.ip_interface(f"{lk.a6}/{t.PREFIX6}").network
        assert ipaddress.ip_address(lk.b4) in n4 and ipaddress.ip_address(lk.b6) in n6
        assert str(n4) not in nets and str(n6) not in nets
        nets |= {str(n4), str(n6)}
    # The client and the server keep their addresses on every path.
    assert (path.links[0].a4, path.links[-1].b4) == ("192.0.2.2", "203.0.113.2")
    assert (path.links[0].a6, path.links[-1].b6) == ("2001:db8:1::2", "2001:db8:4::2")
    # Interface names are unique per node and fit IFNAMSIZ.
    topo = t.Topology(ns={}, ttl={}, path=path)
    for node in path.nodes:
        names = topo.ifaces(node)
        assert len(names) == len(set(names)) and all(len(n) <= 15 for n in names)
    assert {path.role(n) for n in path.forwarders} <= {"firewall", "load-balancer", "router"}


def test_bad_paths_are_usage_errors():
    for args in ((0, 1, "client-edge"), (7, 1, "client-edge"), (2, 0, "client-edge"),
                 (3, 1, "nowhere")):
        with pytest.raises(UsageError):
            t.path_for(*args)
    with pytest.raises(UsageError):
        t.path_for(1, 1, "client-edge", with_rtr=True)  # no slot for the injector's router
    # Two nodes is the LAN path (the client on the server's link); fewer, or ends in
    # the wrong order, are no path.
    for nodes in (("client",), ("srv", "client"), ("client", "fw")):
        with pytest.raises(UsageError):
            t.chain(nodes)
    for args in ((0, 1, "client-edge"), (1, 0, "client-edge")):
        with pytest.raises(UsageError):  # only both 0 together mean the LAN path
            t.path_for(*args, with_rtr=False)
    with pytest.raises(UsageError):
        t.path_for(0, 0, "client-edge", with_rtr=True)  # no router on a LAN


def test_lan_path_puts_the_client_on_the_servers_link():
    p = t.path_for(0, 0, "client-edge", with_rtr=False)
    assert p is t.LAN_PATH and p.nodes == ("client", "srv") and p.forwarders == ()
    assert p.hops_between("client", "srv") == 0
    (link,) = p.links
    # The server keeps its address (every endpoint binds it); the client is a host on
    # the server's /29 and /64, with the interface names the vantages capture on.
    assert (link.b4, link.b6) == (t.SRV_ADDR[4], t.SRV_ADDR[6])
    assert (link.a4, link.a6) == ("203.0.113.1", "2001:db8:4::1")
    assert (link.a_if, link.b_if) == ("eth0", "eth0")
    topo = t.Topology(ns={"client": "c", "srv": "s"}, ttl={"client": 64, "srv": 64}, path=p)
    assert topo.addresses(6) == {"client": "2001:db8:4::1", "srv": "2001:db8:4::2"}
