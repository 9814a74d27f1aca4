"""What a probe run measured: one :class:`Hop` per TTL, and the :class:`ProbeResult`.

``to_dict()`` gives the JSON document ``rstscope probe --format json`` prints and
``rstscope analyze --probe`` reads back (:func:`result_from_dict`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Reply kinds, one per probe.
REPLIES = ("time-exceeded", "rst", "ack", "unreachable", "none")
#: What the probe concluded (``outcome``).
OUTCOMES = ("middlebox-reset", "endpoint-reset", "endpoint-unknown-connection", "no-reset",
            "silent-drop", "unreachable", "inconclusive")
SCHEMA = "rstscope-probe/1"


@dataclass(frozen=True, slots=True)
class Hop:
    """The reply to the probe sent with IP TTL (IPv6 hop limit) ``ttl``."""

    ttl: int
    reply: str  # one of REPLIES
    from_addr: str | None  # who answered (router, endpoint, or the address a RST claims)
    rtt_ms: float | None
    rst_ttl: int | None = None  # the RST's own IP TTL / hop limit as it arrived
    rst_ip_id: int | None = None  # the RST's IPv4 ID (None on IPv6)
    #: A router's time-exceeded that came back for the same probe as a RST: the
    #: resetting box saw the probe although the probe expired there (on-path).
    icmp_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ttl": self.ttl, "reply": self.reply, "from": self.from_addr,
                "rtt_ms": self.rtt_ms, "rst_ttl": self.rst_ttl, "rst_ip_id": self.rst_ip_id,
                "icmp_from": self.icmp_from}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Hop:
        return cls(ttl=int(d["ttl"]), reply=str(d["reply"]), from_addr=d.get("from"),
                   rtt_ms=d.get("rtt_ms"), rst_ttl=d.get("rst_ttl"),
                   rst_ip_id=d.get("rst_ip_id"), icmp_from=d.get("icmp_from"))


@dataclass(frozen=True, slots=True)
class Answer:
    """Where the reset (or the silence) is, from the hops alone."""

    outcome: str  # one of OUTCOMES
    verdict: str  # one sentence
    rst_hop: int | None  # TTL of the first probe that drew a RST
    rst_from: str | None
    rst_ttl: int | None
    rst_ip_id: int | None
    #: The hop where the reset is made (see docs/probe.md: the RST's own TTL places a
    #: box that filters what it forwards one hop before the probe TTL that reached it).
    reset_hop: int | None
    reset_hop_basis: str | None  # "rst-ttl" | "probe-ttl" | "endpoint"
    reset_addr: str | None  # the address the box answers time-exceeded from, if known
    box: str | None  # "firewall" | "load-balancer" | "server"
    on_path: bool
    endpoint: bool | None
    router_before: str | None
    router_after: str | None
    drop_after_hop: int | None  # silent drop: last hop that answered (0 = none did)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Everything one ``rstscope probe`` run measured and concluded."""

    target: str  # HOST:PORT as given
    address: str
    port: int
    ip_v: int
    trigger: str  # idle | sni | data
    sni: str | None
    idle_s: float | None
    local: str  # local address:port of the probed connection
    endpoint_ttl: int | None  # TTL of the endpoint's SYN-ACK as it arrived
    endpoint_hops: int | None  # TTL at which the endpoint itself answers (baseline)
    socket_alive: bool | None  # no FIN/RST reached our socket before the trigger
    path: tuple[Hop, ...]  # baseline: harmless probes while the connection is fresh
    hops: tuple[Hop, ...]  # the trigger's probes
    answer: Answer
    settings: Mapping[str, float | int] = field(default_factory=dict)
    started_ts: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        a = self.answer
        return {
            "schema": SCHEMA, "target": self.target, "address": self.address,
            "port": self.port, "ip_v": self.ip_v, "trigger": self.trigger, "sni": self.sni,
            "idle_s": self.idle_s, "local": self.local, "started_ts": self.started_ts,
            "hops": [h.to_dict() for h in self.hops],
            "rst_hop": a.rst_hop, "rst_from": a.rst_from, "rst_ttl": a.rst_ttl,
            "rst_ip_id": a.rst_ip_id, "endpoint_hops": self.endpoint_hops,
            "endpoint_ttl": self.endpoint_ttl, "verdict": a.verdict, "outcome": a.outcome,
            "reset_hop": a.reset_hop, "reset_hop_basis": a.reset_hop_basis,
            "reset_addr": a.reset_addr, "box": a.box, "on_path": a.on_path,
            "endpoint": a.endpoint, "router_before": a.router_before,
            "router_after": a.router_after, "drop_after_hop": a.drop_after_hop,
            "socket_alive": self.socket_alive,
            "path": [h.to_dict() for h in self.path], "settings": dict(self.settings),
        }


def result_from_dict(d: Mapping[str, Any]) -> ProbeResult:
    """Read back a ``--format json`` document (raises KeyError/ValueError if malformed)."""
    answer = Answer(
        outcome=str(d["outcome"]), verdict=str(d["verdict"]), rst_hop=d.get("rst_hop"),
        rst_from=d.get("rst_from"), rst_ttl=d.get("rst_ttl"), rst_ip_id=d.get("rst_ip_id"),
        reset_hop=d.get("reset_hop"), reset_hop_basis=d.get("reset_hop_basis"),
        reset_addr=d.get("reset_addr"), box=d.get("box"), on_path=bool(d.get("on_path")),
        endpoint=d.get("endpoint"), router_before=d.get("router_before"),
        router_after=d.get("router_after"), drop_after_hop=d.get("drop_after_hop"))
    if answer.outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {answer.outcome!r}")
    return ProbeResult(
        target=str(d["target"]), address=str(d["address"]), port=int(d["port"]),
        ip_v=int(d["ip_v"]), trigger=str(d["trigger"]), sni=d.get("sni"),
        idle_s=d.get("idle_s"), local=str(d.get("local", "")),
        endpoint_ttl=d.get("endpoint_ttl"), endpoint_hops=d.get("endpoint_hops"),
        socket_alive=d.get("socket_alive"),
        path=tuple(Hop.from_dict(h) for h in d.get("path", [])),
        hops=tuple(Hop.from_dict(h) for h in d["hops"]), answer=answer,
        settings=dict(d.get("settings", {})), started_ts=float(d.get("started_ts", 0.0)))
