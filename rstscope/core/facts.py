"""The numbers derived once per RST that every rule and every sentence reads.

:class:`Facts` is built from a settled :class:`~rstscope.core.flow.ResetContext`
by :func:`build_facts`; the scoring (:mod:`rstscope.core.classify`) and the wording
(:mod:`rstscope.core.wording`) both read it, and neither owns it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rstscope.core.config import TrackerConfig
from rstscope.core.flow import ResetContext, seq_diff
from rstscope.core.timeouts import TimeoutMatch, match_gap
from rstscope.core.ttl import hops, initial_ttl, ttl_mode_spread
from rstscope.core.vantage import flow_vantage
from rstscope.schema import TH_ACK, TH_RST

NS = 1_000_000_000
#: Catalog categories that mean "a load balancer" and "a firewall" in verdicts.
LB_CATEGORIES = ("load-balancer", "proxy", "cdn")
FW_CATEGORIES = ("firewall", "nat")


@dataclass(slots=True)
class Facts:
    """Derived numbers shared by the rules (computed once per RST)."""

    ctx: ResetContext
    cfg: TrackerConfig
    side: str  # "client" | "server": who the RST claims to come from
    vantage: str
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
    tags: set[str] = field(default_factory=set)


def build_facts(ctx: ResetContext, cfg: TrackerConfig) -> Facts:
    flow = ctx.flow
    d = ctx.d
    side = "client" if d == 0 else "server"
    vantage, _ = flow_vantage(flow, cfg.vantage)
    settle = cfg.settle_s * NS
    later = [o for o in ctx.later if o.ts - ctx.ts <= settle]
    rs = flow.rtt_side_ns[d]
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
    last_any = max(ctx.s_nr_ts, ctx.r_nr_ts)
    idle_gap = (ctx.ts - last_any) / NS if last_any >= 0 else None
    triggered = False
    latency = None
    trigger_gap = None
    if ctx.r_nr_ts >= 0 and ctx.r_nr_ts >= ctx.s_nr_ts:
        latency = (ctx.ts - ctx.r_nr_ts) / NS
        limit = max(2 * rtt_side_s, rtt_side_s + 0.05) if rtt_side_s is not None else 1.0
        triggered = latency <= limit
        trigger_gap = ctx.r_nr_gap_ns / NS
    seq = seq_status(ctx, triggered)
    gap = trigger_gap if triggered else idle_gap
    bidir = any(p.d != d and 0 <= ctx.ts - p.ts <= 0.2 * NS for p in ctx.prior) or any(
        o.d != d and o.flags & TH_RST for o in later)
    matches = match_gap(cfg, gap, triggered=triggered, bidirectional=bidir,
                        local_sender=vantage == side) if gap else []
    lone = ctx.s_pkts == 0 and ctx.r_pkts == 0
    return Facts(ctx, cfg, side, vantage, later, rtt_side_s, rtt_s, mode, spread, consistent,
                 hop_delta, idle_gap, triggered, latency, trigger_gap, seq, matches,
                 lone)


def seq_status(ctx: ResetContext, triggered: bool) -> str:
    refs = []
    if ctx.s_snd_nxt is not None:
        refs.append(ctx.s_snd_nxt)
    if ctx.r_pkts and ctx.r_nr_flags & TH_ACK:
        refs.append(ctx.r_nr_ack)  # the receiver's RCV.NXT as last advertised
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
    if f.vantage == f.side or c.s_close_gap_ns < 0 or not f.tags & {"after-fin", "after-alert"}:
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
