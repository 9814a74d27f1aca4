"""Run one scenario end to end: build, capture, drive traffic, label, tear down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rstscope.errors import LabError, OutputError, UsageError
from rstscope.lab import middlebox, netns_tcpdump, topology, truth
from rstscope.lab.scenarios import Plan, get
from rstscope.lab.session import BASE_TOOLS, Session, require_root, require_tools, wait_for

#: Vantage points written for users: name -> (node, interface, link type or None).
VANTAGES: Mapping[str, tuple[str, str, str | None]] = {
    "client": ("client", "eth0", None),
    "server": ("srv", "eth0", None),
    "client-any": ("client", "any", "LINUX_SLL2"),
}
SERVER_PORT = 443
#: Settle time so the last RSTs and retransmissions are on the wire before captures stop.
SETTLE_S = 0.7


@dataclass(frozen=True, slots=True)
class VantageResult:
    name: str
    pcap: Path
    labels: Path
    rst_count: int


@dataclass(frozen=True, slots=True)
class LabResult:
    """What a run wrote (all paths inside ``out_dir``)."""

    scenario: str
    params: dict[str, int | float | str]
    out_dir: Path
    manifest: Path
    vantages: tuple[VantageResult, ...]
    keylog: Path | None
    emitters: tuple[str, ...]  # node keys that emitted at least one RST

    def labels(self, vantage: str) -> list[dict[str, Any]]:
        for v in self.vantages:
            if v.name == vantage:
                return truth.read_labels(v.labels)
        raise KeyError(vantage)


def run_scenario(name: str, params: Mapping[str, str] | None = None,
                 out_dir: str | os.PathLike[str] = ".", *,
                 vantages: tuple[str, ...] = tuple(VANTAGES),
                 fail_after_setup: bool = False,
                 on_ready: Callable[[Session], None] | None = None,
                 stem: str | None = None,
                 manifest_extra: Mapping[str, Any] | None = None) -> LabResult:
    """Run scenario ``name`` with ``key=value`` overrides and write its outputs to ``out_dir``.

    Files are named ``<stem>.<vantage>.pcap`` etc. (``stem`` defaults to the
    scenario name); ``manifest_extra`` is merged into the manifest (the sweep's
    case variables).  ``fail_after_setup`` and ``on_ready`` exist for the
    teardown tests (inject a failure midway / observe the live session).
    """
    scen = get(name)
    p = scen.params(params)
    unknown = [v for v in vantages if v not in VANTAGES]
    if unknown:
        raise UsageError(f"unknown vantage {unknown[0]!r} (known: {', '.join(VANTAGES)})")
    plan = scen.plan(p)
    hops_client = int(p["hops_client"])
    # Build the path description first: a bad path is a usage error, before anything
    # is checked or created.
    path = topology.path_for(hops_client, int(p["hops_server"]), str(p["fw_at"]),
                             with_rtr=plan.middlebox.startswith("inject-") or hops_client >= 2)
    if "lb" not in path.nodes and (plan.target != "srv" or plan.middlebox != "none"
                                   or plan.setup is not None or p["front"] != "none"):
        # The client on the server's link: nothing can sit between them.
        raise UsageError(f"scenario {name} needs a middlebox, so it cannot run with "
                         "hops_client=0 hops_server=0 (the client on the server's link)")
    require_root()
    tools = list(BASE_TOOLS) + list(scen.tools)
    require_tools(tools)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror}") from exc

    ip_v = int(p["ip_v"])
    stem = stem or name
    ttl = {node: int(p[f"ttl_{node}"]) for node in topology.NODES}
    with Session() as session:
        topo = topology.build(session, ttl, path)
        _setup_middlebox(session, topo, plan, p, ip_v)
        # Plain routers only forward (no TCP software, no rules): they cannot emit a RST,
        # so provenance needs captures of the other nodes only.
        emitters = [n for n in path.nodes if path.role(n) != topology.ROUTER_ROLE]
        caps = [netns_tcpdump.start(session, name=f"ns-{node}", ns=topo.ns[node], iface="any",
                              out=session.tmp / f"ns-{node}.pcap", linktype="LINUX_SLL")
                for node in emitters]
        vcaps = {v: netns_tcpdump.start(session, name=v, ns=topo.ns[VANTAGES[v][0]],
                                  iface=VANTAGES[v][1], out=out / f"{stem}.{v}.pcap",
                                  linktype=VANTAGES[v][2])
                 for v in vantages}
        cert, key = middlebox.make_cert(session)
        if plan.setup is not None:
            plan.setup(session, topo, p, ip_v, cert, key)
        if plan.server_module:
            _start_server(session, topo, plan, ip_v, cert, key)
        _start_frontends(session, topo, plan, p, ip_v, cert, key)
        if on_ready is not None:
            on_ready(session)
        if fail_after_setup:
            raise LabError("injected failure after setup (teardown test)")
        keylog = out / f"{stem}.keylog"
        keylog.unlink(missing_ok=True)
        client_log = session.tmp / "client.out"
        dest = _dialled(topo, plan, p, ip_v)
        with open(client_log, "wb") as fh:
            client = session.python(plan.client_module, ["--host", dest, "--port", str(SERVER_PORT),
                                               "--sni", plan.sni, "--keylog", str(keylog),
                                               *plan.client_args],
                                    ns=topo.ns["client"], log=session.tmp / "client.err",
                                    stdout=fh)
        try:
            client.wait(timeout=plan.duration_s + 15)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"scenario {name}: client did not finish in time") from exc
        time.sleep(SETTLE_S)
        for c in [*vcaps.values(), *caps]:
            netns_tcpdump.stop(c)

        found: list[truth.Emission] = []
        for c, node in zip(caps, emitters, strict=True):
            found += truth.emissions(node, truth.read_segments(c.path))
        roles = topo.roles
        results = []
        for v, c in vcaps.items():
            labels = truth.label_capture(
                c.path, found, ns_names=topo.ns, roles=roles, origins=dict(roles),
                causes=dict(plan.causes), timeouts=dict(plan.timeouts),
                endpoints=frozenset({"client", "srv", *(["lb"] if plan.full_proxy else [])}),
                hops=_hops_to(path, VANTAGES[v][0]))
            lpath = out / f"{stem}.{v}.labels.json"
            truth.write_labels(labels, lpath)
            results.append(VantageResult(v, c.path, lpath, len(labels)))
        events = {
            "client": _events(client_log),
            "server": _events(session.tmp / "server.out"),
            "injector": _events(session.tmp / "injector.out"),
            # haproxy's own log of each connection: client port <-> its upstream port.
            "proxy": middlebox.haproxy_connections(session.tmp / "haproxy.log"),
        }
        manifest = out / f"{stem}.manifest.json"
        manifest.write_text(json.dumps({
            "scenario": name,
            "description": scen.description,
            "params": p,
            "run_id": session.run_id,
            "namespaces": topo.ns,
            "roles": roles,
            "initial_ttl": topo.ttl,
            "addresses": topo.addresses(ip_v),
            "dialled": dest,
            "path": path.manifest_rows(topo.ttl),
            "causes": dict(plan.causes),
            "stall_causes": dict(plan.stall_causes),
            "timeouts_s": dict(plan.timeouts),
            "emitted": [{"node": e.node, "ts_ns": e.ts_ns, "src": e.seg.src,
                         "sport": e.seg.sport, "dst": e.seg.dst, "dport": e.seg.dport,
                         "seq": e.seg.seq, "ack": e.seg.ack, "flags": e.seg.flags,
                         "ttl": e.seg.ttl} for e in found],
            "vantages": [{k: str(v) if isinstance(v, Path) else v for k, v in asdict(r).items()}
                         | {"pcap": r.pcap.name, "labels": r.labels.name} for r in results],
            "events": events,
            "versions": _versions(plan),
            **(manifest_extra or {}),
        }, indent=1) + "\n")
        # Keep the namespace captures when asked (debugging provenance).
        if os.environ.get("RSTSCOPE_LAB_KEEP_NS_CAPTURES"):
            for c in caps:
                shutil.copy(c.path, out / f"{stem}.{c.name}.pcap")
        return LabResult(
            scenario=name, params=p, out_dir=out, manifest=manifest, vantages=tuple(results),
            keylog=keylog if keylog.exists() else None,
            emitters=tuple(sorted({e.node for e in found})),
        )


def _hops_to(path: topology.PathSpec, at: str) -> dict[str, int]:
    """Routers between each node and the node a capture point sits on."""
    return {n: 0 if n == at else path.hops_between(n, at) for n in path.nodes}


def relabel(manifest: Path) -> list[str]:
    """Recompute a run's labels from its manifest (every emission is recorded there)
    and its vantage captures with the scenario's current causes and timeouts; rewrite
    the label files that differ and return their vantages (and ``manifest`` when its
    causes/timeouts were brought up to date).  For runs labelled by older code."""
    m = json.loads(manifest.read_text())
    scen = get(m["scenario"])
    p = scen.params({k: str(v) for k, v in m["params"].items()})
    plan = scen.plan(p)
    # Manifests written before paths were variable describe the default path.
    path = (topology.chain(tuple(n["node"] for n in m["path"]),
                           {n["node"]: n["role"] for n in m["path"]})
            if "path" in m else topology.DEFAULT_PATH)
    ip_v = int(p["ip_v"])
    found = [truth.Emission(node=e["node"], ts_ns=e["ts_ns"], seg=truth.Seg(
        frame=0, ts_ns=e["ts_ns"], outgoing=True, ip_v=ip_v, src=e["src"], sport=e["sport"],
        dst=e["dst"], dport=e["dport"], seq=e["seq"], ack=e["ack"], flags=e["flags"],
        ttl=e["ttl"], payload_len=0)) for e in m["emitted"]]
    changed = []
    # Files are named after the manifest (a story sample is a renamed scenario run).
    stem = manifest.name.removesuffix(".manifest.json")
    for v in m["vantages"]:
        labels = truth.label_capture(
            manifest.parent / f"{stem}.{v['name']}.pcap", found, ns_names=m["namespaces"], roles=m["roles"],
            origins=dict(m["roles"]), causes=dict(plan.causes), timeouts=dict(plan.timeouts),
            endpoints=frozenset({"client", "srv", *(["lb"] if plan.full_proxy else [])}),
            hops=_hops_to(path, VANTAGES[v["name"]][0]))
        lpath = manifest.parent / f"{stem}.{v['name']}.labels.json"
        before = lpath.read_text()
        truth.write_labels(labels, lpath)
        if lpath.read_text() != before:
            changed.append(v["name"])
    # The manifest states the causes and timeouts the labels were made with.
    if (m["causes"], m["timeouts_s"]) != (dict(plan.causes), dict(plan.timeouts)):
        m["causes"], m["timeouts_s"] = dict(plan.causes), dict(plan.timeouts)
        manifest.write_text(json.dumps(m, indent=1) + "\n")
        changed.append("manifest")
    return changed


def _setup_middlebox(session: Session, topo: topology.Topology, plan: Plan,
                     p: Mapping[str, int | float | str], ip_v: int) -> None:
    mb = plan.middlebox
    if mb == "none" and not _l4_front(plan, p) and plan.backend != "blackhole":
        return  # nothing to set up (and a path may have no lb slot: the LAN path)
    vip = topo.addr_toward_client("lb", ip_v)
    if mb in ("fw-reject", "fw-drop", "fw-snat"):
        middlebox.conntrack_timeout(session, topo.ns["fw"], plan.timeouts["fw"])
    if mb in ("fw-reject", "fw-drop"):
        middlebox.stateful_filter(session, topo.ns["fw"], ip_v,
                                  action="drop" if mb == "fw-drop" else "reject")
    elif mb == "fw-snat":
        middlebox.snat(session, topo.ns["fw"], ip_v, out_if=topo.iface_toward_server("fw"),
                       to=topo.addr_toward_server("fw", ip_v))
    elif mb == "fw-policy":
        middlebox.policy_reject(session, topo.ns["fw"], ip_v, SERVER_PORT,
                                dest=_dialled(topo, plan, p, ip_v))
    elif mb == "l4lb":
        middlebox.conntrack_timeout(session, topo.ns["lb"], plan.timeouts["lb"])
        middlebox.l4_dnat(session, topo.ns["lb"], ip_v, SERVER_PORT, SERVER_PORT, vip)
    if _l4_front(plan, p):
        # A balancer in front that is not the point of the scenario: it translates and
        # never expires a flow within the run (the namespace's default conntrack timeout).
        middlebox.l4_dnat(session, topo.ns["lb"], ip_v, SERVER_PORT, SERVER_PORT, vip,
                          expire_reject=False)
    if plan.backend == "blackhole":
        middlebox.blackhole_syns(session, topo.ns["srv"], ip_v, SERVER_PORT)


def _l4_front(plan: Plan, p: Mapping[str, int | float | str]) -> bool:
    return p["front"] == "l4" and plan.target == "srv"


def _dialled(topo: topology.Topology, plan: Plan, p: Mapping[str, int | float | str],
             ip_v: int) -> str:
    """The address the client connects to: the lb's VIP / proxy, or the server."""
    if plan.target == "lb" or _l4_front(plan, p):
        return topo.addr_toward_client("lb", ip_v)
    return topology.SRV_ADDR[ip_v]


def _start_server(session: Session, topo: topology.Topology, plan: Plan, ip_v: int,
                  cert: Path, key: Path) -> None:
    out = session.tmp / "server.out"
    fh = open(out, "wb")  # noqa: SIM115 - handed to the child
    try:
        srv = session.python(plan.server_module, ["--bind", topology.SRV_ADDR[ip_v], "--port",
                                        str(SERVER_PORT), "--cert", str(cert), "--key", str(key),
                                        "--schedule", plan.server_schedule,
                                        *plan.server_args],
                             ns=topo.ns["srv"], log=session.tmp / "server.err", stdout=fh)
    finally:
        fh.close()
    _wait_event(srv, out, "listening", "the lab server")


def _start_frontends(session: Session, topo: topology.Topology, plan: Plan,
                     p: Mapping[str, int | float | str], ip_v: int, cert: Path,
                     key: Path) -> None:
    mb = plan.middlebox
    if mb == "none":
        return
    vip = topo.addr_toward_client("lb", ip_v)
    # A backend that refuses: the proxy is pointed at a port nothing listens on.
    srv_port = SERVER_PORT + 1 if plan.backend == "refused" else SERVER_PORT
    idle_s = float(p.get("proxy_timeout_s", plan.timeouts.get("lb", 30.0)))
    connect_s = plan.timeouts["lb"] if plan.backend == "blackhole" else None
    if mb == "haproxy":
        middlebox.start_haproxy(session, topo.ns["lb"], ip_v, port=SERVER_PORT,
                                srv_port=srv_port, timeout_s=idle_s, bind=vip,
                                connect_timeout_s=connect_s or 5.0)
    elif mb == "nginx":
        middlebox.start_nginx(session, topo.ns["lb"], ip_v, port=SERVER_PORT,
                              srv_port=srv_port, timeout_s=idle_s,
                              cert=cert, key=key, bind=vip,
                              connect_timeout_s=connect_s or 60.0)
    elif mb.startswith("inject-"):
        out = session.tmp / "injector.out"
        fh = open(out, "wb")  # noqa: SIM115 - handed to the child
        try:
            inj = session.python("injector", ["--iface", topo.iface_toward_client("rtr"),
                                              "--sni", plan.sni,
                                              "--style", mb.removeprefix("inject-"),
                                              "--ttl", str(p["inject_ttl"])],
                                 ns=topo.ns["rtr"], log=session.tmp / "injector.err",
                                 stdout=fh)
        finally:
            fh.close()
        _wait_event(inj, out, "ready", "the injector")


def _wait_event(proc: subprocess.Popen[bytes], out: Path, event: str, what: str) -> None:
    def seen() -> bool:
        if proc.poll() is not None:
            err = Path(str(out).replace(".out", ".err"))
            tail = err.read_text(errors="replace").strip().splitlines() if err.exists() else []
            raise LabError(f"{what} exited early: {tail[-1] if tail else proc.returncode}")
        return any(e.get("event") == event for e in _events(out))

    wait_for(seen, timeout_s=20, what=what)


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _versions(plan: Plan) -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return "unavailable"
        text = (r.stdout or r.stderr).strip().splitlines()
        return text[0] if text else "unknown"

    vers = {"kernel": os.uname().release, "python": sys.version.split()[0],
            "tcpdump": first_line(["tcpdump", "--version"])}
    if plan.middlebox == "haproxy":
        vers["haproxy"] = first_line(["haproxy", "-v"])
    if plan.middlebox == "nginx":
        vers["nginx"] = first_line(["nginx", "-v"])
    return vers
