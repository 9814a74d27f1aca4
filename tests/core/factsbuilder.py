"""A small builder of :class:`~rstscope.core.facts.Facts` for rule unit tests.

It stages one RST's context directly (no packets, no tracker), so a rule can be
tested on exactly the fields it reads.  Defaults describe a client-side capture
(client TTL 64 undecremented, 10 packets), a server 12 hops away (TTL 52, 10
packets, incrementing IP IDs), and a RST claiming the server that matches it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rstscope.catalog import load_timeouts
from rstscope.core import TrackerConfig
from rstscope.core.facts import Facts, build_facts
from rstscope.core.flow import DirTable, Flow, Obs, PriorRst, ResetContext

NS = 1_000_000_000
CFG = TrackerConfig(timeouts=load_timeouts())
T0 = 1_700_000_000 * NS

CTX_DEFAULTS: dict[str, Any] = dict(
    frame=100, file_id=0, ts_ns=T0, direction=1, flags=0x14, seq=5000, ack=9000,
    payload_len=0, ttl=52, ip_id=1011, df=True, win=502, tsval=-1,
    s_pkts=10, s_ttl_counts={52: 10}, s_ipid_counts=[9, 0, 0, 0], s_last_ip_id=1010,
    s_last_non_rst_ts_ns=T0 - NS // 50, s_last_payload_ts_ns=T0 - NS // 50, s_snd_nxt=5000,
    s_max_ack=9000,
    s_fin_ts_ns=-1, s_tls_alert_ts_ns=-1, s_since_peer=1, s_rxmit=0, s_ts_opt=False, s_syn_ttl=52,
    s_close_gap_ns=-1, s_close_mid_response=False,
    r_pkts=10, r_last_non_rst_ts_ns=T0 - NS // 40, r_last_non_rst_frame=99,
    r_last_non_rst_seq=8900, r_last_non_rst_ack=5000, r_last_non_rst_payload_len=100,
    r_last_non_rst_flags=0x18, r_last_non_rst_ip_id=77, r_last_non_rst_win=500,
    r_last_non_rst_gap_ns=NS // 20,
    r_last_payload_ts_ns=T0 - NS // 40, r_snd_nxt=9000, r_win=65535, r_wscale=-1, r_fin_ts_ns=-1,
    syn_seen=True, synack_seen=True, client_hello_ts_ns=-1, server_hello_ts_ns=-1, prior=[],
)


def make_ctx(*, peer_ttls: dict[int, int] | None = None, rtt_side_s: tuple[float, float] = (
        0.001, 0.040), later: list[Obs] | None = None, **over: Any) -> ResetContext:
    """A ResetContext with :data:`CTX_DEFAULTS`, ``over`` applied.

    ``peer_ttls``: TTL histogram of the side that did *not* send the RST (default:
    the client's {64: 10} or the server's {52: 10}); ``rtt_side_s``: the round trips
    from the capture point to (client, server).
    """
    flow = Flow(DirTable(4), 1, 1, b"k", True, "syn", False, 4, bytes([198, 51, 100, 10]),
                40000, bytes([203, 0, 113, 20]), 443)
    fields = {**CTX_DEFAULTS, **over}
    direction = fields["direction"]
    if direction == 0:  # the client's own stack, undecremented at this capture point
        for key, value in (("s_ttl_counts", {64: 10}), ("s_syn_ttl", 64), ("ttl", 64)):
            if key not in over:
                fields[key] = value
    if peer_ttls is None:
        peer_ttls = {52: 10} if direction == 0 else {64: 10}
    flow.dirs[direction].ttl_counts.update(fields["s_ttl_counts"])
    flow.dirs[1 - direction].ttl_counts.update(peer_ttls)
    flow.rtt_side_ns[:] = [int(rtt_side_s[0] * NS), int(rtt_side_s[1] * NS)]
    ctx = ResetContext(flow=flow, **fields)
    ctx.later = list(later or [])
    return ctx


def make_facts(cfg: TrackerConfig = CFG, facts_over: dict[str, Any] | None = None,
               **ctx_over: Any) -> Facts:
    """Facts of :func:`make_ctx` (``facts_over`` then replaces derived fields)."""
    f = build_facts(make_ctx(**ctx_over), cfg)
    return replace(f, **facts_over) if facts_over else f


def obs(ts_ns: int, direction: int, flags: int, *, seq: int = 0, ack: int = 0,
        payload_len: int = 0, ttl: int = 52, ip_id: int = 0, frame: int = 101) -> Obs:
    return Obs(ts_ns, direction, flags, seq, ack, payload_len, ttl, ip_id, frame)


def prior(ts_ns: int, direction: int, *, seq: int = 5000, ack: int = 9000, ttl: int = 52,
          ip_id: int = 0) -> PriorRst:
    return PriorRst(ts_ns, direction, seq, ack, ttl, ip_id)
