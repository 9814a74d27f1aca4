"""From per-TTL replies to the answer: which hop resets, or where the silence starts.

Hop numbering is the probe's: hop *n* is where a probe sent with TTL *n*
expires, i.e. the *n*-th router, and the endpoint sits at ``endpoint_hops``
(the first TTL the endpoint itself answered, measured on the fresh connection).

Two measurements place a resetting box, and they differ by design:

* the **probe TTL** ``k`` of the first probe that drew a RST (``rst_hop``);
* the **RST's own TTL**: routers on the way back decrement it, so
  ``initial TTL - arrived TTL`` routers lie between the box and us, and the box
  is hop ``that + 1``.

A router that filters what it forwards (a conntrack firewall, an L4 balancer)
checks the TTL *before* its forward hook, so it answers time-exceeded at TTL
``j`` and resets at TTL ``j + 1``: the RST's TTL then names hop ``j = k - 1``.
An on-path injector watching a copy of the traffic sees the probe even when
the probe expires there, so the same TTL ``k`` brings a time-exceeded *and* a
RST, and the RST's TTL names hop ``k`` (CenTrace's on-path / in-path test).
The RST's TTL is trusted only when it lands on ``k - 1`` or ``k``; otherwise
(an unusual initial TTL, a box that copies the probe's TTL) ``k`` is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

from rstscope.core.ttl import hops as ttl_hops
from rstscope.probe.model import Answer, Hop

TRIGGER_WORDS = {"idle": "the idle period", "sni": "the ClientHello",
                 "data": "the payload", "path": "a harmless probe on the fresh connection"}


def emitter_hop(rst_ttl: int) -> int:
    """The hop a packet arriving with ``rst_ttl`` came from (1 = first router)."""
    return ttl_hops(rst_ttl) + 1


def _router_at(n: int, hops: Sequence[Hop], path: Sequence[Hop]) -> str | None:
    """The address that answered time-exceeded at TTL ``n`` (trigger first, then baseline)."""
    if n <= 0:
        return None
    for seq in (hops, path):
        for h in seq:
            if h.ttl == n and h.reply == "time-exceeded" and h.from_addr:
                return h.from_addr
            if h.ttl == n and h.icmp_from:
                return h.icmp_from
    for h in path:
        if h.ttl == n and h.reply == "ack":
            return h.from_addr
    return None


def _addr(a: str | None) -> str:
    return f" ({a})" if a else ""


def conclude(hops: Sequence[Hop], path: Sequence[Hop], *, target: str, trigger: str,
             endpoint_ttl: int | None, endpoint_hops: int | None,
             socket_alive: bool | None) -> Answer:
    """The answer for one trigger's ``hops``, given the fresh-connection ``path``."""
    rst = next((h for h in hops if h.reply == "rst"), None)
    where_end = f", before the endpoint at hop {endpoint_hops}" if endpoint_hops else ""
    if rst is not None:
        k = rst.ttl
        rst_ttl = rst.rst_ttl
        is_endpoint = (endpoint_ttl is not None and rst_ttl == endpoint_ttl
                       and (endpoint_hops is None or k >= endpoint_hops))
        if is_endpoint:
            hop = endpoint_hops or k
            forgot = trigger == "idle" and socket_alive is True
            if forgot:
                verdict = (f"The endpoint itself (hop {hop}, RST TTL {rst_ttl} like its own "
                           "packets) reset the probe as a connection it does not know, though "
                           "it never closed it: a NAT or load balancer on the path most likely "
                           "forgot the mapping and rebound the flow to a new 4-tuple (or the "
                           "server lost its state).")
            else:
                verdict = (f"The endpoint itself (hop {hop}, RST TTL {rst_ttl} like its own "
                           f"packets) reset the connection after {TRIGGER_WORDS[trigger]}.")
            return Answer(outcome="endpoint-unknown-connection" if forgot else "endpoint-reset",
                          verdict=verdict, reset_hop=hop, reset_hop_basis="endpoint",
                          reset_addr=rst.from_addr, box="server", on_path=False, endpoint=True,
                          router_before=_router_at(hop - 1, hops, path), router_after=None,
                          drop_after_hop=None, rst_hop=k, rst_from=rst.from_addr,
                          rst_ttl=rst_ttl, rst_ip_id=rst.rst_ip_id)
        j = emitter_hop(rst_ttl) if rst_ttl is not None else None
        if j is not None and max(1, k - 1) <= j <= k:
            hop, basis = j, "rst-ttl"
        else:
            hop, basis = k, "probe-ttl"
        on_path = rst.icmp_from is not None
        addr = _router_at(hop, hops, path) if hop < k or on_path else None
        owns_target = addr == target and (endpoint_hops is None or endpoint_hops > hop)
        box = "load-balancer" if owns_target else "firewall"
        before, after = _router_at(hop - 1, hops, path), _router_at(hop + 1, hops, path)
        ttl_note = f"RST TTL {rst_ttl}" + (f", IP ID {rst.rst_ip_id}"
                                            if rst.rst_ip_id is not None else "")
        if on_path:
            what = (f"An on-path box at hop {hop}{_addr(addr)} injects the RST: the probe "
                    f"with TTL {k} drew both a time-exceeded and a RST ({ttl_note})")
        elif box == "load-balancer":
            what = (f"A load balancer at hop {hop}{_addr(addr)}, the box that owns the target "
                    f"address in front of the real server, resets the connection: the probe "
                    f"with TTL {k} drew its RST ({ttl_note})")
        else:
            what = (f"A firewall at hop {hop}{_addr(addr)} resets the connection: the probe "
                    f"with TTL {k} drew its RST ({ttl_note})")
        return Answer(outcome="middlebox-reset", verdict=f"{what}{where_end}.", reset_hop=hop,
                      reset_hop_basis=basis, reset_addr=addr, box=box, on_path=on_path,
                      endpoint=False, router_before=before, router_after=after,
                      drop_after_hop=None, rst_hop=k, rst_from=rst.from_addr,
                      rst_ttl=rst_ttl, rst_ip_id=rst.rst_ip_id)

    none: dict[str, None] = {"rst_hop": None, "rst_from": None, "rst_ttl": None,
                             "rst_ip_id": None, "reset_hop": None, "reset_hop_basis": None,
                             "reset_addr": None, "box": None}
    ack = next((h for h in hops if h.reply == "ack"), None)
    if ack is not None:
        return Answer(outcome="no-reset", on_path=False, endpoint=None,
                      verdict=(f"No reset: the endpoint answered the probe with TTL {ack.ttl} "
                               "and nothing on the path reset it."),
                      router_before=_router_at(ack.ttl - 1, hops, path), router_after=None,
                      drop_after_hop=None, **none)
    unreach = next((h for h in hops if h.reply == "unreachable"), None)
    if unreach is not None:
        return Answer(outcome="unreachable", on_path=False, endpoint=None,
                      verdict=(f"Hop {unreach.ttl}{_addr(unreach.from_addr)} answered the "
                               "probe with an ICMP unreachable instead of a RST."),
                      router_before=_router_at(unreach.ttl - 1, hops, path),
                      router_after=_router_at(unreach.ttl + 1, hops, path),
                      drop_after_hop=None, **none)
    answered = [h.ttl for h in hops if h.reply != "none"]
    last = max(answered, default=0)
    sent = max((h.ttl for h in hops), default=0)
    at = _router_at(last, hops, path)
    if sent == 0 or last == sent:
        return Answer(outcome="inconclusive", on_path=False, endpoint=None,
                      verdict=(f"No reset and no endpoint within {sent} hops: every probe "
                               "expired at a router; raise --max-hops."),
                      router_before=at, router_after=None, drop_after_hop=None, **none)
    span = f"TTL {last + 1}" + (f" to {sent}" if sent > last + 1 else "")
    seen = (f" (the endpoint answered at hop {endpoint_hops} on the fresh connection)"
            if endpoint_hops else "")
    return Answer(outcome="silent-drop", on_path=False, endpoint=None,
                  verdict=(f"Dropped silently at or after hop {last}{_addr(at)}: no probe with "
                           f"{span} drew an answer{seen}."),
                  router_before=at, router_after=_router_at(last + 1, [], path),
                  drop_after_hop=last, **none)
