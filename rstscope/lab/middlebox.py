"""Real middleboxes for the lab: netfilter/conntrack rule sets, haproxy, nginx, a cert.

All rules go into a lab namespace (``ip netns exec NS iptables ...``); the root
namespace is never touched.  Conntrack's established timeout is a per-netns
sysctl on current kernels, so expiry can be seconds inside the lab while the
host keeps its own value.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from rstscope.lab.session import Session, wait_for
from rstscope.lab.topology import FW_OUTER_ADDR, LB_ADDR, SRV_ADDR


def _tables(ip_v: int) -> str:
    return "ip6tables" if ip_v == 6 else "iptables"


def conntrack_timeout(session: Session, ns: str, timeout_s: float) -> None:
    """Short established-state lifetime so idle expiry happens within the scenario."""
    session.sysctl(ns, "net.netfilter.nf_conntrack_tcp_timeout_established",
                   max(1, round(timeout_s)))


def stateful_filter(session: Session, ns: str, ip_v: int, *, action: str = "reject") -> None:
    """Forward only conntrack-established flows and new SYNs; anything else gets
    ``REJECT --reject-with tcp-reset`` (``action="reject"``) or is dropped silently."""
    t = _tables(ip_v)
    base = [t, "-w", "-A", "FORWARD"]
    session.run([*base, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
                ns=ns)
    session.run([*base, "-p", "tcp", "--syn", "-m", "conntrack", "--ctstate", "NEW",
                 "-j", "ACCEPT"], ns=ns)
    target = ["REJECT", "--reject-with", "tcp-reset"] if action == "reject" else ["DROP"]
    session.run([*base, "-p", "tcp", "-j", *target], ns=ns)


def policy_reject(session: Session, ns: str, ip_v: int, dport: int,
                  dest: str | None = None) -> None:
    """A policy rule: connections to ``dport`` on ``dest`` (default: the server) are
    refused with a RST."""
    session.run([_tables(ip_v), "-w", "-A", "FORWARD", "-p", "tcp", "-d", dest or SRV_ADDR[ip_v],
                 "--dport", str(dport), "-j", "REJECT", "--reject-with", "tcp-reset"], ns=ns)


def snat(session: Session, ns: str, ip_v: int, out_if: str, to: str | None = None) -> None:
    """Source NAT with a random port per mapping: after the conntrack entry expires
    the next packet gets a new mapping, i.e. the flow is rebound to another port."""
    session.run([_tables(ip_v), "-w", "-t", "nat", "-A", "POSTROUTING", "-o", out_if, "-p", "tcp",
                 "-j", "SNAT", "--to-source", to or FW_OUTER_ADDR[ip_v], "--random-fully"], ns=ns)


def l4_dnat(session: Session, ns: str, ip_v: int, vip_port: int, srv_port: int,
            vip: str | None = None, *, expire_reject: bool = True) -> None:
    """An L4 balancer: VIP:port is DNATed to the server.  With ``expire_reject``,
    idle flows expire and then get a RST like a cloud NLB does (stateful_filter in
    the same namespace); without it, it only translates (a front that is not the
    point of the scenario)."""
    dest = f"[{SRV_ADDR[6]}]:{srv_port}" if ip_v == 6 else f"{SRV_ADDR[4]}:{srv_port}"
    session.run([_tables(ip_v), "-w", "-t", "nat", "-A", "PREROUTING", "-p", "tcp",
                 "-d", vip or LB_ADDR[ip_v], "--dport", str(vip_port), "-j", "DNAT",
                 "--to-destination", dest], ns=ns)
    if expire_reject:
        stateful_filter(session, ns, ip_v, action="reject")


def blackhole_syns(session: Session, ns: str, ip_v: int, dport: int) -> None:
    """The server silently drops SYNs to ``dport``: a backend that never answers."""
    session.run([_tables(ip_v), "-w", "-A", "INPUT", "-p", "tcp", "--syn", "--dport", str(dport),
                 "-j", "DROP"], ns=ns)


def make_cert(session: Session) -> tuple[Path, Path]:
    """A throwaway self-signed EC certificate for this run (openssl CLI)."""
    cert, key = session.tmp / "cert.pem", session.tmp / "key.pem"
    session.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
                 "-days", "2", "-subj", "/CN=api.lab.test"])
    return cert, key


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def wait_listening(session: Session, ns: str, port: int, what: str) -> None:
    def up() -> bool:
        out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        return bool(out.strip())

    wait_for(up, timeout_s=10, what=what)


#: haproxy's per-connection log line (``log-format``): client, frontend, the
#: source haproxy used toward the server, the server, termination state, times.
HAPROXY_LOG_PREFIX = "rstscope-haproxy"
HAPROXY_LOG_FIELDS = ("ci=%ci cp=%cp fi=%fi fp=%fp bi=%bi bp=%bp si=%si sp=%sp ts=%ts "
                      "Tw=%Tw Tc=%Tc Tt=%Tt accept=%Ts.%ms")


def haproxy_connections(log: Path) -> list[dict[str, str]]:
    """The connections haproxy logged (one dict of its fields per line)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(errors="replace").splitlines():
        _, sep, rest = line.partition(HAPROXY_LOG_PREFIX + " ")
        if sep:
            out.append(dict(kv.split("=", 1) for kv in rest.split() if "=" in kv))
    return out


def start_haproxy(session: Session, ns: str, ip_v: int, *, port: int, srv_port: int,
                  timeout_s: float, nolinger: bool = True, connect_timeout_s: float = 5.0,
                  bind: str | None = None, maxconn: int = 0) -> None:
    """haproxy in TCP mode between client and server, idle timeouts on both sides.

    ``maxconn`` > 0 caps the frontend's concurrent connections (and so its listen
    backlog): connections beyond it wait in, then overflow, the kernel's queue.

    Every connection is logged (stdout, so ``haproxy.log``) as one
    :data:`HAPROXY_LOG_PREFIX` line with its client address and port and the
    source port haproxy used toward the server: the pairing truth of a run,
    written by haproxy itself (:func:`haproxy_connections` reads it)."""
    fam = "ipv6" if ip_v == 6 else "ipv4"
    ms = int(timeout_s * 1000)
    bind = bind or LB_ADDR[ip_v]
    cfg = session.tmp / "haproxy.cfg"
    cfg.write_text(
        "global\n"
        "    log stdout format raw local0 info\n"
        "defaults\n"
        "    mode tcp\n"
        "    log global\n"
        "    option tcplog\n"
        # Log when the server connection is up (not at the end), so a connection
        # still open when the run stops is logged too; one key=value line each.
        "    option logasap\n"
        f"    log-format \"{HAPROXY_LOG_PREFIX} {HAPROXY_LOG_FIELDS}\"\n"
        f"    timeout connect {int(connect_timeout_s * 1000)}ms\n"
        f"    timeout client {ms}ms\n"
        f"    timeout server {ms}ms\n"
        + ("    option nolinger\n" if nolinger else "")
        + "frontend fe\n"
        f"    bind {fam}@{bind}:{port}\n"
        + (f"    maxconn {maxconn}\n" if maxconn > 0 else "")
        + "    default_backend be\n"
        "backend be\n"
        f"    server s1 {fam}@{SRV_ADDR[ip_v]}:{srv_port}\n"
    )
    session.spawn(["haproxy", "-db", "-f", str(cfg)], ns=ns, log=session.tmp / "haproxy.log")
    wait_listening(session, ns, port, "haproxy to listen")


def start_nginx(session: Session, ns: str, ip_v: int, *, port: int, srv_port: int,
                timeout_s: float, cert: Path, key: Path, connect_timeout_s: float = 60.0,
                bind: str | None = None, buffering: bool = False) -> None:
    """nginx terminating TLS and proxying (unbuffered unless ``buffering``) to the TLS
    server.  ``buffering`` is nginx's default, the one that holds back a slow stream."""
    bind = bind or LB_ADDR[ip_v]
    prefix = session.tmp / "nginx"
    prefix.mkdir(exist_ok=True)
    temp_paths = "".join(f"    {k}_temp_path {prefix / k};\n"
                         for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = prefix / "nginx.conf"
    conf.write_text(
        "worker_processes 1;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} info;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    access_log off;\n"
        + temp_paths
        + "    reset_timedout_connection on;\n"
        "    server {\n"
        f"        listen {_hostport(bind, port)} ssl;\n"
        f"        ssl_certificate {cert};\n"
        f"        ssl_certificate_key {key};\n"
        "        location / {\n"
        f"            proxy_pass https://{_hostport(SRV_ADDR[ip_v], srv_port)};\n"
        "            proxy_http_version 1.1;\n"
        "            proxy_set_header Connection \"\";\n"
        f"            proxy_buffering {'on' if buffering else 'off'};\n"
        f"            proxy_read_timeout {int(timeout_s * 1000)}ms;\n"
        f"            proxy_connect_timeout {int(connect_timeout_s * 1000)}ms;\n"
        "        }\n"
        "    }\n"
        "}\n"
    )
    session.spawn(["nginx", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf),
                   "-g", "daemon off;"], ns=ns, log=session.tmp / "nginx.log")
    wait_listening(session, ns, port, "nginx to listen")
