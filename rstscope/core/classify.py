"""Evidence rules and the verdict for one RST.

Theory of operation.  Each rule in :data:`RULES` looks at a
:class:`~rstscope.core.flow.ResetContext` and returns zero or more
:class:`Evidence` items whose ``weight`` is log-odds in favour of "the claimed
endpoint really sent this RST" (positive) versus "a device on the path sent it"
(negative).  The sum (plus a prior: most RSTs are benign endpoint aborts) gives
P(endpoint).  The sender follows from that; the origin of a middlebox RST
(load balancer vs firewall) from the timeout catalog and injection signs.
Confidence is then *capped* wherever the wire cannot separate two origins (a
full proxy looks exactly like the server from the client side; a lone RST has
no baseline), so that high confidence is only given when independent signals
agree.  Weights are re-signed relative to the final verdict before they are
stored, so a positive weight in a record always supports its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rstscope.core.config import TrackerConfig
from rstscope.core.facts import (
    FW_CATEGORIES,
    LB_CATEGORIES,
    NS,
    Facts,
    build_facts,
    distinct_products,
    proxy_close_match,
)
from rstscope.core.flow import ResetContext, seq_diff
from rstscope.core.records import Evidence, ResetRecord
from rstscope.core.timeouts import match_gap
from rstscope.core.ttl import hops, initial_ttl, ttl_mode_spread
from rstscope.core.wording import advice_lines, cause_text
from rstscope.schema import TH_ACK, TH_RST, TH_SYN, addr_text, flags_text

PRIOR_ENDPOINT = 0.7  # most RSTs in real traffic are benign endpoint aborts


def _ev(name: str, value: object, expected: object, weight: float) -> Evidence:
    def scal(v: object) -> str | int | float | bool | None:
        if v is None or isinstance(v, str | int | float | bool):
            return v
        return str(v)

    return Evidence(name, scal(value), scal(expected), round(weight, 2))


# -- rules -------------------------------------------------------------------

def rule_ttl(f: Facts) -> list[Evidence]:
    c = f.ctx
    if f.ttl_mode is None:
        f.tags.add("no-baseline")
        out = [_ev("ttl_baseline", c.ttl, "non-RST packets from the sender", 0.0)]
        if initial_ttl(c.ttl) == 255:
            # Server and client stacks start at 64 (Linux, BSD, macOS) or 128
            # (Windows); 255 is what routers and firewall appliances use.
            out.append(_ev("initial_ttl_255", c.ttl, "64 or 128 (host stacks)", -1.5))
        return out
    mode = f.ttl_mode
    n_base = sum(c.s_ttl_counts.values())
    if f.ttl_consistent and c.ttl != mode and f.ttl_spread == 0 and n_base >= 3:
        # Every packet of the sender had one TTL and the RST is one hop off: on a
        # stable path that is a device next to the endpoint (an L4 balancer, NAT).
        f.tags.add("ttl-mismatch")
        return [_ev("ttl_one_hop", c.ttl, f"{mode} (all {n_base} packets)", -2.0)]
    if f.ttl_consistent:
        w = 2.5 if hops(mode) == 0 else 1.5
        return [_ev("ttl", c.ttl, mode, w)]
    if c.s_syn_ttl >= 0 and abs(c.ttl - c.s_syn_ttl) <= 1:
        # The sender's packets come with two TTLs and the RST matches its SYN: the
        # stack that opened the connection (the other TTL may be a second path).
        f.tags.add("ttl-multimodal")
        return [_ev("ttl_matches_syn", c.ttl, f"{mode} (SYN {c.s_syn_ttl})", 1.0)]
    if initial_ttl(c.ttl) != initial_ttl(mode):
        f.tags.add("ttl-mismatch")
        return [_ev("ttl_initial_class", f"{initial_ttl(c.ttl)} (ttl {c.ttl})",
                    f"{initial_ttl(mode)} (ttl {mode})", -3.0)]
    f.tags.add("ttl-mismatch")
    return [_ev("ttl", c.ttl, mode, -2.0 - min(abs(c.ttl - mode), 10) * 0.1)]


def rule_ip_id(f: Facts) -> list[Evidence]:
    c = f.ctx
    if c.ip_id < 0:
        return []
    out: list[Evidence] = []
    if c.ip_id != 0 and c.ip_id == c.r_nr_ip_id:
        # A 1-in-65536 coincidence otherwise: the device rewrote the trigger packet
        # into a RST (noahdavids' firewall trace); the window often survives too.
        f.tags.add("recycled")
        out.append(_ev("ip_id_recycled", c.ip_id, "differs from the trigger's IP ID", -4.5))
        if c.win == c.r_nr_win and c.win != 0:
            out.append(_ev("window_recycled", c.win, "the sender's own window", -1.0))
        return out
    inc, zero, const, rand = c.s_ipid_counts
    total = inc + zero + const + rand
    if c.ip_id == 0 and c.df:
        f.tags.add("ipid0-df")
        out.append(_ev("ip_id_zero_df", 0, "socket-less Linux RST uses IP ID 0 + DF", 0.0))
        if total >= 2 and zero >= 0.6 * total:
            out.append(_ev("ip_id_behaviour", "zero", "zero", 0.5))
        return out
    if total < 2 or c.s_last_ip_id < 0:
        return out
    if inc >= 0.6 * total:
        step = (c.ip_id - c.s_last_ip_id) & 0xFFFF
        if 1 <= step <= 64:
            f.tags.add("ipid-continuous")
            out.append(_ev("ip_id_step", step, "1..64 (sender's counter)", 2.0))
        else:
            f.tags.add("ipid-break")
            out.append(_ev("ip_id_step", step, "1..64 (sender's counter)", -1.0))
    elif zero >= 0.6 * total:
        out.append(_ev("ip_id_behaviour", "nonzero on RST", "zero", -0.7))
    return out


def rule_latency(f: Facts) -> list[Evidence]:
    if not f.triggered or f.latency_s is None or f.rtt_side_s is None or f.rtt_side_s < 0.001:
        return []
    frac = f.latency_s / f.rtt_side_s
    if frac < 0.5:
        f.tags.add("too-fast")
        return [_ev("latency_vs_rtt", round(frac, 3), ">= 0.5 of the RTT to the sender", -2.0)]
    return [_ev("latency_vs_rtt", round(frac, 3), ">= 0.5 of the RTT to the sender", 0.5)]


def rule_seq(f: Facts) -> list[Evidence]:
    if f.seq_status == "exact":
        return [_ev("seq", "exact", "sender's next sequence number", 0.5)]
    if f.seq_status == "out-of-window":
        f.tags.add("seq-oow")
        return [_ev("seq", "out-of-window", "within the receiver's window", -1.5)]
    if f.seq_status == "in-window":
        return [_ev("seq", "in-window", "sender's next sequence number", -0.3)]
    return []


def rule_race(f: Facts) -> list[Evidence]:
    c = f.ctx
    rtt = f.rtt_side_s if f.rtt_side_s is not None else 0.05
    for o in f.later:
        if o.d != c.d or o.flags & TH_RST:
            continue
        after_s = (o.ts - c.ts) / NS
        progress = False
        if c.s_snd_nxt is not None and seq_diff((o.seq + o.plen) % (1 << 32), c.s_snd_nxt) > 0:
            progress = True
        if (o.flags & TH_ACK and c.s_max_ack is not None
                and seq_diff(o.ack, c.s_max_ack) > 0):
            progress = True
        if progress or after_s > max(rtt, 0.002):
            f.tags.add("race")
            return [_ev("data_after_rst", f"frame {o.frame} +{after_s:.4f} s",
                        "silence from the sender after its RST", -3.0)]
    return []


def rule_storm(f: Facts) -> list[Evidence]:
    c = f.ctx
    win = f.cfg.storm_window_s * NS
    same = [(p.seq, p.ack, p.ttl, p.ip_id) for p in c.prior
            if p.d == c.d and 0 <= c.ts - p.ts <= win]
    same += [(o.seq, o.ack, o.ttl, o.ip_id) for o in f.later
             if o.d == c.d and o.flags & TH_RST and o.ts - c.ts <= win]
    if not same:
        return []
    me = (c.seq, c.ack, c.ttl, c.ip_id)
    dups = sum(1 for s in same if s == me)
    distinct = [s for s in same if s != me]
    out: list[Evidence] = []
    if dups:
        out.append(_ev("duplicate_rsts", dups, "identical copies (SPAN/TAP), not a storm", 0.0))
    if distinct:
        ttls = {s[2] for s in distinct} | {c.ttl}
        if len(ttls) > 1:
            f.tags.add("storm")
            out.append(_ev("rst_burst_ttls", len(distinct) + 1,
                           "one RST with the sender's TTL", -2.0))
        elif len({s[0] for s in distinct} | {c.seq}) > 1 and "seq-oow" in f.tags:
            f.tags.add("storm")
            out.append(_ev("rst_burst_seq", len(distinct) + 1, "one RST", -1.0))
        elif c.s_snd_nxt is not None and any(
                seq_diff(s[0], c.s_snd_nxt) > 2 for s in [*distinct, me]):
            # Weaver et al.'s RST_SEQ_CHANGE: a burst whose sequence numbers run ahead
            # of anything the sender ever sent.  An injector spreads its guesses to land
            # in the window; a real stack resets at its own SND.NXT.
            f.tags.add("storm")
            ahead = max(seq_diff(s[0], c.s_snd_nxt) for s in [*distinct, me])
            out.append(_ev("rst_burst_seq_ahead", f"{len(distinct) + 1} RSTs, up to "
                           f"+{ahead} past SND.NXT", "one RST at the sender's SND.NXT", -2.0))
        else:
            out.append(_ev("rst_burst", len(distinct) + 1, "one RST", 0.0))
    return out


def rule_bidirectional(f: Facts) -> list[Evidence]:
    c = f.ctx
    win = max(0.01, f.rtt_s if f.rtt_s is not None else 0.2) * NS
    for p in c.prior:
        if p.d != c.d and 0 <= c.ts - p.ts <= win:
            break
    else:
        if not any(o.d != c.d and o.flags & TH_RST and o.ts - c.ts <= win for o in f.later):
            return []
    f.tags.add("bidirectional")
    return [_ev("rst_both_directions", True, "a RST towards one endpoint only", -2.5)]


def rule_context(f: Facts) -> list[Evidence]:
    c = f.ctx
    out: list[Evidence] = []
    if c.s_fin_ts >= 0:
        f.tags.add("after-fin")
        out.append(_ev("after_own_fin", round((c.ts - c.s_fin_ts) / NS, 4),
                       "RST without a prior FIN", 1.0))
    if c.s_tls_alert_ts >= 0:
        f.tags.add("after-alert")
        out.append(_ev("after_tls_alert", round((c.ts - c.s_tls_alert_ts) / NS, 4),
                       "no TLS alert", 0.8))
    # SNI filtering: a "server" RST soon after the ClientHello, before any ServerHello
    # and with no server data since the ClientHello (a bare ACK of it may come first).
    if (c.d == 1 and c.ch_ts >= 0 and c.sh_ts < 0 and 0 <= c.ts - c.ch_ts <= NS
            and c.s_last_payload_ts < c.ch_ts):
        f.tags.add("after-clienthello")
        out.append(_ev("after_client_hello", True, "ServerHello before any RST", -1.0))
    if (f.triggered and c.r_nr_flags & TH_SYN and not c.r_nr_flags & TH_ACK
            and c.s_pkts == 0):
        f.tags.add("refused")
        out.append(_ev("answers_syn", True, "SYN/ACK", 0.5))
    if c.r_fin_ts >= 0 and c.s_fin_ts < 0 and f.triggered and c.r_nr_len == 0:
        out.append(_ev("after_peer_fin", True, "FIN/ACK from the sender", 0.0))
    if f.triggered and c.r_nr_len > 0 and "ipid0-df" in f.tags and not c.flags & TH_ACK:
        f.tags.add("no-socket")
        out.append(_ev("answers_data_without_socket", True, "ACK of the data", 0.3))
    if c.plen:
        out.append(_ev("rst_payload_bytes", c.plen, 0, 0.0))
    if c.s_since_peer >= 3 and c.s_rxmit > 0:
        f.tags.add("unanswered")
        out.append(_ev("unanswered_retransmissions", c.s_since_peer, "replies from the peer",
                       0.0))
    if f.lone:
        out.append(_ev("lone_rst", True, "packets of a connection around the RST", 0.0))
    return out


def rule_timeout(f: Facts) -> list[Evidence]:
    gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
    if gap is None or gap < 5.0 or not f.matches:
        return []
    best = f.matches[0]
    if best.fits:
        f.tags.add("timeout-rst-device")
        return [_ev("idle_matches_rst_timeout", round(gap, 3), best.label(), -1.0)]
    return [_ev("idle_matches_timeout", round(gap, 3), best.label(), 0.0)]


RULES: tuple[Callable[[Facts], list[Evidence]], ...] = (
    rule_ttl, rule_ip_id, rule_latency, rule_seq, rule_race, rule_storm, rule_bidirectional,
    rule_context, rule_timeout,
)


# -- facts ---------------------------------------------------------------------

# -- verdict -------------------------------------------------------------------

def _mid_response_close(f: Facts) -> bool:
    """The remote server side closed gracefully after going silent mid-response.

    A server application streaming a response has no reason to give up on its own
    silence; a reverse proxy waiting on a silent upstream does (nginx
    ``proxy_read_timeout``, haproxy ``timeout server``).  So when the far server side
    sent data last, went quiet, then closed with a TLS alert or FIN, a proxy in front
    of the server is the better guess, though the wire cannot rule out the server.
    """
    c = f.ctx
    return (f.side == "server" and f.vantage != f.side and c.s_close_gap_ns >= NS
            and c.s_close_mid_response and bool(f.tags & {"after-fin", "after-alert"}))


def _proxy_peer_at_server(f: Facts) -> bool:
    """At a server capture, the connecting peer sits on the server's own link and
    reset the connection after a silence: the typical shape of a load balancer or
    reverse proxy's timeout toward its backend.  A client on the same link would
    look the same, hence only a lean."""
    if not (f.side == "client" and f.ttl_mode is not None and hops(f.ttl_mode) == 0
            and not f.triggered and f.idle_gap_s is not None and f.idle_gap_s >= 1.0):
        return False
    if f.vantage == "server":
        return True
    # Both ends undecremented: the capture cannot tell which host it ran on, but the
    # two peers share one link, as a load balancer and its backend do.
    peer = ttl_mode_spread(dict(f.ctx.flow.dirs[1 - f.ctx.d].ttl_counts))
    return f.vantage == "middle" and peer is not None and hops(peer[0]) == 0


def _middlebox_origin(f: Facts) -> tuple[str, float, str]:
    """(origin, how sure we are of the device class, why)."""
    fitting = [m for m in f.matches if m.fits]
    if fitting:
        cat = fitting[0].entry.category
        if cat in LB_CATEGORIES:
            return "load-balancer", 0.85, fitting[0].label()
        if cat in FW_CATEGORIES:
            return "firewall", 0.85, fitting[0].label()
    if f.tags & {"race", "storm", "after-clienthello"}:
        return "firewall", 0.85, "injection signs (race, burst or SNI trigger)"
    if "bidirectional" in f.tags:
        return "load-balancer", 0.6, "RSTs to both sides at once (LB reset-on-idle style)"
    if f.triggered and f.trigger_gap_s is not None and f.trigger_gap_s >= 1.0:
        # Lazy expiry: the first packet after a silence met a device without state.
        if initial_ttl(f.ctx.ttl) == 255:
            return "firewall", 0.6, "expired state; initial TTL 255 (appliance/router stack)"
        return "load-balancer", 0.6, "expired state of a host-stack device (LB/NAT)"
    return "firewall", 0.6, "a stateful device on the path"


def classify(ctx: ResetContext, cfg: TrackerConfig) -> ResetRecord:
    """Turn a settled :class:`ResetContext` into its :class:`ResetRecord`."""
    f = build_facts(ctx, cfg)
    raw: list[Evidence] = []
    for rule in RULES:
        raw.extend(rule(f))
    score = math.log(PRIOR_ENDPOINT / (1 - PRIOR_ENDPOINT)) + sum(e.weight for e in raw)
    p_end = 1 / (1 + math.exp(-max(min(score, 30.0), -30.0)))
    endpoint = p_end >= 0.5
    side = f.side
    alternatives: list[tuple[str, str]] = []
    best_fit = next((m for m in f.matches if m.fits), None)
    proxy_match = next((m for m in f.matches if m.entry.full_proxy), None)
    if endpoint:
        origin = side
        sender = f"{side}-endpoint"
        conf = p_end
        local = f.vantage == side
        if not local:
            # A full proxy (L7 LB, reverse proxy, NAT-ing forward proxy) terminates
            # TCP; from the far side its stack *is* the endpoint.  The wire cannot
            # separate the two, so never claim high certainty.
            conf = min(conf, 0.75)
            why = ("a full proxy terminates TCP, so its stack looks like the "
                   f"{side} from here")
            if proxy_match is not None:
                conf = min(conf, 0.55)
                why = f"gap matches {proxy_match.label()}; {why}"
            alternatives.append(("load-balancer", why))
        else:
            conf = min(conf, 0.95)
        # Leans toward a proxy/LB in front of the endpoint: (tag, why the endpoint
        # itself is still the first alternative).  Each caps confidence at 0.55.
        lean: tuple[str, str] | None = None
        close_match = proxy_close_match(f)
        if close_match is not None:
            # The endpoint closed (FIN / TLS alert) after exactly a common full-proxy
            # timeout of silence: most likely a proxy/LB in front of the server.
            lean = ("proxy-close", f"the {side} itself may use a "
                    f"{close_match.entry.timeout_s:g} s timeout")
        elif _mid_response_close(f):
            gap_c = f.ctx.s_close_gap_ns / NS
            lean = ("proxy-close", f"the server application itself may close a response "
                    f"that stays silent {gap_c:.1f} s")
        elif _proxy_peer_at_server(f):
            lean = ("proxy-peer", "a client on the server's own link would look the same")
        if lean is not None:
            origin = "load-balancer"
            conf = min(conf, 0.55)
            alternatives.insert(0, (side, lean[1]))
            f.tags.add(lean[0])
        if best_fit is not None:
            conf = min(conf, 0.6)
            alt = "load-balancer" if best_fit.entry.category in LB_CATEGORIES else "firewall"
            alternatives.append((alt, f"gap matches {best_fit.label()}, which resets"))
        if "unanswered" in f.tags:
            alternatives.append(("firewall", "a device silently dropped the flow; the "
                                 "endpoint gave up after unanswered retransmissions"))
    else:
        origin, cls_conf, why = _middlebox_origin(f)
        sender = "middlebox"
        conf = (1 - p_end) * cls_conf
        other = "firewall" if origin == "load-balancer" else "load-balancer"
        alternatives.append((other, f"the wire shows a device, not which kind ({why})"))
        if not f.tags & {"race", "recycled", "ttl-mismatch"}:
            alternatives.append((side, "the endpoint stack could produce these fields"))
    if "no-baseline" in f.tags:
        conf = min(conf, 0.5 if not f.lone else 0.3)
        if endpoint:
            alternatives.append(("firewall", "no packets from the claimed sender to "
                                 "compare TTL/IP ID with"))
    if endpoint:
        alternatives = [a for a in alternatives if a[0] != origin]
    if "ttl-multimodal" in f.tags:
        conf = min(conf, 0.6)
    evidence = tuple(e if endpoint else Evidence(e.name, e.value, e.expected, -e.weight or 0.0)
                     for e in raw)
    cause = cause_text(f, origin, sender, best_fit)
    advice = advice_lines(f, origin, sender, best_fit)
    flow = ctx.flow
    src_raw, dst_raw = (flow.orig_raw, flow.resp_raw) if ctx.d == 0 else (flow.resp_raw,
                                                                             flow.orig_raw)
    sport, dport = (flow.orig_p, flow.resp_p) if ctx.d == 0 else (flow.resp_p, flow.orig_p)
    o_nr = ctx.s_nr_ts if ctx.d == 0 else ctx.r_nr_ts
    r_nr = ctx.r_nr_ts if ctx.d == 0 else ctx.s_nr_ts
    last_pl = max(ctx.s_last_payload_ts, ctx.r_last_payload_ts)
    sender_hops = (hops(f.ttl_mode) if endpoint and f.ttl_mode is not None
                   else hops(ctx.ttl))
    silence = f.trigger_gap_s if f.triggered else f.idle_gap_s
    silence_end = ctx.r_nr_ts if f.triggered else ctx.ts
    cand_matches = f.matches
    if f.tags & {"after-fin", "after-alert"} and ctx.s_close_gap_ns >= 0:
        # The gap was measured at the sender's first closing packet (alert or FIN).
        silence_end = min(t for t in (ctx.s_fin_ts, ctx.s_tls_alert_ts) if t >= 0)
        # The RST only ended a close the sender had begun: the silence before that
        # close is what a timeout explains.  Proxies first: they close on a timer.
        silence = ctx.s_close_gap_ns / NS
        # Mid-response (the sender was last to send data) points at response-wait
        # timeouts, which answer with an error and close; otherwise at idle timeouts,
        # which close with a FIN.
        wanted = "http-error-then-close" if ctx.s_close_mid_response else "fin"
        cand_matches = sorted(match_gap(cfg, silence, triggered=False, bidirectional=False),
                              key=lambda m: (not m.entry.full_proxy,
                                             m.entry.expiry_behaviour != wanted,
                                             abs(m.error_s)))
    cands = tuple(m.label() for m in distinct_products(cand_matches, 6))
    return ResetRecord(
        frame=ctx.frame, file_id=ctx.file_id, ts_ns=ctx.ts, ts=ctx.ts / NS,
        flow_id=flow.flow_id, src=addr_text(src_raw, flow.ip_v), sport=sport,
        dst=addr_text(dst_raw, flow.ip_v), dport=dport,
        direction="orig" if ctx.d == 0 else "resp", flags=flags_text(ctx.flags),
        origin=origin,  # type: ignore[arg-type]
        sender=sender,  # type: ignore[arg-type]
        sender_hops=sender_hops, confidence=round(conf, 3), cause=cause,
        evidence=evidence, alternatives=tuple(dict(reversed(alternatives)).items())[::-1],
        advice=advice, idle_gap_s=_r(f.idle_gap_s),
        idle_gap_orig_s=_r((ctx.ts - o_nr) / NS if o_nr >= 0 else None),
        idle_gap_resp_s=_r((ctx.ts - r_nr) / NS if r_nr >= 0 else None),
        idle_since_payload_s=_r((ctx.ts - last_pl) / NS if last_pl >= 0 else None),
        idle_before_trigger_s=_r(f.trigger_gap_s) if f.triggered else None,
        silence_s=_r(silence),
        silence_from_ns=(silence_end - int(round(silence * NS))
                         if silence is not None and silence_end >= 0 else None),
        triggered=f.triggered, trigger_frame=ctx.r_nr_frame if f.triggered else None,
        latency_s=_r(f.latency_s) if f.triggered else None, rtt_s=_r(f.rtt_s),
        ttl=ctx.ttl, expected_ttl=f.ttl_mode, hop_delta=f.hop_delta, ip_id=ctx.ip_id,
        timeout_candidates=cands, conn_state=flow.conn_state(),
        seq_status=f.seq_status,  # type: ignore[arg-type]
    )


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


__all__ = ["RULES", "classify"]
