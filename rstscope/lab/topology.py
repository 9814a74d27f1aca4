"""The lab's wiring: client ── fw ── rtr ── lb ── srv, one namespace each.

Every hop is a veth pair with real IP forwarding, so TTLs decrement and hop
distances are real.  Addresses come only from the documentation ranges
(RFC 5737 and RFC 3849), one /29 and one /64 per link.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

from rstscope.lab.session import Session

#: Node keys in path order, and the role each plays for truth labels.  The
#: transit router only ever emits a RST through the on-path injector, which is a
#: firewall/DPI box as far as the analyzer's vocabulary goes.
NODES: tuple[str, ...] = ("client", "fw", "rtr", "lb", "srv")
ROLE: dict[str, str] = {
    "client": "client",
    "fw": "firewall",
    "rtr": "firewall",
    "lb": "load-balancer",
    "srv": "server",
}


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


LINKS: tuple[Link, ...] = (
    Link("client", "fw", "eth0", "cli0", "192.0.2.2", "192.0.2.1", "2001:db8:1::2", "2001:db8:1::1"),
    Link("fw", "rtr", "up0", "fw0", "198.51.100.1", "198.51.100.2", "2001:db8:2::1", "2001:db8:2::2"),
    Link("rtr", "lb", "lb0", "up0", "198.51.100.9", "198.51.100.10", "2001:db8:3::9", "2001:db8:3::a"),
    Link("lb", "srv", "srv0", "eth0", "203.0.113.1", "203.0.113.2", "2001:db8:4::1", "2001:db8:4::2"),
)
PREFIX4 = 29
PREFIX6 = 64

#: The address the client uses for the lb (VIP / proxy) and for the server.
LB_ADDR = {4: "198.51.100.10", 6: "2001:db8:3::a"}
SRV_ADDR = {4: "203.0.113.2", 6: "2001:db8:4::2"}
CLIENT_ADDR = {4: "192.0.2.2", 6: "2001:db8:1::2"}
#: The lb's address facing the server (what the server sees from a full proxy).
LB_INNER_ADDR = {4: "203.0.113.1", 6: "2001:db8:4::1"}
#: The fw's upstream address (what the server sees after SNAT).
FW_OUTER_ADDR = {4: "198.51.100.1", 6: "2001:db8:2::1"}


@dataclass(frozen=True, slots=True)
class Topology:
    """Built namespaces: node key -> namespace name, plus where each node's veths are."""

    ns: dict[str, str]
    ttl: dict[str, int]

    def ifaces(self, node: str) -> list[str]:
        out = [lk.a_if for lk in LINKS if lk.a == node]
        out += [lk.b_if for lk in LINKS if lk.b == node]
        return out


def build(session: Session, ttl: dict[str, int]) -> Topology:
    """Create the five namespaces, veths, addresses, routes and forwarding sysctls."""
    ns = {node: session.add_ns(node) for node in NODES}
    for lk in LINKS:
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
    # Routes: each side of the chain points at its neighbour for what lies beyond.
    _route(session, ns["client"], "default", "192.0.2.1", "2001:db8:1::1")
    _route(session, ns["fw"], "default", "198.51.100.2", "2001:db8:2::2")
    _route(session, ns["rtr"], ("192.0.2.0/29", "2001:db8:1::/64"), "198.51.100.1", "2001:db8:2::1")
    _route(session, ns["rtr"], ("203.0.113.0/29", "2001:db8:4::/64"), "198.51.100.10",
           "2001:db8:3::a")
    _route(session, ns["lb"], "default", "198.51.100.9", "2001:db8:3::9")
    _route(session, ns["srv"], "default", "203.0.113.1", "2001:db8:4::1")
    for node in NODES:
        n = ns[node]
        if node in ("fw", "rtr", "lb"):
            session.sysctl(n, "net.ipv4.ip_forward", 1)
            session.sysctl(n, "net.ipv6.conf.all.forwarding", 1)
        session.sysctl(n, "net.ipv4.ip_default_ttl", ttl.get(node, 64))
        session.sysctl(n, "net.ipv6.conf.all.hop_limit", ttl.get(node, 64))
        for ifname in Topology(ns, ttl).ifaces(node):
            # Per-interface hop limit is what v6 output actually uses.
            session.sysctl(n, f"net.ipv6.conf.{ifname}.hop_limit", ttl.get(node, 64))
    _static_neighbours(session, ns)
    return Topology(ns=ns, ttl={node: ttl.get(node, 64) for node in NODES})


def _static_neighbours(session: Session, ns: dict[str, str]) -> None:
    """Permanent ARP/ND entries on every link: an unresolved IPv6 neighbour drops the
    first SYN, which would put a spurious retransmission in every capture."""
    for lk in LINKS:
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
