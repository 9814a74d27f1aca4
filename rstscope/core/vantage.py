"""Where was the capture taken?  Client host, server host, or somewhere between."""

from __future__ import annotations

from rstscope.core.flow import Flow
from rstscope.core.ttl import INITIAL_TTLS, ttl_mode_spread


def flow_vantage(flow: Flow, override: str = "auto") -> tuple[str, str]:
    """(client|server|middle, reason) for one flow.

    A host's own packets are captured before any router decrements them, so an
    undecremented initial TTL (64/128/255) in one direction marks that side as
    local.  Failing that, handshake timing: at the client, SYN -> SYN/ACK spans the
    whole path and SYN/ACK -> ACK is near zero; at the server it is the reverse.
    """
    if override != "auto":
        return override, "set by the user"
    return vantage_from(ttl_mode_spread(flow.dirs[0].ttl_counts),
                        ttl_mode_spread(flow.dirs[1].ttl_counts), flow.rtt_side_ns)


def vantage_from(o: tuple[int, int] | None, r: tuple[int, int] | None,
                 rtt_side_ns: list[int]) -> tuple[str, str]:
    """:func:`flow_vantage` from the (mode, spread) of each side's TTLs and the
    flow's ``rtt_side_ns``, for a caller that has the modes already."""
    o_local = o is not None and o[0] in INITIAL_TTLS
    r_local = r is not None and r[0] in INITIAL_TTLS
    if o_local and not r_local:
        return "client", f"originator TTL {o[0] if o else '?'} is undecremented (local host)"
    if r_local and not o_local:
        return "server", f"responder TTL {r[0] if r else '?'} is undecremented (local host)"
    ro, rr = rtt_side_ns
    if ro >= 0 and rr >= 0 and (ro > 0 or rr > 0):
        if rr > 3 * ro:
            return "client", (f"SYN->SYN/ACK {rr / 1e6:.1f} ms >> SYN/ACK->ACK "
                              f"{ro / 1e6:.1f} ms")
        if ro > 3 * rr:
            return "server", (f"SYN/ACK->ACK {ro / 1e6:.1f} ms >> SYN->SYN/ACK "
                              f"{rr / 1e6:.1f} ms")
        return "middle", (f"handshake halves comparable ({rr / 1e6:.1f} / "
                          f"{ro / 1e6:.1f} ms)")
    if o_local and r_local:
        return "client", "both sides undecremented (loopback or same host)"
    return "middle", "no undecremented TTL and no handshake timing"
