"""The lab set up for ``rstscope probe``: one box placed at a chosen hop, provenance kept.

``probe_lab(...)`` builds the usual client ── fw ── rtr ── lb ── srv chain,
puts one middlebox in one namespace (a conntrack firewall that REJECTs or DROPs
after a short idle expiry, the SNAT that rebinds, the L4 balancer, or the
scapy injector), starts a holding TLS server, and captures every namespace so
the RST a probe draws can be traced to the namespace that emitted it (the
same provenance rule as the lab's truth labels).  Routers answer
time-exceeded as Linux does; their ICMP rate limits are lifted inside the lab
namespaces only, so repeated runs are deterministic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rstscope.errors import LabError, UsageError
from rstscope.lab import middlebox, netns_tcpdump, topology, truth
from rstscope.lab.runner import SERVER_PORT, _wait_event
from rstscope.lab.scenarios import COMMON_DEFAULTS
from rstscope.lab.session import BASE_TOOLS, Session, require_root, require_tools

BOXES = ("none", "reject", "drop", "snat", "l4lb", "inject")
#: The interface of each node that faces the client (where an injector listens).
CLIENT_SIDE_IFACE = {"fw": "cli0", "rtr": "fw0", "lb": "up0", "srv": "eth0"}


def hop_of(node: str) -> int:
    """Probe hop number of a lab node: 1 for the client's first router, ..."""
    return topology.NODES.index(node)


@dataclass(slots=True)
class ProbeLab:
    session: Session
    topo: topology.Topology
    ip_v: int
    target: str
    caps: list[netns_tcpdump.Capture] = field(default_factory=list)
    stopped: bool = False

    def probe_argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "rstscope", "probe", *args]

    def run_probe(self, args: Sequence[str], *, timeout_s: float = 120) -> dict[str, Any]:
        """Run ``rstscope probe TARGET ARGS --format json`` in the client namespace."""
        out = self.session.tmp / "probe.json"
        argv = self.probe_argv([self.target_arg(), *args, "--format", "json", "-o", str(out)])
        proc = subprocess.run(["ip", "netns", "exec", self.topo.ns["client"], *argv],
                              capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise LabError(f"probe exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
        doc: dict[str, Any] = json.loads(out.read_text())
        return doc

    def target_arg(self) -> str:
        return f"[{self.target}]:{SERVER_PORT}" if self.ip_v == 6 else f"{self.target}:{SERVER_PORT}"

    def emitters(self) -> list[truth.Emission]:
        """Every RST some namespace made (not forwarded), in time order."""
        if not self.stopped:
            for c in self.caps:
                netns_tcpdump.stop(c)
            self.stopped = True
        found: list[truth.Emission] = []
        for c, node in zip(self.caps, topology.NODES, strict=True):
            found += truth.emissions(node, truth.read_segments(c.path))
        return sorted(found, key=lambda e: e.ts_ns)


@contextmanager
def probe_lab(*, ip_v: int = 4, box: str = "none", node: str = "fw",
              conntrack_timeout_s: float = 1.0, blocked_sni: str = "blocked.lab.test",
              server_connections: int = 1) -> Iterator[ProbeLab]:
    """A lab with ``box`` in namespace ``node``; torn down on exit, error or Ctrl-C."""
    if box not in BOXES:
        raise UsageError(f"unknown box {box!r} (known: {', '.join(BOXES)})")
    require_root()
    require_tools([*BASE_TOOLS, "nft"])
    ttl = {n: int(COMMON_DEFAULTS[f"ttl_{n}"]) for n in topology.NODES}
    with Session() as session:
        topo = topology.build(session, ttl)
        for n in topology.NODES:
            # Linux rate-limits ICMP errors per destination (burst 6, then 1/s): lifted
            # here so back-to-back runs see every time-exceeded.
            session.sysctl(topo.ns[n], "net.ipv4.icmp_ratelimit", 0)
            session.sysctl(topo.ns[n], "net.ipv6.icmp.ratelimit", 0)
        target = topology.SRV_ADDR[ip_v]
        ns = topo.ns[node]
        if box in ("reject", "drop"):
            middlebox.conntrack_timeout(session, ns, conntrack_timeout_s)
            middlebox.stateful_filter(session, ns, ip_v, action=box)
        elif box == "snat":
            middlebox.conntrack_timeout(session, topo.ns["fw"], conntrack_timeout_s)
            middlebox.snat(session, topo.ns["fw"], ip_v, out_if="up0")
        elif box == "l4lb":
            middlebox.conntrack_timeout(session, topo.ns["lb"], conntrack_timeout_s)
            middlebox.l4_dnat(session, topo.ns["lb"], ip_v, SERVER_PORT, SERVER_PORT)
            target = topology.LB_ADDR[ip_v]
        lab = ProbeLab(session=session, topo=topo, ip_v=ip_v, target=target)
        lab.caps = [netns_tcpdump.start(session, name=f"ns-{n}", ns=topo.ns[n], iface="any",
                                  out=session.tmp / f"ns-{n}.pcap", linktype="LINUX_SLL")
                    for n in topology.NODES]
        cert, key = middlebox.make_cert(session)
        out = session.tmp / "server.out"
        with open(out, "wb") as fh:
            srv = session.python("server", ["--bind", topology.SRV_ADDR[ip_v], "--port",
                                            str(SERVER_PORT), "--cert", str(cert), "--key",
                                            str(key), "--schedule", "hold", "--connections",
                                            str(server_connections)],
                                 ns=topo.ns["srv"], log=session.tmp / "server.err", stdout=fh)
        _wait_event(srv, out, "listening", "the lab server")
        if box == "inject":
            iout = session.tmp / "injector.out"
            with open(iout, "wb") as fh:
                inj = session.python("injector", ["--iface", CLIENT_SIDE_IFACE[node], "--sni",
                                                  blocked_sni, "--style", "single"],
                                     ns=ns, log=session.tmp / "injector.err", stdout=fh)
            _wait_event(inj, iout, "ready", "the injector")
        yield lab


def nft_tables(session: Session, ns: str) -> str:
    """The nft ruleset of a namespace (what a probe must leave empty)."""
    return session.run(["nft", "list", "tables"], ns=ns, check=False).stdout


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=1) + "\n")
