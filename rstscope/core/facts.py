"""The numbers derived once per RST that every rule and every sentence reads.

:class:`Facts` is built from a settled :class:`~rstscope.core.flow.ResetContext`
by :func:`build_facts`; the scoring (:mod:`rstscope.core.classify`) and the wording
(:mod:`rstscope.core.wording`) both read it, and neither owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rstscope.core.config import TrackerConfig
from rstscope.core.flow import ResetContext, seq_diff
from rstscope.core.tags import Tag
from rstscope.core.timeouts import TimeoutMatch, match_gap
from rstscope.core.ttl import hops, initial_ttl, ttl_mode_spread
from rstscope.core.vantage import flow_vantage
from rstscope.core.vocab import Origin, Side, Vantage
from rstscope.schema import TH_ACK, TH_RST

NS = 1_000_000_000
#: Catalog categories that mean "a load balancer" and "a firewall" in verdicts.
LB_CATEGORIES = ("load-balancer", "proxy", "cdn")
FW_CATEGORIES = ("firewall", "nat")


def category_origin(category: str) -> Origin | None:
    """The verdict origin a catalog category stands for (None: an endpoint's own)."""
    if category in LB_CATEGORIES:
        return Origin.LOAD_BALANCER
    if category in FW_CATEGORIES:
        return Origin.FIREWALL
    return None


@dataclass(frozen=True, slots=True)
class Position:
    """Where on the path the RST's TTL says it was made.

    ``from_capture`` counts routers between the capture point and the emitter (TTL
    decrements; 0 = on the captured link).  The other two count links (IP hops) and
    need the matching end's TTL baseline (or the capture on that end): a box next
    to the client is 1 hop from it, and 1 hop before the server means the last box
    in front of it.  0 means the TTL puts the emitter at the endpoint's own distance.
    """

    from_capture: int
    from_client: int | None
    to_server: int | None

    @property
    def text(self) -> str:
        def h(n: int) -> str:
            return f"{n} hop{'s' if n != 1 else ''}"
        parts = []
        if self.from_client is not None:
            parts.append(f"{h(self.from_client)} from the client" if self.from_client > 0
                         else "at the client's distance")
        if self.to_server is not None:
            parts.append(f"{h(self.to_server)} before the server" if self.to_server > 0
                         else "at the server's distance")
        if not parts:
            return f"{self.from_capture} routers beyond the capture point"
        return "made " + ", ".join(parts)


def emitter_position(ttl: int, direction: int, client_hops: int | None,
                     server_hops: int | None) -> Position:
    """Position of a packet with ``ttl`` claiming side ``direction`` (0 client, 1 server).

    ``client_hops`` / ``server_hops``: routers between the capture point and each
    end (their TTL baselines).  The emitter lies between the capture point and the
    end it claims to be, ``hops(ttl)`` routers past the capture point.
    """
    h = hops(ttl)
    if direction == 1:
        from_client = client_hops + 1 + h if client_hops is not None else None
        to_server = max(server_hops - h, 0) if server_hops is not None else None
    else:
        from_client = max(client_hops - h, 0) if client_hops is not None else None
        to_server = server_hops + 1 + h if server_hops is not None else None
    return Position(h, from_client, to_server)


@dataclass(slots=True)
class Facts:
    """Derived numbers shared by the rules (computed once per RST)."""

    ctx: ResetContext
    cfg: TrackerConfig
    side: Side  # who the RST claims to come from
    vantage: str  # a Vantage value other than auto
    later: list  # type: ignore[type-arg]  # post-RST packets inside the settle window
    rtt_side_s: float | None
    rtt_s: float | None
    ttl_mode: int | None
    ttl_spread: int | None
    ttl_consistent: bool | None
    hop_delta: int | None
    idle_gap_s: float | None
    triggered: bool
    latency_s: float | None
    trigger_gap_s: float | None
    seq_status: str
    matches: list[TimeoutMatch]
    lone: bool
    position: Position
    #: (mode, spread) of the sender address's TTLs in the capture's other flows, when
    #: this flow holds no packet of the sender's.
    host_ttl: tuple[int, int] | None = None
    tags: set[Tag] = field(default_factory=set)


def build_facts(ctx: ResetContext, cfg: TrackerConfig) -> Facts:
    flow = ctx.flow
    direction = ctx.direction
    side = Side.CLIENT if direction == 0 else Side.SERVER
    vantage, _ = flow_vantage(flow, cfg.vantage)
    settle = cfg.settle_s * NS
    later = [o for o in ctx.later if o.ts_ns - ctx.ts_ns <= settle]
    rs = flow.rtt_side_ns[direction]
    rtt_side_s = rs / NS if rs >= 0 else None
    ro, rr = flow.rtt_side_ns
    rtt_s = (ro + rr) / NS if ro >= 0 and rr >= 0 else None
    ms = ttl_mode_spread(ctx.s_ttl_counts)
    mode, spread = (ms if ms else (None, None))
    consistent: bool | None = None
    hop_delta: int | None = None
    if mode is not None and spread is not None:
        tol = max(2 if hops(mode) > 9 else 1, min(spread, 3))
        consistent = (initial_ttl(ctx.ttl) == initial_ttl(mode)
                      and abs(ctx.ttl - mode) <= tol)
        hop_delta = hops(mode) - hops(ctx.ttl)
    last_any = max(ctx.s_last_non_rst_ts_ns, ctx.r_last_non_rst_ts_ns)
    idle_gap = (ctx.ts_ns - last_any) / NS if last_any >= 0 else None
    triggered = False
    latency = None
    trigger_gap = None
    if ctx.r_last_non_rst_ts_ns >= 0 and ctx.r_last_non_rst_ts_ns >= ctx.s_last_non_rst_ts_ns:
        latency = (ctx.ts_ns - ctx.r_last_non_rst_ts_ns) / NS
        limit = max(2 * rtt_side_s, rtt_side_s + 0.05) if rtt_side_s is not None else 1.0
        triggered = latency <= limit
        trigger_gap = ctx.r_last_non_rst_gap_ns / NS
    seq = seq_status(ctx, triggered)
    gap = trigger_gap if triggered else idle_gap
    bidir = any(p.direction != direction and 0 <= ctx.ts_ns - p.ts_ns <= 0.2 * NS
                for p in ctx.prior) or any(
        o.direction != direction and o.flags & TH_RST for o in later)
    matches = match_gap(cfg, gap, triggered=triggered, bidirectional=bidir,
                        local_sender=vantage == side) if gap else []
    lone = ctx.s_pkts == 0 and ctx.r_pkts == 0
    host = ttl_mode_spread(ctx.host_ttl_counts) if mode is None and ctx.host_ttl_counts else None
    # Without a baseline in the flow, the address's other flows place the sender.
    place_mode = mode if mode is not None else host[0] if host else None
    return Facts(ctx, cfg, side, vantage, later, rtt_side_s, rtt_s, mode, spread, consistent,
                 hop_delta, idle_gap, triggered, latency, trigger_gap, seq, matches,
                 lone, _position(ctx, place_mode, vantage), host)


def _position(ctx: ResetContext, sender_mode: int | None, vantage: str) -> Position:
    """Baselines of both ends (the sender's as frozen at the RST) place the emitter."""
    peer = ttl_mode_spread(dict(ctx.flow.dirs[1 - ctx.direction].ttl_counts))
    peer_mode = peer[0] if peer else None
    client_mode, server_mode = ((sender_mode, peer_mode) if ctx.direction == 0
                                else (peer_mode, sender_mode))
    # A known capture host is 0 routers from its own end even without its packets.
    client_hops = (hops(client_mode) if client_mode is not None
                   else 0 if vantage == Vantage.CLIENT else None)
    server_hops = (hops(server_mode) if server_mode is not None
                   else 0 if vantage == Vantage.SERVER else None)
    return emitter_position(ctx.ttl, ctx.direction, client_hops, server_hops)


def seq_status(ctx: ResetContext, triggered: bool) -> str:
    refs = []
    if ctx.s_snd_nxt is not None:
        refs.append(ctx.s_snd_nxt)
    if ctx.r_pkts and ctx.r_last_non_rst_flags & TH_ACK:
        refs.append(ctx.r_last_non_rst_ack)  # the receiver's RCV.NXT as last advertised
    if not refs:
        return "unknown"
    if ctx.seq in refs:
        return "exact"
    if not ctx.flags & TH_ACK and ctx.seq == 0 and triggered:
        return "exact"  # RFC 9293: a RST to a segment without ACK has seq 0, ack set
    rcv_nxt = refs[-1]
    win = ctx.r_win if ctx.r_win is not None else 65535
    if ctx.r_wscale >= 0:
        win <<= ctx.r_wscale
    delta = seq_diff(ctx.seq, rcv_nxt)
    return "in-window" if 0 <= delta < max(win, 1) else "out-of-window"


def proxy_close_match(f: Facts) -> TimeoutMatch | None:
    c = f.ctx
    if (f.vantage == f.side or c.s_close_gap_ns < 0
            or not f.tags & {Tag.AFTER_FIN, Tag.AFTER_ALERT}):
        return None
    gap = c.s_close_gap_ns / NS
    if gap < 5.0:
        return None
    ms = match_gap(f.cfg, gap, triggered=False, bidirectional=False)
    proxies = [m for m in ms if m.entry.full_proxy and m.entry.category in LB_CATEGORIES]
    others = [m for m in ms if not m.entry.full_proxy]
    return proxies[0] if proxies and len(proxies) >= len(others) else None


def distinct_products(matches: list[TimeoutMatch], n: int) -> list[TimeoutMatch]:
    """The first ``n`` matches, one per product (a product may list several settings)."""
    seen: set[str] = set()
    out = []
    for m in matches:
        if m.entry.product not in seen:
            seen.add(m.entry.product)
            out.append(m)
    return out[:n]
