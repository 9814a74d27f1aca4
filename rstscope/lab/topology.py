"""The lab's wiring: a linear path of namespaces, client first, server last.

A path is data (:class:`PathSpec`): the nodes in order, each with a role and
an initial TTL / hop limit, and the veth links between neighbours with their
addresses.  Every hop is a veth pair with real IP forwarding, so TTLs
decrement and hop distances are real.  Addresses come only from the
documentation ranges (RFC 5737 and RFC 3849), one /29 and one /64 per link.

The default path is the one every scenario and sample was built on::

    client ── fw ── rtr ── lb ── srv

:func:`path_for` builds longer ones from a few numbers (routers on each side,
where the firewall sits); the address plan is chosen so that the default path
gets exactly the addresses it always had.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rstscope.core.vocab import Origin
from rstscope.errors import UsageError
from rstscope.lab.session import Session

#: Node keys of the default path, in path order.
NODES: tuple[str, ...] = ("client", "fw", "rtr", "lb", "srv")
#: The role each special node plays for truth labels.  The transit router only
#: ever emits a RST through the on-path injector, which is a firewall/DPI box as
#: far as the analyzer's vocabulary goes.  Extra routers (``c1``, ``s1``, ...)
#: only forward; their role is ``router``.
#: The roles are the verdict vocabulary's origins (:class:`~rstscope.core.vocab.Origin`),
#: so a truth label and a verdict are compared in one spelling.
ROLE: dict[str, str] = {
    "client": Origin.CLIENT,
    "fw": Origin.FIREWALL,
    "rtr": Origin.FIREWALL,
    "lb": Origin.LOAD_BALANCER,
    "srv": Origin.SERVER,
}
ROUTER_ROLE = "router"
#: Where the firewall can sit on the client side of the load-balancer slot.
FW_PLACEMENTS: tuple[str, ...] = ("client-edge", "mid-path", "before-lb")


@dataclass(frozen=True, slots=True)
class Link:
    """One veth pair: node ``a`` (toward the client) and node ``b``."""

    a: str
    b: str
    a_if: str
    b_if: str
    a4: str
    b4: str
    a6: str
    b6: str


@dataclass(frozen=True, slots=True)
class PathSpec:
    """A linear path: ``nodes[0]`` is the client, ``nodes[-1]`` the server.

    ``links[k]`` joins ``nodes[k]`` and ``nodes[k + 1]``.  ``roles`` maps every
    node key to its role; the initial TTLs are passed to :func:`build`.
    """

    nodes: tuple[str, ...]
    links: tuple[Link, ...]
    roles: Mapping[str, str] = field(default_factory=dict)

    def index(self, node: str) -> int:
        return self.nodes.index(node)

    def hops_between(self, a: str, b: str) -> int:
        """Forwarding nodes strictly between ``a`` and ``b``: the TTL decrements a
        packet from one suffers before it reaches the other."""
        return max(0, abs(self.index(a) - self.index(b)) - 1)

    def role(self, node: str) -> str:
        return self.roles.get(node, ROLE.get(node, ROUTER_ROLE))

    def manifest_rows(self, ttl: Mapping[str, int | None]) -> list[dict[str, Any]]:
        """The path as a lab manifest records it, for position checks: per node in
        path order its role, initial TTL and where it sits (forwarding nodes strictly
        between it and each end)."""
        return [{"node": n, "role": self.role(n), "ttl": ttl.get(n),
                 "hops_from_client": self.hops_between("client", n) if n != "client" else 0,
                 "hops_to_server": self.hops_between(n, "srv") if n != "srv" else 0}
                for n in self.nodes]

    @property
    def forwarders(self) -> tuple[str, ...]:
        return self.nodes[1:-1]


# -- address plan ----------------------------------------------------------------------
#: Interface names of the default path (kept so existing captures, docs and the
#: injector's interface stay as they were).
_LEGACY_IFNAMES: dict[tuple[str, str], tuple[str, str]] = {
    ("client", "fw"): ("eth0", "cli0"),
    ("fw", "rtr"): ("up0", "fw0"),
    ("rtr", "lb"): ("lb0", "up0"),
    ("lb", "srv"): ("srv0", "eth0"),
}
PREFIX4 = 29
PREFIX6 = 64
#: The most forwarding nodes a path may have (the address plan has room for 13).
MAX_FORWARDERS = 13


def _v6_net(j: int) -> int:
    # 2001:db8:1::/64 is the client link and 2001:db8:4::/64 the server link.
    return j + 2 if j < 2 else j + 3


def _ifnames(a: str, b: str) -> tuple[str, str]:
    if (a, b) in _LEGACY_IFNAMES:
        return _LEGACY_IFNAMES[(a, b)]
    return ("eth0" if a == "client" else f"{b}0"[:15], "eth0" if b == "srv" else f"{a}0"[:15])


def chain(nodes: tuple[str, ...], roles: Mapping[str, str] | None = None) -> PathSpec:
    """Links and addresses for ``nodes`` (client first, ``srv`` last).

    The client link is always 192.0.2.0/29 (client .2) and 2001:db8:1::/64, the
    server link 203.0.113.0/29 (server .2) and 2001:db8:4::/64; link ``j`` in
    between is 198.51.100.8j/29 (.8j+1 toward the client, .8j+2 toward the
    server) and a /64 of its own.  With no forwarding node (:data:`LAN_PATH`) the
    one link is the server's: the client is a host on the server's LAN (.1 / ::1).
    """
    if len(nodes) < 2 or nodes[0] != "client" or nodes[-1] != "srv":
        raise UsageError("a lab path runs client, forwarding nodes, srv")
    if len(set(nodes)) != len(nodes):
        raise UsageError(f"a lab path names each node once: {nodes}")
    if len(nodes) - 2 > MAX_FORWARDERS:
        raise UsageError(f"a lab path has at most {MAX_FORWARDERS} forwarding nodes")
    last = len(nodes) - 2
    links = []
    for k, (a, b) in enumerate(zip(nodes, nodes[1:], strict=False)):
        a_if, b_if = _ifnames(a, b)
        if k == last:
            addrs = ("203.0.113.1", "203.0.113.2", "2001:db8:4::1", "2001:db8:4::2")
        elif k == 0:
            addrs = ("192.0.2.2", "192.0.2.1", "2001:db8:1::2", "2001:db8:1::1")
        else:
            j = k - 1
            net6 = _v6_net(j)
            addrs = (f"198.51.100.{8 * j + 1}", f"198.51.100.{8 * j + 2}",
                     f"2001:db8:{net6:x}::{8 * j + 1:x}", f"2001:db8:{net6:x}::{8 * j + 2:x}")
        links.append(Link(a, b, a_if, b_if, *addrs))
    return PathSpec(nodes=nodes, links=tuple(links), roles=dict(roles or {}))


DEFAULT_PATH: PathSpec = chain(NODES)
#: A client on the server's own link: no router, no middlebox between them
#: (``hops_client=0``, ``hops_server=0``).  Its one link is the server link.
LAN_PATH: PathSpec = chain(("client", "srv"))
LINKS: tuple[Link, ...] = DEFAULT_PATH.links

#: The address the client uses for the lb (VIP / proxy) and for the server, on the
#: default path (see :class:`Topology` for any path).
LB_ADDR = {4: "198.51.100.10", 6: "2001:db8:3::a"}
SRV_ADDR = {4: "203.0.113.2", 6: "2001:db8:4::2"}
CLIENT_ADDR = {4: "192.0.2.2", 6: "2001:db8:1::2"}
#: The lb's address facing the server (what the server sees from a full proxy).
LB_INNER_ADDR = {4: "203.0.113.1", 6: "2001:db8:4::1"}
#: The fw's upstream address (what the server sees after SNAT).
FW_OUTER_ADDR = {4: "198.51.100.1", 6: "2001:db8:2::1"}


def path_for(hops_client: int = 2, hops_server: int = 1, fw_at: str = "client-edge",
             *, with_rtr: bool = True) -> PathSpec:
    """The path with ``hops_client`` forwarding nodes between the client and the
    lb slot, and ``hops_server`` hops from the lb slot to the server (the lb slot
    itself plus ``hops_server - 1`` routers ``s1``...).

    The firewall is one of the client-side nodes: the first (``client-edge``),
    the last, right in front of the lb (``before-lb``), or one with routers on
    both sides (``mid-path``, needs ``hops_client >= 3``).  The transit router
    ``rtr`` (the injector's host) takes the slot after the firewall, or the one
    before it when the firewall is last; other slots are plain routers ``c1``....
    ``path_for()`` is the default path.  ``hops_client=0, hops_server=0`` is
    :data:`LAN_PATH` (the client on the server's link; ``fw_at`` does not apply).
    """
    if (hops_client, hops_server) == (0, 0) and not with_rtr:
        return LAN_PATH
    if not 1 <= hops_client <= 6 or not 1 <= hops_server <= 6:
        raise UsageError("hops_client and hops_server must be 1..6 "
                         "(or both 0: the client on the server's link)")
    if fw_at not in FW_PLACEMENTS:
        raise UsageError(f"fw_at must be one of {', '.join(FW_PLACEMENTS)}")
    if fw_at == "mid-path" and hops_client < 3:
        raise UsageError("fw_at=mid-path needs hops_client >= 3 (a router on each side)")
    if with_rtr and hops_client < 2:
        raise UsageError("this scenario needs the transit router too: hops_client >= 2")
    fw_i = {"client-edge": 0, "mid-path": hops_client // 2, "before-lb": hops_client - 1}[fw_at]
    left: list[str | None] = [None] * hops_client
    left[fw_i] = "fw"
    if with_rtr:
        left[fw_i + 1 if fw_i + 1 < hops_client else fw_i - 1] = "rtr"
    n = 0
    for i, slot in enumerate(left):
        if slot is None:
            n += 1
            left[i] = f"c{n}"
    right = [f"s{i}" for i in range(1, hops_server)]
    nodes = ("client", *(s for s in left if s is not None), "lb", *right, "srv")
    return chain(nodes)


@dataclass(frozen=True, slots=True)
class Topology:
    """Built namespaces: node key -> namespace name, initial TTLs, and the path."""

    ns: dict[str, str]
    ttl: dict[str, int]
    path: PathSpec = DEFAULT_PATH

    def ifaces(self, node: str) -> list[str]:
        out = [lk.a_if for lk in self.path.links if lk.a == node]
        out += [lk.b_if for lk in self.path.links if lk.b == node]
        return out

    def _link_toward(self, node: str, *, server_side: bool) -> Link:
        i = self.path.index(node)
        return self.path.links[i if server_side else i - 1]

    def iface_toward_client(self, node: str) -> str:
        return self._link_toward(node, server_side=False).b_if

    def iface_toward_server(self, node: str) -> str:
        return self._link_toward(node, server_side=True).a_if

    def addr_toward_client(self, node: str, ip_v: int) -> str:
        lk = self._link_toward(node, server_side=False)
        return lk.b6 if ip_v == 6 else lk.b4

    def addr_toward_server(self, node: str, ip_v: int) -> str:
        lk = self._link_toward(node, server_side=True)
        return lk.a6 if ip_v == 6 else lk.a4

    @property
    def roles(self) -> dict[str, str]:
        return {n: self.path.role(n) for n in self.path.nodes}

    def addresses(self, ip_v: int) -> dict[str, str]:
        """The addresses a manifest records (same keys as before paths were variable;
        a path without an lb or fw has no such keys)."""
        first = self.path.links[0]
        out = {"client": first.a6 if ip_v == 6 else first.a4, "srv": SRV_ADDR[ip_v]}
        if "lb" in self.path.nodes:
            out |= {"lb": self.addr_toward_client("lb", ip_v),
                    "lb_inner": self.addr_toward_server("lb", ip_v)}
        if "fw" in self.path.nodes:
            out["fw_outer"] = self.addr_toward_server("fw", ip_v)
        return out


def build(session: Session, ttl: dict[str, int], path: PathSpec = DEFAULT_PATH) -> Topology:
    """Create the path's namespaces, veths, addresses, routes and forwarding sysctls."""
    ns = {node: session.add_ns(node) for node in path.nodes}
    topo = Topology(ns=ns, ttl={node: ttl.get(node, 64) for node in path.nodes}, path=path)
    for lk in path.links:
        session.run(["ip", "link", "add", lk.a_if, "netns", ns[lk.a], "type", "veth",
                     "peer", "name", lk.b_if, "netns", ns[lk.b]])
        for node, ifname, a4, a6 in ((lk.a, lk.a_if, lk.a4, lk.a6), (lk.b, lk.b_if, lk.b4, lk.b6)):
            n = ns[node]
            session.run(["ip", "-n", n, "addr", "add", f"{a4}/{PREFIX4}", "dev", ifname])
            # nodad: no duplicate-address detection delay before v6 traffic can flow.
            session.run(["ip", "-n", n, "-6", "addr", "add", f"{a6}/{PREFIX6}", "dev", ifname,
                         "nodad"])
            # Offloads off (if ethtool is there) so captures show wire-sized segments.
            if shutil.which("ethtool"):
                session.run(["ip", "netns", "exec", n, "ethtool", "-K", ifname, "tso", "off",
                             "gso", "off", "gro", "off"], check=False)
            session.run(["ip", "-n", n, "link", "set", ifname, "up"])
    _routes(session, ns, path)
    for node in path.nodes:
        n = ns[node]
        if node not in ("client", "srv"):
            session.sysctl(n, "net.ipv4.ip_forward", 1)
            session.sysctl(n, "net.ipv6.conf.all.forwarding", 1)
        session.sysctl(n, "net.ipv4.ip_default_ttl", topo.ttl[node])
        session.sysctl(n, "net.ipv6.conf.all.hop_limit", topo.ttl[node])
        for ifname in topo.ifaces(node):
            # Per-interface hop limit is what v6 output actually uses.
            session.sysctl(n, f"net.ipv6.conf.{ifname}.hop_limit", topo.ttl[node])
    _static_neighbours(session, ns, path)
    return topo


def _routes(session: Session, ns: dict[str, str], path: PathSpec) -> None:
    """The client and the server route everything to their one neighbour; every
    forwarding node gets a route to each link that is not its own, via the
    neighbour on that link's side."""
    links = path.links
    if len(links) == 1:
        return  # the client on the server's link: the connected route is all there is
    _route(session, ns["client"], "default", links[0].b4, links[0].b6)
    _route(session, ns["srv"], "default", links[-1].a4, links[-1].a6)
    for i in range(1, len(path.nodes) - 1):
        left, right = links[i - 1], links[i]
        for k, lk in enumerate(links):
            if k in (i - 1, i):
                continue
            via4, via6 = (left.a4, left.a6) if k < i - 1 else (right.b4, right.b6)
            _route(session, ns[path.nodes[i]], (_net(lk.a4, PREFIX4), _net(lk.a6, PREFIX6)),
                   via4, via6)


def _net(addr: str, prefix: int) -> str:
    return str(ipaddress.ip_interface(f"{addr}/{prefix}").network)


def _static_neighbours(session: Session, ns: dict[str, str],
                       path: PathSpec = DEFAULT_PATH) -> None:
    """Permanent ARP/ND entries on every link: an unresolved IPv6 neighbour drops the
    first SYN, which would put a spurious retransmission in every capture."""
    for lk in path.links:
        mac_a = _mac(session, ns[lk.a], lk.a_if)
        mac_b = _mac(session, ns[lk.b], lk.b_if)
        for node, ifname, peer4, peer6, mac in ((lk.a, lk.a_if, lk.b4, lk.b6, mac_b),
                                                (lk.b, lk.b_if, lk.a4, lk.a6, mac_a)):
            for addr in (peer4, peer6):
                session.run(["ip", "-n", ns[node], "neigh", "replace", addr, "lladdr", mac,
                             "dev", ifname, "nud", "permanent"])


def _mac(session: Session, ns: str, ifname: str) -> str:
    info = json.loads(session.run(["ip", "-n", ns, "-j", "link", "show", "dev", ifname]).stdout)
    return str(info[0]["address"])


def _route(session: Session, ns: str, dest: str | tuple[str, str], via4: str, via6: str) -> None:
    d4, d6 = (dest, dest) if isinstance(dest, str) else dest
    session.run(["ip", "-n", ns, "route", "add", d4, "via", via4])
    session.run(["ip", "-n", ns, "-6", "route", "add", d6, "via", via6])
