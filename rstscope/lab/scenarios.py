"""The scenario catalogue: each kind of TCP reset, as a plan for real components.

A scenario is data plus one function that turns parameters into a :class:`Plan`:
what the server does, what the client does, which middlebox is configured and
which device's RST is the point of the scenario (its cause).  The runner
(:mod:`rstscope.lab.runner`) executes plans; nothing here touches the system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from rstscope.errors import UsageError

#: Parameters every scenario accepts (initial TTL / hop limit per device, IP version).
COMMON_DEFAULTS: Mapping[str, int | float | str] = MappingProxyType({
    "ip_v": 4,
    "ttl_client": 128,
    "ttl_fw": 255,
    "ttl_rtr": 64,
    "ttl_lb": 64,
    "ttl_srv": 64,
    # The path (docs/lab.md "Paths"): forwarding nodes between the client and the lb
    # slot, hops from the lb slot to the server, where the firewall sits, and an
    # optional L4 balancer (DNAT) in front of a scenario that has no balancer of its own.
    "hops_client": 2,
    "hops_server": 1,
    "fw_at": "client-edge",
    "front": "none",
})

#: Values of the ``front`` parameter.
FRONTS = ("none", "l4")

Params = Mapping[str, int | float | str]


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run does.  ``middlebox`` names a setup in the runner."""

    server_schedule: str
    client_args: tuple[str, ...]
    server_args: tuple[str, ...] = ()
    target: str = "srv"  # "srv": connect to the server; "lb": to the lb's VIP / proxy
    middlebox: str = "none"
    causes: Mapping[str, str] = field(default_factory=dict)
    #: A stall scenario's cause per device whose limit it is, where no RST carries
    #: it (the analyzer must name it among the stalls); RST labels use ``causes``.
    stall_causes: Mapping[str, str] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)
    sni: str = "api.lab.test"
    #: The full proxy's backend: "up" (the lab server), "refused" (a port nothing
    #: listens on) or "blackhole" (the server drops the proxy's SYNs).
    backend: str = "up"
    #: Upper bound on how long the client needs (the runner waits this, plus margin).
    duration_s: float = 10.0
    #: Endpoint programs (``python -m rstscope.lab.<module>``); an empty server
    #: module means ``setup`` starts the server itself (e.g. gunicorn).
    server_module: str = "server"
    client_module: str = "client"
    #: Extra set-up after the captures start and before the server: called as
    #: ``setup(session, topology, params, ip_v, cert, key)`` (see rstscope.lab.everyday).
    setup: Callable[..., None] | None = None
    #: The lb is a full proxy started by ``setup`` (an endpoint of both connections).
    proxy: bool = False

    @property
    def full_proxy(self) -> bool:
        """The lb terminates TCP (two connections), so it is an endpoint of each."""
        return self.middlebox in ("haproxy", "nginx") or self.proxy


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    defaults: Mapping[str, int | float | str]
    plan: Callable[[Params], Plan]
    tools: tuple[str, ...] = ()

    def params(self, overrides: Mapping[str, str] | None = None) -> dict[str, int | float | str]:
        """Defaults merged with ``key=value`` overrides, typed like the defaults."""
        out: dict[str, int | float | str] = {**COMMON_DEFAULTS, **self.defaults}
        for key, raw in (overrides or {}).items():
            if key not in out:
                raise UsageError(f"scenario {self.name} has no parameter {key!r} "
                                 f"(known: {', '.join(sorted(out))})")
            default = out[key]
            try:
                out[key] = type(default)(raw)
            except ValueError as exc:
                raise UsageError(f"{key}={raw!r}: expected {type(default).__name__}") from exc
        if out["ip_v"] not in (4, 6):
            raise UsageError("ip_v must be 4 or 6")
        if out["front"] not in FRONTS:
            raise UsageError(f"front must be one of {', '.join(FRONTS)}")
        if not isinstance(out["hops_client"], int) or not isinstance(out["hops_server"], int):
            raise UsageError("hops_client and hops_server must be integers")
        for k, v in out.items():
            if k.startswith("ttl") and not (isinstance(v, int) and 1 <= v <= 255):
                raise UsageError(f"{k} must be an integer 1..255")
            if k.endswith("_s") and not (isinstance(v, (int, float)) and v > 0):
                raise UsageError(f"{k} must be a positive number of seconds")
        return out


def _f(p: Params, key: str) -> float:
    return float(p[key])


def _client(*args: object) -> tuple[str, ...]:
    return tuple(str(a) for a in args)


def _chunks(n: int) -> str:
    return ",".join(["d"] * n)


# -- plans ------------------------------------------------------------------------------
def _server_abort(p: Params) -> Plan:
    return Plan(f"{_chunks(3)},abort", _client("--read-timeout-s", 10),
                causes={"srv": "server-abort"}, duration_s=3)


def _server_idle_abort(p: Params) -> Plan:
    t = _f(p, "idle_timeout_s")
    return Plan(f"d,idle-abort{t}", _client("--read-timeout-s", t + 10),
                causes={"srv": "server-idle-timeout"}, timeouts={"srv": t}, duration_s=t + 3)


def _client_read_timeout(graceful: bool) -> Callable[[Params], Plan]:
    def plan(p: Params) -> Plan:
        t = _f(p, "read_timeout_s")
        how = "graceful" if graceful else "abort"
        # The server resumes after the client gave up; with a graceful close that
        # late data hits a closed socket and the client's kernel answers with a RST.
        return Plan(f"d,s{t + 2.5},d,d,end",
                    _client("--read-timeout-s", t, "--on-timeout", how, "--linger-s", 4),
                    causes={"client": "client-read-timeout" if not graceful
                            else "data-after-close"},
                    timeouts={"client": t}, duration_s=t + 8)
    return plan


def _client_close_unread(p: Params) -> Plan:
    return Plan(f"{_chunks(int(p['chunks']))},hold",
                _client("--read-timeout-s", 10, "--close-after-bytes", 1),
                causes={"client": "close-with-unread-data"}, duration_s=3)


def _fw_idle_client_next(p: Params) -> Plan:
    t = _f(p, "conntrack_timeout_s")
    idle = t + _f(p, "extra_idle_s")
    if p["fw_action"] not in ("reject", "drop"):
        raise UsageError("fw_action must be reject or drop")
    if p["fw_action"] == "drop":
        # A silent firewall: no RST from it; the client's read timeout ends the flow.
        return Plan("d,d,end", _client("--requests", 2, "--reuse-after-s", idle,
                                       "--read-timeout-s", 3, "--on-timeout", "abort"),
                    middlebox="fw-drop", causes={"client": "client-read-timeout"},
                    timeouts={"fw": t, "client": 3.0}, duration_s=idle + 6)
    return Plan("d,d,end", _client("--requests", 2, "--reuse-after-s", idle,
                                   "--read-timeout-s", 5),
                middlebox="fw-reject", causes={"fw": "firewall-idle-timeout"},
                timeouts={"fw": t}, duration_s=idle + 4)


def _fw_idle_server_next(p: Params) -> Plan:
    t = _f(p, "conntrack_timeout_s")
    idle = t + _f(p, "extra_idle_s")
    return Plan(f"d,s{idle},d,d,end",
                _client("--read-timeout-s", idle + 2, "--on-timeout", "abort"),
                middlebox="fw-reject", causes={"fw": "firewall-idle-timeout"},
                timeouts={"fw": t}, duration_s=idle + 5)


def _fw_policy_reject(p: Params) -> Plan:
    return Plan("d,end", _client("--read-timeout-s", 5), middlebox="fw-policy",
                causes={"fw": "firewall-policy"}, duration_s=3)


def _nat_rebind(p: Params) -> Plan:
    t = _f(p, "conntrack_timeout_s")
    idle = t + _f(p, "extra_idle_s")
    return Plan("d,d,end", _client("--requests", 2, "--reuse-after-s", idle,
                                   "--read-timeout-s", 5),
                middlebox="fw-snat", causes={"srv": "nat-rebinding"},
                timeouts={"fw": t}, duration_s=idle + 4)


def _l4lb_idle(p: Params) -> Plan:
    t = _f(p, "conntrack_timeout_s")
    idle = t + _f(p, "extra_idle_s")
    return Plan("d,d,end", _client("--requests", 2, "--reuse-after-s", idle,
                                   "--read-timeout-s", 5),
                target="lb", middlebox="l4lb", causes={"lb": "load-balancer-idle-timeout"},
                timeouts={"lb": t}, duration_s=idle + 4)


def _haproxy(p: Params) -> Plan:
    t = _f(p, "proxy_timeout_s")
    return Plan(f"d,s{t + 3},d,end", _client("--read-timeout-s", t + 6),
                target="lb", middlebox="haproxy", causes={"lb": "load-balancer-idle-timeout"},
                timeouts={"lb": t}, duration_s=t + 4)


def _nginx(p: Params) -> Plan:
    t = _f(p, "proxy_timeout_s")
    return Plan(f"d,s{t + 3},d,end", _client("--read-timeout-s", t + 6),
                target="lb", middlebox="nginx", causes={"lb": "proxy-read-timeout"},
                timeouts={"lb": t}, duration_s=t + 4)


def _proxy_backend(proxy: str, backend: str) -> Callable[[Params], Plan]:
    """A full proxy whose backend fails: refused, silent (connect timeout) or reset
    mid-response.  The proxy then ends the client's connection itself.  No timer is
    behind a refusal or a reset, so only the connect timeout is a label's timeout."""
    def plan(p: Params) -> Plan:
        t = _f(p, "proxy_timeout_s")
        if backend == "abort":
            return Plan(f"{_chunks(3)},abort", _client("--read-timeout-s", t + 6),
                        target="lb", middlebox=proxy,
                        causes={"lb": "proxy-backend-reset", "srv": "server-abort"},
                        duration_s=4)
        if backend == "refused":
            return Plan("d,end", _client("--read-timeout-s", 8, "--linger-s", 1),
                        target="lb", middlebox=proxy, backend="refused",
                        causes={"lb": "proxy-backend-refused", "srv": "backend-refused"},
                        duration_s=4)
        c = _f(p, "connect_timeout_s")
        # haproxy tries the connect 1 + 3 (its default retries) times before giving up.
        attempts = 4 if proxy == "haproxy" else 1
        return Plan("d,end", _client("--read-timeout-s", attempts * c + 6, "--linger-s", 1),
                    target="lb", middlebox=proxy, backend="blackhole",
                    causes={"lb": "proxy-backend-connect-timeout"},
                    timeouts={"lb": c}, duration_s=attempts * c + 4)
    return plan


def _dpi(style: str) -> Callable[[Params], Plan]:
    def plan(p: Params) -> Plan:
        # The server "thinks" before answering the ClientHello, standing in for a
        # distant server: the injector (near the client) then wins the race.
        return Plan("d,end", _client("--read-timeout-s", 5, "--linger-s", 1),
                    server_args=_client("--handshake-delay-s", p["server_delay_s"]),
                    middlebox=f"inject-{style}", causes={"rtr": "dpi-injection"},
                    sni=str(p["blocked_sni"]), duration_s=4)
    return plan


def _graceful(p: Params) -> Plan:
    return Plan(f"{_chunks(3)},graceful", _client("--read-timeout-s", 5), duration_s=3)


_IDLE = {"conntrack_timeout_s": 3.0, "extra_idle_s": 1.5}

_REGISTRY: dict[str, Scenario] = {s.name: s for s in (
    Scenario("server-abort", "server streams 3 chunks then aborts (SO_LINGER 0): server RST",
             {}, _server_abort),
    Scenario("server-idle-abort", "server sends 1 chunk, idles idle_timeout_s, then aborts",
             {"idle_timeout_s": 3.0}, _server_idle_abort),
    Scenario("client-read-timeout-abort",
             "server goes silent; client read timeout fires and it aborts: client RST",
             {"read_timeout_s": 3.0}, _client_read_timeout(False)),
    Scenario("client-read-timeout-graceful",
             "client read timeout, graceful close; server's late data draws a client RST",
             {"read_timeout_s": 3.0}, _client_read_timeout(True)),
    Scenario("client-close-unread",
             "client closes with unread data in its receive buffer: client RST, no FIN",
             {"chunks": 20}, _client_close_unread),
    Scenario("fw-idle-expiry-client-next",
             "conntrack entry expires while idle; client's next request gets a firewall RST",
             {**_IDLE, "fw_action": "reject"}, _fw_idle_client_next, ("iptables", "ip6tables")),
    Scenario("fw-idle-expiry-server-next",
             "conntrack entry expires while idle; server's next chunk gets a firewall RST",
             _IDLE, _fw_idle_server_next, ("iptables", "ip6tables")),
    Scenario("fw-policy-reject", "firewall rule rejects the SYN with a RST (REJECT tcp-reset)",
             {}, _fw_policy_reject, ("iptables", "ip6tables")),
    Scenario("nat-rebind-after-idle",
             "SNAT mapping expires while idle; next packet is rebound, server RSTs it",
             _IDLE, _nat_rebind, ("iptables", "ip6tables")),
    Scenario("l4lb-idle-expiry",
             "L4 DNAT balancer forgets an idle flow and RSTs the client's next request",
             _IDLE, _l4lb_idle, ("iptables", "ip6tables")),
    Scenario("haproxy-timeout",
             "haproxy (TCP mode, option nolinger) idle timeout RSTs both sides",
             {"proxy_timeout_s": 3.0}, _haproxy, ("haproxy",)),
    Scenario("nginx-proxy-timeout",
             "nginx TLS proxy: proxy_read_timeout fires on a silent upstream stream",
             {"proxy_timeout_s": 3.0}, _nginx, ("nginx",)),
    Scenario("dpi-inject-single",
             "on-path DPI (scapy) sees a blocked SNI and injects one RST each way",
             {"blocked_sni": "blocked.lab.test", "inject_ttl": 64, "server_delay_s": 0.2}, _dpi("single")),
    Scenario("dpi-inject-storm",
             "on-path DPI injects 3 RSTs each way with stepped sequence numbers",
             {"blocked_sni": "blocked.lab.test", "inject_ttl": 64, "server_delay_s": 0.2}, _dpi("storm")),
    *(Scenario(f"{proxy}-backend-{kind}", f"{proxy} full proxy; {what}",
               {"proxy_timeout_s": 30.0, **({"connect_timeout_s": 2.0}
                                             if kind == "connect-timeout" else {})},
               _proxy_backend(proxy, backend), (proxy,))
      for proxy in ("haproxy", "nginx")
      for kind, backend, what in (
          ("refused", "refused", "the backend refuses the proxy's connection (RST to its SYN)"),
          ("connect-timeout", "blackhole",
           "the backend drops the proxy's SYNs until its connect timeout"),
          ("abort", "abort", "the backend aborts mid-response (RST) behind the proxy"))),
    Scenario("graceful-close", "control: stream then TLS close_notify + FIN, no RST expected",
             {}, _graceful),
)}

#: Every scenario by name.  Families that live in their own module (the everyday
#: causes of ECONNRESET, rstscope.lab.everyday) add theirs with :func:`register`
#: when the package is imported, so this module imports none of them (no cycle).
SCENARIOS: Mapping[str, Scenario] = MappingProxyType(_REGISTRY)


def register(*scenarios: Scenario) -> None:
    """Add scenarios to :data:`SCENARIOS`; a name may be taken only once."""
    for sc in scenarios:
        if _REGISTRY.get(sc.name, sc) is not sc:
            raise ValueError(f"lab scenario {sc.name!r} is registered twice")
        _REGISTRY[sc.name] = sc



def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UsageError(f"unknown lab scenario {name!r}; see 'rstscope lab list'") from None
