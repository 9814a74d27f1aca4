"""Evidence rules and the verdict for one RST.

Theory of operation.  Each :class:`Rule` in :data:`RULES` looks at the
:class:`~rstscope.core.facts.Facts` of one RST and returns zero or more
:class:`Evidence` items whose ``weight`` is log-odds in favour of "the claimed
endpoint really sent this RST" (positive) versus "a box on the path sent it"
(negative).  The sum (plus a prior: most RSTs are benign endpoint aborts) gives
P(endpoint), and the sender follows.  When a box sent it, :data:`KIND_RULES` weigh
which kind of box (load balancer > 0, firewall < 0) from everything the wire
shows together: where on the path it was made, every fitting catalog row by
category, the TTL class, injection and REJECT signs.  No single fingerprint
decides, and where the evidence cancels the verdict names both kinds at low
confidence.  Confidence is then *capped* wherever the wire cannot separate two
origins (a full proxy looks exactly like the server from the client side; a lone
RST has no baseline).  Weights are re-signed relative to the final verdict before
they are stored, so a positive weight in a record always supports its verdict.

Every number lives in :mod:`rstscope.core.scoring` (``cfg.scoring``), with its
reason.  Rules declare the tags they read and set; :func:`check_order` refuses a
table in which a rule reads a tag no earlier rule sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rstscope.core.causes import name_reset
from rstscope.core.config import TrackerConfig
from rstscope.core.facts import (
    NS,
    Facts,
    build_facts,
    category_origin,
    distinct_products,
    proxy_close_match,
)
from rstscope.core.flow import ResetContext, seq_diff
from rstscope.core.records import Evidence, ResetRecord
from rstscope.core.tags import INJECTION, Tag
from rstscope.core.timeouts import match_gap
from rstscope.core.ttl import hops, initial_ttl, ttl_mode_spread
from rstscope.core.vocab import Origin, Sender, Vantage
from rstscope.core.wording import advice_lines, cause_text
from rstscope.schema import TH_ACK, TH_RST, TH_SYN, addr_text, flags_text


def _ev(name: str, value: object, expected: object, weight: float) -> Evidence:
    def scal(v: object) -> str | int | float | bool | None:
        if v is None or isinstance(v, str | int | float | bool):
            return v
        return str(v)

    return Evidence(name, scal(value), scal(expected), round(weight, 2))


@dataclass(frozen=True, slots=True)
class EvidenceDoc:
    """One evidence name a rule emits, as docs/verdicts.md explains it."""

    name: str
    measures: str
    reads_as: str


@dataclass(frozen=True, slots=True)
class Rule:
    """A scoring rule: what it reads and sets, and the evidence it may emit."""

    fn: Callable[[Facts], list[Evidence]]
    reads: frozenset[Tag]
    sets: frozenset[Tag]
    evidence: tuple[EvidenceDoc, ...]

    @property
    def name(self) -> str:
        return self.fn.__name__


def _rule(fn: Callable[[Facts], list[Evidence]], *, reads: Iterable[Tag] = (),
          sets: Iterable[Tag] = (), evidence: Iterable[tuple[str, str, str]]) -> Rule:
    return Rule(fn, frozenset(reads), frozenset(sets),
                tuple(EvidenceDoc(*e) for e in evidence))


# -- endpoint or box? ------------------------------------------------------------

def rule_ttl(f: Facts) -> list[Evidence]:
    c, w = f.ctx, f.cfg.scoring.weights
    if f.ttl_mode is None:
        f.tags.add(Tag.NO_BASELINE)
        out = [_ev("ttl_baseline", c.ttl, "non-RST packets from the sender", 0.0)]
        peer = ttl_mode_spread(dict(c.flow.dirs[1 - c.direction].ttl_counts))
        if hops(c.ttl) == 0 and peer is not None and hops(peer[0]) > 0:
            # The RST left its host undecremented while the peer's packets crossed
            # routers: the capture runs on the sender's host (or its link), and a
            # host answers for itself -- a refused port seen on the server.
            out.append(_ev("ttl_capture_host", c.ttl, f"decremented like the peer's "
                           f"({peer[0]})", w.ttl_capture_host))
        elif f.host_ttl is not None:
            # The same address in the capture's other connections: a server that
            # answered them from 7 hops did not answer this SYN from 1 hop.
            f.tags.add(Tag.HOST_BASELINE)
            hmode, hspread = f.host_ttl
            tol = max(2 if hops(hmode) > 9 else 1, min(hspread, 3))
            if initial_ttl(c.ttl) == initial_ttl(hmode) and abs(c.ttl - hmode) <= tol:
                out.append(_ev("ttl_host", c.ttl, f"{hmode} (its other connections)",
                               w.ttl_host_consistent))
            else:
                f.tags.add(Tag.TTL_MISMATCH)
                out.append(_ev("ttl_host", c.ttl, f"{hmode} (its other connections)",
                               w.ttl_host_off))
        elif initial_ttl(c.ttl) == 255:
            # Server and client stacks start at 64 (Linux, BSD, macOS) or 128
            # (Windows); 255 is what routers and firewall appliances use.
            out.append(_ev("initial_ttl_255", c.ttl, "64 or 128 (host stacks)",
                           w.initial_ttl_255))
        return out
    mode = f.ttl_mode
    n_base = sum(c.s_ttl_counts.values())
    if (f.ttl_consistent and c.ttl != mode and f.ttl_spread == 0
            and n_base >= f.cfg.scoring.thresholds.ttl_baseline_min_pkts):
        # Every packet of the sender had one TTL and the RST is one hop off: on a
        # stable path that is a device next to the endpoint (an L4 balancer, NAT).
        f.tags.add(Tag.TTL_MISMATCH)
        return [_ev("ttl_one_hop", c.ttl, f"{mode} (all {n_base} packets)", w.ttl_one_hop)]
    if f.ttl_consistent:
        return [_ev("ttl", c.ttl, mode, w.ttl_local if hops(mode) == 0 else w.ttl_consistent)]
    if c.s_syn_ttl >= 0 and abs(c.ttl - c.s_syn_ttl) <= 1:
        # The sender's packets come with two TTLs and the RST matches its SYN: the
        # stack that opened the connection (the other TTL may be a second path).
        f.tags.add(Tag.TTL_MULTIMODAL)
        return [_ev("ttl_matches_syn", c.ttl, f"{mode} (SYN {c.s_syn_ttl})", w.ttl_matches_syn)]
    f.tags.add(Tag.TTL_MISMATCH)
    if initial_ttl(c.ttl) != initial_ttl(mode):
        return [_ev("ttl_initial_class", f"{initial_ttl(c.ttl)} (ttl {c.ttl})",
                    f"{initial_ttl(mode)} (ttl {mode})", w.ttl_initial_class)]
    return [_ev("ttl", c.ttl, mode, w.ttl_off + min(abs(c.ttl - mode), 10) * w.ttl_off_per_hop)]


def rule_ip_id(f: Facts) -> list[Evidence]:
    c, w, t = f.ctx, f.cfg.scoring.weights, f.cfg.scoring.thresholds
    if c.ip_id < 0:
        return []
    out: list[Evidence] = []
    if c.ip_id != 0 and c.ip_id == c.r_last_non_rst_ip_id:
        # A 1-in-65536 coincidence otherwise: the device rewrote the trigger packet
        # into a RST (noahdavids' firewall trace); the window often survives too.
        f.tags.add(Tag.RECYCLED)
        out.append(_ev("ip_id_recycled", c.ip_id, "differs from the trigger's IP ID",
                       w.ip_id_recycled))
        if c.win == c.r_last_non_rst_win and c.win != 0:
            out.append(_ev("window_recycled", c.win, "the sender's own window",
                           w.window_recycled))
        return out
    inc, zero, const, rand = c.s_ipid_counts
    total = inc + zero + const + rand
    if c.ip_id == 0 and c.df:
        f.tags.add(Tag.IPID0_DF)
        out.append(_ev("ip_id_zero_df", 0, "socket-less Linux RST uses IP ID 0 + DF", 0.0))
        if total >= 2 and zero >= t.ipid_majority * total:
            out.append(_ev("ip_id_behaviour", "zero", "zero", w.ip_id_zero_consistent))
        return out
    if total < 2 or c.s_last_ip_id < 0:
        return out
    if inc >= t.ipid_majority * total:
        step = (c.ip_id - c.s_last_ip_id) & 0xFFFF
        if 1 <= step <= t.ipid_step_max:
            f.tags.add(Tag.IPID_CONTINUOUS)
            out.append(_ev("ip_id_step", step, "1..64 (sender's counter)", w.ip_id_continuous))
        else:
            f.tags.add(Tag.IPID_BREAK)
            out.append(_ev("ip_id_step", step, "1..64 (sender's counter)", w.ip_id_break))
    elif zero >= t.ipid_majority * total:
        out.append(_ev("ip_id_behaviour", "nonzero on RST", "zero", w.ip_id_nonzero))
    return out


def rule_latency(f: Facts) -> list[Evidence]:
    w, t = f.cfg.scoring.weights, f.cfg.scoring.thresholds
    if (not f.triggered or f.latency_s is None or f.rtt_side_s is None
            or f.rtt_side_s < t.min_rtt_s):
        return []
    frac = f.latency_s / f.rtt_side_s
    want = f">= {t.too_fast_fraction:g} of the RTT to the sender"
    if frac < t.too_fast_fraction:
        f.tags.add(Tag.TOO_FAST)
        return [_ev("latency_vs_rtt", round(frac, 3), want, w.too_fast)]
    return [_ev("latency_vs_rtt", round(frac, 3), want, w.latency_ok)]


def rule_seq(f: Facts) -> list[Evidence]:
    w = f.cfg.scoring.weights
    if f.seq_status == "exact":
        return [_ev("seq", "exact", "sender's next sequence number", w.seq_exact)]
    if f.seq_status == "out-of-window":
        f.tags.add(Tag.SEQ_OOW)
        return [_ev("seq", "out-of-window", "within the receiver's window", w.seq_out_of_window)]
    if f.seq_status == "in-window":
        return [_ev("seq", "in-window", "sender's next sequence number", w.seq_in_window)]
    return []


def rule_race(f: Facts) -> list[Evidence]:
    c, t = f.ctx, f.cfg.scoring.thresholds
    rtt = f.rtt_side_s if f.rtt_side_s is not None else t.race_default_rtt_s
    for o in f.later:
        if o.direction != c.direction or o.flags & TH_RST:
            continue
        after_s = (o.ts_ns - c.ts_ns) / NS
        progress = False
        if (c.s_snd_nxt is not None
                and seq_diff((o.seq + o.payload_len) % (1 << 32), c.s_snd_nxt) > 0):
            progress = True
        if (o.flags & TH_ACK and c.s_max_ack is not None
                and seq_diff(o.ack, c.s_max_ack) > 0):
            progress = True
        if progress or after_s > max(rtt, t.race_min_s):
            f.tags.add(Tag.RACE)
            return [_ev("data_after_rst", f"frame {o.frame} +{after_s:.4f} s",
                        "silence from the sender after its RST", f.cfg.scoring.weights.race)]
    return []


def rule_storm(f: Facts) -> list[Evidence]:
    c, w = f.ctx, f.cfg.scoring.weights
    win = f.cfg.storm_window_s * NS
    same = [(p.seq, p.ack, p.ttl, p.ip_id) for p in c.prior
            if p.direction == c.direction and 0 <= c.ts_ns - p.ts_ns <= win]
    same += [(o.seq, o.ack, o.ttl, o.ip_id) for o in f.later
             if o.direction == c.direction and o.flags & TH_RST and o.ts_ns - c.ts_ns <= win]
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
            f.tags.add(Tag.STORM)
            out.append(_ev("rst_burst_ttls", len(distinct) + 1,
                           "one RST with the sender's TTL", w.burst_ttls))
        elif len({s[0] for s in distinct} | {c.seq}) > 1 and Tag.SEQ_OOW in f.tags:
            f.tags.add(Tag.STORM)
            out.append(_ev("rst_burst_seq", len(distinct) + 1, "one RST", w.burst_seq))
        elif c.s_snd_nxt is not None and any(
                seq_diff(s[0], c.s_snd_nxt) > 2 for s in [*distinct, me]):
            # Weaver et al.'s RST_SEQ_CHANGE: a burst whose sequence numbers run ahead
            # of anything the sender ever sent.  An injector spreads its guesses to land
            # in the window; a real stack resets at its own SND.NXT.
            f.tags.add(Tag.STORM)
            ahead = max(seq_diff(s[0], c.s_snd_nxt) for s in [*distinct, me])
            out.append(_ev("rst_burst_seq_ahead", f"{len(distinct) + 1} RSTs, up to "
                           f"+{ahead} past SND.NXT", "one RST at the sender's SND.NXT",
                           w.burst_seq_ahead))
        else:
            out.append(_ev("rst_burst", len(distinct) + 1, "one RST", 0.0))
    return out


def rule_bidirectional(f: Facts) -> list[Evidence]:
    c, t = f.ctx, f.cfg.scoring.thresholds
    win = max(0.01, f.rtt_s if f.rtt_s is not None else t.bidir_window_s) * NS
    for p in c.prior:
        if p.direction != c.direction and 0 <= c.ts_ns - p.ts_ns <= win:
            break
    else:
        if not any(o.direction != c.direction and o.flags & TH_RST and o.ts_ns - c.ts_ns <= win
                   for o in f.later):
            return []
    f.tags.add(Tag.BIDIRECTIONAL)
    return [_ev("rst_both_directions", True, "a RST towards one endpoint only",
                f.cfg.scoring.weights.bidirectional)]


def rule_context(f: Facts) -> list[Evidence]:
    c, w, t = f.ctx, f.cfg.scoring.weights, f.cfg.scoring.thresholds
    out: list[Evidence] = []
    if c.s_fin_ts_ns >= 0:
        f.tags.add(Tag.AFTER_FIN)
        out.append(_ev("after_own_fin", round((c.ts_ns - c.s_fin_ts_ns) / NS, 4),
                       "RST without a prior FIN", w.after_own_fin))
    if c.s_tls_alert_ts_ns >= 0:
        f.tags.add(Tag.AFTER_ALERT)
        out.append(_ev("after_tls_alert", round((c.ts_ns - c.s_tls_alert_ts_ns) / NS, 4),
                       "no TLS alert", w.after_tls_alert))
    # SNI filtering: a RST soon after the ClientHello, before any ServerHello and with
    # no data from its claimed sender since (a bare ACK may come first).  An injector
    # resets both ends, so the "client" RST a server capture sees counts too: the
    # client's last data is the ClientHello itself.
    if (c.client_hello_ts_ns >= 0 and c.server_hello_ts_ns < 0
            and 0 <= c.ts_ns - c.client_hello_ts_ns <= t.client_hello_window_s * NS
            and (c.s_last_payload_ts_ns < c.client_hello_ts_ns if c.direction == 1
                 else c.s_last_payload_ts_ns <= c.client_hello_ts_ns)):
        f.tags.add(Tag.AFTER_CLIENTHELLO)
        out.append(_ev("after_client_hello", True, "ServerHello before any RST",
                       w.after_client_hello))
    if (f.triggered and c.r_last_non_rst_flags & TH_SYN and not c.r_last_non_rst_flags & TH_ACK
            and c.s_pkts == 0):
        f.tags.add(Tag.REFUSED)
        out.append(_ev("answers_syn", True, "SYN/ACK", w.answers_syn))
    if (c.r_fin_ts_ns >= 0 and c.s_fin_ts_ns < 0 and f.triggered
            and c.r_last_non_rst_payload_len == 0):
        out.append(_ev("after_peer_fin", True, "FIN/ACK from the sender", 0.0))
    if (f.triggered and c.r_last_non_rst_payload_len > 0 and Tag.IPID0_DF in f.tags
            and not c.flags & TH_ACK):
        f.tags.add(Tag.NO_SOCKET)
        out.append(_ev("answers_data_without_socket", True, "ACK of the data", w.no_socket))
    if c.payload_len:
        out.append(_ev("rst_payload_bytes", c.payload_len, 0, 0.0))
    if c.s_since_peer >= 3 and c.s_rxmit > 0:
        f.tags.add(Tag.UNANSWERED)
        out.append(_ev("unanswered_retransmissions", c.s_since_peer, "replies from the peer",
                       0.0))
    if f.lone:
        out.append(_ev("lone_rst", True, "packets of a connection around the RST", 0.0))
    return out


def rule_timeout(f: Facts) -> list[Evidence]:
    gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
    if gap is None or gap < f.cfg.scoring.thresholds.timeout_min_gap_s or not f.matches:
        return []
    best = f.matches[0]
    if best.fits:
        f.tags.add(Tag.TIMEOUT_RST_DEVICE)
        return [_ev("idle_matches_rst_timeout", round(gap, 3), best.label(),
                    f.cfg.scoring.weights.timeout_rst_device)]
    return [_ev("idle_matches_timeout", round(gap, 3), best.label(), 0.0)]


# -- which kind of box? -------------------------------------------------------------
# Kind rules run only when the sum says a box sent the RST.  Their weights argue for
# a load balancer (> 0) against a firewall (< 0); they are stored with the prefix
# "kind_" and, like all weights, re-signed to support the verdict.

def kind_catalog(f: Facts) -> list[Evidence]:
    by_kind: dict[Origin, str] = {}
    for m in f.matches:
        kind = category_origin(m.entry.category)
        if m.fits and kind is not None and kind not in by_kind:
            by_kind[kind] = m.label()
    if not by_kind:
        return []
    if len(by_kind) > 1:
        # 350 s is both AWS NLB and AWS NAT gateway: rows of both kinds fit, so the
        # catalog says "a box with this timeout", not which kind.
        f.tags.add(Tag.CATALOG_AMBIGUOUS)
        return [_ev("kind_catalog", " / ".join(by_kind.values()), "rows of one kind", 0.0)]
    ((kind, label),) = by_kind.items()
    w = f.cfg.scoring.kind.catalog_fit
    return [_ev("kind_catalog", label, "a fitting catalog row",
                w if kind is Origin.LOAD_BALANCER else -w)]


def kind_signs(f: Facts) -> list[Evidence]:
    k = f.cfg.scoring.kind
    out: list[Evidence] = []
    inj = sorted(f.tags & INJECTION)
    if inj:
        out.append(_ev("kind_injection", ", ".join(inj), "no injection signs", k.injection))
    elif Tag.BIDIRECTIONAL in f.tags:
        out.append(_ev("kind_bidirectional", True, "a RST to one end", k.bidirectional))
    if Tag.REFUSED in f.tags:
        out.append(_ev("kind_reject", True, "a SYN/ACK or nothing", k.reject))
    elif (not inj and f.triggered and f.trigger_gap_s is not None
          and f.trigger_gap_s < f.cfg.scoring.thresholds.lazy_expiry_min_gap_s):
        # A box reset a connection that was not idle: no state expired, so a policy
        # did it (a firewall's REJECT); balancers reset on lost or expired state.
        out.append(_ev("kind_reject", f"after {f.trigger_gap_s:.3f} s", "an idle connection",
                       k.reject))
    if Tag.UNANSWERED in f.tags:
        out.append(_ev("kind_unanswered", f.ctx.s_since_peer, "replies from the peer",
                       k.unanswered))
    return out


def kind_position(f: Facts) -> list[Evidence]:
    k, p = f.cfg.scoring.kind, f.position
    out: list[Evidence] = []
    near = p.to_server == 1
    edge = p.from_client == 1
    if near:
        f.tags.add(Tag.NEAR_SERVER)
        out.append(_ev("kind_position", p.text, "a box elsewhere on the path", k.near_server))
    if edge:
        f.tags.add(Tag.CLIENT_EDGE)
        out.append(_ev("kind_position", p.text, "a box elsewhere on the path", k.client_edge))
    if (not near and not edge and p.to_server is not None and p.from_client is not None
            and p.to_server > 1 and p.from_client > 1):
        f.tags.add(Tag.MID_PATH)
        # Which half of the path: a balancer often has routers between it and its
        # backends (so it is not "1 hop before the server") but still sits in the
        # server's network; a filter in transit or at the client's site does not.
        # The exact midpoint counts as transit.
        if p.to_server < p.from_client:
            out.append(_ev("kind_position", p.text, "a box nearer the client",
                           k.server_side))
        else:
            out.append(_ev("kind_position", p.text, "a box nearer the server", k.mid_path))
    return out


def kind_ttl_class(f: Facts) -> list[Evidence]:
    k = f.cfg.scoring.kind
    start = initial_ttl(f.ctx.ttl)
    if start == 255:
        return [_ev("kind_initial_ttl", start, "64 or 128 (host stack)", k.initial_ttl_255)]
    return [_ev("kind_initial_ttl", start, "255 (appliance)", k.initial_ttl_host)]


_E = "a RST"

#: The endpoint-or-box rules, in order.
RULES: tuple[Rule, ...] = (
    _rule(rule_ttl, sets=(Tag.NO_BASELINE, Tag.TTL_MISMATCH, Tag.TTL_MULTIMODAL,
                          Tag.HOST_BASELINE), evidence=(
        ("ttl", "RST TTL (IPv6: hop limit) vs the mode of the sender's non-RST packets",
         "within ±1 (±2 beyond 9 hops, or the baseline's spread): the endpoint; off: a device "
         "at another distance.  At 0 hops (the capture host) it is strong"),
        ("ttl_initial_class", "the RST's initial-TTL class (32/64/128/255) differs from the "
         "sender's", "a different stack: middlebox"),
        ("ttl_matches_syn", "the sender's packets came with two TTLs and the RST matches its "
         "SYN", "the stack that opened the connection; confidence capped"),
        ("ttl_baseline", "no non-RST packet from the sender",
         "nothing to compare: confidence capped"),
        ("ttl_capture_host", "no baseline; the RST is undecremented (64/128/255) while the "
         "peer's packets crossed routers", "the capture runs on the sender's host: it "
         "answered for itself (a refused port seen on the server)"),
        ("ttl_host", "no baseline in the flow: the RST's TTL vs the mode of the sender "
         "address's handshakes (SYN, SYN/ACK) earlier in the capture", "within ±1: the same "
         "host (a weak lean, another port may take another path); off: a box answered for it"),
        ("initial_ttl_255", "no baseline, and the RST starts at TTL 255",
         "host stacks start at 64 or 128; 255 is a router/firewall appliance"),
        ("ttl_one_hop", "every packet of the sender had one TTL (≥ 3 packets) and the RST is "
         "exactly one hop off", "a device next to the endpoint (L4 balancer, NAT) on a stable "
         "path"),
    )),
    _rule(rule_ip_id, sets=(Tag.RECYCLED, Tag.IPID0_DF, Tag.IPID_CONTINUOUS, Tag.IPID_BREAK),
          evidence=(
        ("ip_id_step", "RST IP ID − the sender's last IP ID, when the sender's IDs increment",
         "1..64: continues the sender's counter (Linux per-socket, app abort); anything else "
         "breaks it"),
        ("ip_id_zero_df", "IP ID 0 with DF", "Linux sends socket-less RSTs this way: the "
         "sender's kernel lost or never had the connection – or a Linux-based device did"),
        ("ip_id_behaviour", "the sender always used ID 0 (or never did)",
         "consistent / inconsistent"),
        ("ip_id_recycled", "RST IP ID = the triggering packet's IP ID",
         "a device rewrote the trigger into a RST (a 1-in-65536 coincidence otherwise)"),
        ("window_recycled", "RST window = the trigger's window (with `ip_id_recycled`)",
         "same device signature"),
    )),
    _rule(rule_latency, sets=(Tag.TOO_FAST,), evidence=(
        ("latency_vs_rtt", "RST delay after its trigger ÷ the RTT from the capture point to the "
         "claimed sender", "< 0.5: faster than the path allows – a nearer device; ≈ 1: "
         "consistent"),
    )),
    _rule(rule_seq, sets=(Tag.SEQ_OOW,), evidence=(
        ("seq", "RST sequence number vs the sender's next sequence number and the receiver's "
         "window", "`exact`: a stack that knew the connection; `out-of-window`: blind or stale "
         "injection"),
    )),
    _rule(rule_race, sets=(Tag.RACE,), evidence=(
        ("data_after_rst", "the claimed sender kept sending after its own RST, with new "
         "data/ACK progress or later than one RTT", "the endpoint never sent that RST: "
         "injection (Weaver's race)"),
    )),
    _rule(rule_storm, reads=(Tag.SEQ_OOW,), sets=(Tag.STORM,), evidence=(
        ("rst_burst_ttls", "several RSTs from one side within `storm_window_s` with differing "
         "TTLs", "an injector spraying guesses"),
        ("rst_burst_seq", "a burst with differing out-of-window sequence numbers",
         "an injector spraying guesses"),
        ("rst_burst_seq_ahead", "a burst whose sequence numbers run past anything the sender "
         "ever sent (SND.NXT + 2 and beyond)", "Weaver et al.'s RST_SEQ_CHANGE: an injector; "
         "a closed socket never runs ahead of its own SND.NXT"),
        ("rst_burst", "a burst without those signs", "context"),
        ("duplicate_rsts", "identical copies of the RST", "SPAN/TAP duplicates, not a storm"),
    )),
    _rule(rule_bidirectional, sets=(Tag.BIDIRECTIONAL,), evidence=(
        ("rst_both_directions", "RSTs towards both endpoints within about one RTT",
         "only a device in the middle can reset both sides at once"),
    )),
    _rule(rule_context, reads=(Tag.IPID0_DF,),
          sets=(Tag.AFTER_FIN, Tag.AFTER_ALERT, Tag.AFTER_CLIENTHELLO, Tag.REFUSED,
                Tag.NO_SOCKET, Tag.UNANSWERED), evidence=(
        ("after_own_fin", "the sender had sent a FIN", "an endpoint closing, then aborting"),
        ("after_tls_alert", "the sender had sent a TLS alert", "an endpoint closing, then "
         "aborting"),
        ("after_client_hello", "a RST within 1 s of a ClientHello, before any ServerHello "
         "and with no data from its claimed sender since", "SNI filtering"),
        ("answers_syn", "RST to a SYN, nothing else from the sender",
         "refused port (or a firewall's REJECT)"),
        ("after_peer_fin", "a RST answering the peer's bare FIN", "context"),
        ("answers_data_without_socket", "IP ID 0 + DF RST, without ACK, answering data",
         "the receiving kernel had no socket"),
        ("unanswered_retransmissions", "the sender sent N packets since it last heard from the "
         "peer, with retransmissions", "a device silently dropped the flow; the endpoint gave "
         "up"),
        ("rst_payload_bytes", "the RST carries data", "some devices explain themselves there"),
        ("lone_rst", "no other packet of the connection", "backscatter or a late capture "
         "start"),
    )),
    _rule(rule_timeout, sets=(Tag.TIMEOUT_RST_DEVICE,), evidence=(
        ("idle_matches_rst_timeout", "the silence matches a catalog device that *sends* RSTs "
         "on expiry (`rst-next-packet` for a triggered RST, `rst-both` for a spontaneous one)",
         "an idle-timeout middlebox"),
        ("idle_matches_timeout", "the silence matches a catalog timeout whose device closes "
         "with FIN/HTTP error or drops silently", "context: the setting to look at"),
    )),
)

#: The kind-of-box rules (load balancer > 0, firewall < 0), run after :data:`RULES`.
KIND_RULES: tuple[Rule, ...] = (
    _rule(kind_catalog, sets=(Tag.CATALOG_AMBIGUOUS,), evidence=(
        ("kind_catalog", "every catalog row that fits the silence and the RST's shape, by "
         "category", "load balancer/proxy/CDN vs firewall/NAT; rows of both kinds cancel"),
    )),
    _rule(kind_signs, reads=(*INJECTION, Tag.BIDIRECTIONAL, Tag.REFUSED, Tag.UNANSWERED),
          evidence=(
        ("kind_injection", "race, burst, SNI trigger or a recycled trigger", "DPI/IPS: firewall"),
        ("kind_bidirectional", "RSTs to both ends at the timeout, no injection sign",
         "reset-on-idle load balancers"),
        ("kind_reject", "a box answered the SYN, or a connection that was not idle, with a "
         "RST", "a firewall's REJECT: balancers reset on lost or expired state"),
        ("kind_unanswered", "the box dropped packets silently before the RST",
         "NAT/firewall state more often than a balancer's"),
    )),
    _rule(kind_position, sets=(Tag.NEAR_SERVER, Tag.CLIENT_EDGE, Tag.MID_PATH), evidence=(
        ("kind_position", "where the TTLs place the box (`path_position`)",
         "right in front of the server: load balancer; at the client's edge or mid-path: "
         "firewall, NAT or filter"),
    )),
    _rule(kind_ttl_class, evidence=(
        ("kind_initial_ttl", "the box's initial TTL class", "255: appliance (more often a "
         "firewall); 64/128: host stack (Linux LBs, but also iptables firewalls) – a lean"),
    )),
)

#: Tags the verdict stage reads, and those it sets (the leans and the kind summary).
VERDICT_READS: frozenset[Tag] = frozenset({
    Tag.AFTER_FIN, Tag.AFTER_ALERT, Tag.UNANSWERED, Tag.NO_BASELINE, Tag.TTL_MULTIMODAL,
    Tag.RACE, Tag.RECYCLED, Tag.TTL_MISMATCH, Tag.HOST_BASELINE})
VERDICT_SETS: frozenset[Tag] = frozenset({Tag.PROXY_CLOSE, Tag.SAME_LINK_PEER, Tag.KIND_UNSURE,
                                         Tag.PROXY_NO_ANSWER, Tag.FAR_CLOSE})


def check_order(rules: Iterable[Rule], reads_after: frozenset[Tag] = frozenset()) -> None:
    """Raise ValueError if a rule reads a tag no earlier rule sets, or a tag is set twice
    by rules that disagree on meaning (two setters are fine; an unset read is not)."""
    seen: set[Tag] = set()
    for rule in rules:
        missing = rule.reads - seen
        if missing:
            raise ValueError(f"{rule.name} reads {sorted(missing)} before any rule sets it")
        seen |= rule.sets
    missing = reads_after - seen
    if missing:
        raise ValueError(f"the verdict reads {sorted(missing)} that no rule sets")


check_order((*RULES, *KIND_RULES), VERDICT_READS)


def _run(rules: tuple[Rule, ...], f: Facts) -> list[Evidence]:
    out: list[Evidence] = []
    for rule in rules:
        before = set(f.tags)
        out.extend(rule.fn(f))
        stray = f.tags - before - rule.sets
        if stray:  # a rule may only set what it declares: the order check relies on it
            raise AssertionError(f"{rule.name} set undeclared tags {sorted(stray)}")
    return out


# -- verdict -------------------------------------------------------------------

def _mid_response_close(f: Facts) -> bool:
    """The remote server side went silent mid-response and then closed on a timer:
    abortively at once (FIN and RST together), or gracefully with the client
    answering that close at once.

    A reverse proxy waiting on a silent upstream closes the client's connection
    (nginx ``proxy_read_timeout``, haproxy ``timeout server``); the client, cut off
    mid-response, closes at once.  In a keep-alive race the server instead closes
    an idle connection after a *completed* response and resets the client's next
    request: the client sends data, not a FIN, so that shape never leans here.
    """
    c, t = f.ctx, f.cfg.scoring.thresholds
    if not (f.side == "server" and f.vantage != f.side and c.s_close_mid_response
            and c.s_close_gap_ns >= 0 and f.tags & {Tag.AFTER_FIN, Tag.AFTER_ALERT}):
        return False
    close_ts_ns = min(x for x in (c.s_fin_ts_ns, c.s_tls_alert_ts_ns) if x >= 0)
    if c.s_close_gap_ns < t.mid_response_min_gap_s * NS:
        # Closing right after its data is how a server ends a response, abortively
        # (FIN and RST at once) or not: only a close on a timer leans.
        return False
    if not f.triggered:
        # After the silence, FIN and RST in one go with nothing from the client in
        # between: SO_LINGER 0 set on purpose when a timer fires, a proxy's habit
        # (haproxy ``option nolinger``, ``timeout server``).  A keep-alive race never
        # looks like this: its RST answers the client's next request.
        return c.ts_ns - close_ts_ns <= t.abortive_close_s * NS
    react_s = max(2 * (f.rtt_s or 0.0), t.close_reaction_s)
    # The RST answers the client's reaction to the close (its alert or FIN, sent at
    # once), not a request sent later on a connection it still thought open.
    return c.r_fin_ts_ns >= close_ts_ns or c.r_last_non_rst_ts_ns - close_ts_ns <= react_s * NS


def _never_answered(f: Facts) -> bool:
    """The far server side accepted the connection, never sent a byte although the
    client sent its request, and closed (FIN, or the RST alone) after a silence.

    A server answers a request, if only with an error; a full proxy whose backend
    never answers (connect timeout, haproxy ``timeout connect``, nginx
    ``proxy_connect_timeout`` in stream mode) accepts, waits, and gives up.
    """
    c = f.ctx
    min_ns = f.cfg.scoring.thresholds.mid_response_min_gap_s * NS
    if not (f.side == "server" and f.vantage != f.side and c.s_last_payload_ts_ns < 0
            and c.r_last_payload_ts_ns >= 0):
        return False
    if c.s_fin_ts_ns >= 0:
        return c.s_close_gap_ns >= min_ns
    # No FIN: the abortive close (haproxy ``option nolinger``) is the RST itself, on
    # its own after the silence.  Only from a capture known to sit at the client: on
    # a link both ends share undecremented (a proxy and its backend), the RST may be
    # the backend's own, giving up on a request it queued (haproxy-maxconn sample).
    return (f.vantage == Vantage.CLIENT and not f.triggered and f.idle_gap_s is not None
            and f.idle_gap_s * NS >= min_ns)


def _far_close_then_reset(f: Facts) -> bool:
    """The far server side closed (FIN or TLS alert) promptly after its own data, then
    reset: abortively at once, or answering the client's reaction to the close.

    A server ending a response with ``Connection: close`` does this, and so does a
    full proxy whose backend reset or failed mid-response (nginx, haproxy in front
    of an aborting backend).  Under TLS the wire shows no HTTP framing to tell a
    finished response from a cut one, so this only lowers confidence and names the
    proxy first among the alternatives.  A keep-alive race (the server's RST answers
    a *new* request sent later) and a plain abort (RST without a close) never match.
    """
    c, t = f.ctx, f.cfg.scoring.thresholds
    if not (f.side == "server" and f.vantage != f.side and c.s_close_mid_response
            and c.s_close_gap_ns >= 0 and f.tags & {Tag.AFTER_FIN, Tag.AFTER_ALERT}):
        return False
    close_ts_ns = min(x for x in (c.s_fin_ts_ns, c.s_tls_alert_ts_ns) if x >= 0)
    if not f.triggered:
        return c.ts_ns - close_ts_ns <= t.abortive_close_s * NS
    react_s = max(2 * (f.rtt_s or 0.0), t.close_reaction_s)
    return c.r_fin_ts_ns >= close_ts_ns or c.r_last_non_rst_ts_ns - close_ts_ns <= react_s * NS


def _same_link_peer(f: Facts) -> bool:
    """A client RST from a peer on the server's own link (0 hops) after a silence.

    A load balancer's timeout toward its backend looks like this, and so does a
    client on the server's LAN hitting its read timeout: the wire cannot tell them
    apart, so this only lowers confidence and names the balancer first among the
    alternatives; it never changes the origin.
    """
    t = f.cfg.scoring.thresholds
    if not (f.side == "client" and f.ttl_mode is not None and hops(f.ttl_mode) == 0
            and not f.triggered and f.idle_gap_s is not None
            and f.idle_gap_s >= t.same_link_min_gap_s):
        return False
    if f.vantage == Vantage.SERVER:
        return True
    # Both ends undecremented: the capture cannot tell which host it ran on, but the
    # two peers share one link, as a load balancer and its backend do.
    peer = ttl_mode_spread(dict(f.ctx.flow.dirs[1 - f.ctx.direction].ttl_counts))
    return f.vantage == Vantage.MIDDLE and peer is not None and hops(peer[0]) == 0


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-max(min(x, 30.0), -30.0)))


def _kind(f: Facts, kind_ev: list[Evidence]) -> tuple[Origin, float]:
    """(kind of box, how sure) from the kind evidence's summed log-odds."""
    k, caps = f.cfg.scoring.kind, f.cfg.scoring.caps
    score = k.prior + sum(e.weight for e in kind_ev)
    p_lb = _sigmoid(score)
    kind = Origin.LOAD_BALANCER if p_lb > 0.5 else Origin.FIREWALL
    sure = min(max(p_lb, 1 - p_lb), caps.kind_max)
    if not any(e.weight for e in kind_ev):
        sure = min(sure, caps.kind_no_evidence)
    return kind, sure


def classify(ctx: ResetContext, cfg: TrackerConfig) -> ResetRecord:
    """Turn a settled :class:`ResetContext` into its :class:`ResetRecord`."""
    f = build_facts(ctx, cfg)
    caps, prior = cfg.scoring.caps, cfg.scoring.weights.prior_endpoint
    raw = _run(RULES, f)
    score = math.log(prior / (1 - prior)) + sum(e.weight for e in raw)
    p_end = _sigmoid(score)
    endpoint = p_end >= 0.5
    side = f.side
    alternatives: list[tuple[str, str]] = []
    best_fit = next((m for m in f.matches if m.fits), None)
    proxy_match = next((m for m in f.matches if m.entry.full_proxy), None)
    origin: Origin
    kind_ev: list[Evidence] = []
    if endpoint:
        origin = side.origin
        sender = side.sender
        conf = p_end
        local = f.vantage == side
        if not local:
            # A full proxy (L7 LB, reverse proxy, NAT-ing forward proxy) terminates
            # TCP; from the far side its stack *is* the endpoint.  The wire cannot
            # separate the two, so never claim high certainty.
            conf = min(conf, caps.far_endpoint)
            why = ("a full proxy terminates TCP, so its stack looks like the "
                   f"{side} from here")
            if proxy_match is not None:
                conf = min(conf, caps.far_endpoint_proxy_match)
                why = f"gap matches {proxy_match.label()}; {why}"
            alternatives.append((Origin.LOAD_BALANCER, why))
        else:
            conf = min(conf, caps.local_endpoint)
        # Leans toward a proxy/LB in front of the endpoint: (tag, why the endpoint
        # itself is still the first alternative).
        lean: tuple[Tag, str] | None = None
        close_match = proxy_close_match(f)
        if close_match is not None:
            # The endpoint closed (FIN / TLS alert) after exactly a common full-proxy
            # timeout of silence: most likely a proxy/LB in front of the server.
            lean = (Tag.PROXY_CLOSE, f"the {side} itself may use a "
                    f"{close_match.entry.timeout_s:g} s timeout")
        elif _mid_response_close(f):
            gap_c = f.ctx.s_close_gap_ns / NS
            lean = (Tag.PROXY_CLOSE, f"the server application itself may close a response "
                    f"that stays silent {gap_c:.1f} s")
        elif _never_answered(f):
            lean = (Tag.PROXY_NO_ANSWER, "a server application that hangs on a request and "
                    "then closes looks the same")
        if lean is not None:
            origin = Origin.LOAD_BALANCER
            conf = min(conf, caps.proxy_lean)
            alternatives.insert(0, (side.origin, lean[1]))
            f.tags.add(lean[0])
        elif _far_close_then_reset(f):
            f.tags.add(Tag.FAR_CLOSE)
            conf = min(conf, caps.far_close_then_reset)
            alternatives.insert(0, (Origin.LOAD_BALANCER, "a proxy whose backend reset or "
                                    "failed mid-response closes the client's connection the "
                                    "same way"))
        elif _same_link_peer(f):
            f.tags.add(Tag.SAME_LINK_PEER)
            conf = min(conf, caps.proxy_lean)
            alternatives.insert(0, (Origin.LOAD_BALANCER, "a load balancer or reverse proxy's "
                                    "timeout toward this server looks the same from here"))
        if best_fit is not None:
            conf = min(conf, caps.endpoint_catalog_fit)
            alt = category_origin(best_fit.entry.category) or Origin.FIREWALL
            alternatives.append((alt, f"gap matches {best_fit.label()}, which resets"))
        if Tag.UNANSWERED in f.tags:
            alternatives.append((Origin.FIREWALL, "a device silently dropped the flow; the "
                                 "endpoint gave up after unanswered retransmissions"))
    else:
        kind_ev = _run(KIND_RULES, f)
        origin, sure = _kind(f, kind_ev)
        sender = Sender.MIDDLEBOX
        conf = (1 - p_end) * sure
        other = next(o for o in (Origin.LOAD_BALANCER, Origin.FIREWALL) if o != origin)
        unsure = sure < 0.75
        if unsure:
            f.tags.add(Tag.KIND_UNSURE)
        alternatives.append((other, "the wire barely separates the two kinds of box here"
                             if unsure else "the evidence leans the other way, not all of it"))
        if not f.tags & {Tag.RACE, Tag.RECYCLED, Tag.TTL_MISMATCH}:
            # Without a baseline the endpoint itself is the likelier other answer.
            at = 0 if Tag.NO_BASELINE in f.tags else len(alternatives)
            alternatives.insert(at, (side.origin, "the endpoint stack could produce these "
                                     "fields" if at else "no packets from the claimed sender "
                                     "to compare TTL/IP ID with"))
    if Tag.NO_BASELINE in f.tags:
        host = Tag.HOST_BASELINE in f.tags
        # A lone RST (nothing of its flow at all) may belong to a connection older than
        # the capture: its address's other flows lift it only to the no-baseline cap.
        conf = min(conf, caps.host_baseline if host and not f.lone
                   else caps.no_baseline if host or not f.lone else caps.lone)
        if endpoint:
            # A firewall's REJECT is the usual other sender of a RST nobody can compare.
            alternatives.insert(0, (Origin.FIREWALL, "a firewall's REJECT at the sender's "
                                    "distance looks alike (only its address's other "
                                    "connections to compare with)" if Tag.HOST_BASELINE in f.tags
                                    else "no packets from the claimed sender to compare "
                                    "TTL/IP ID with (a firewall's REJECT looks alike)"))
    if endpoint:
        alternatives = [a for a in alternatives if a[0] != origin]
    if Tag.TTL_MULTIMODAL in f.tags:
        conf = min(conf, caps.ttl_multimodal)
    kind_sign = 1.0 if origin == Origin.LOAD_BALANCER else -1.0
    evidence = tuple(
        [e if endpoint else Evidence(e.name, e.value, e.expected, -e.weight or 0.0)
         for e in raw]
        + [Evidence(e.name, e.value, e.expected, kind_sign * e.weight or 0.0) for e in kind_ev])
    cause = cause_text(f, origin, sender, best_fit)
    advice = advice_lines(f, origin, sender, best_fit)
    flow = ctx.flow
    from_orig = ctx.direction == 0
    src_raw, dst_raw = ((flow.orig_raw, flow.resp_raw) if from_orig
                        else (flow.resp_raw, flow.orig_raw))
    sport, dport = (flow.orig_p, flow.resp_p) if from_orig else (flow.resp_p, flow.orig_p)
    # Each side's last non-RST packet, for the per-side idle gaps.
    orig_last_ts_ns = ctx.s_last_non_rst_ts_ns if from_orig else ctx.r_last_non_rst_ts_ns
    resp_last_ts_ns = ctx.r_last_non_rst_ts_ns if from_orig else ctx.s_last_non_rst_ts_ns
    last_pl = max(ctx.s_last_payload_ts_ns, ctx.r_last_payload_ts_ns)
    sender_hops = (hops(f.ttl_mode) if endpoint and f.ttl_mode is not None
                   else hops(ctx.ttl))
    silence = f.trigger_gap_s if f.triggered else f.idle_gap_s
    silence_end = ctx.r_last_non_rst_ts_ns if f.triggered else ctx.ts_ns
    cand_matches = f.matches
    if f.tags & {Tag.AFTER_FIN, Tag.AFTER_ALERT} and ctx.s_close_gap_ns >= 0:
        # The gap was measured at the sender's first closing packet (alert or FIN).
        silence_end = min(t for t in (ctx.s_fin_ts_ns, ctx.s_tls_alert_ts_ns) if t >= 0)
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
    # Where the RST was made is only news when a box made it; an endpoint's RST is
    # made at the endpoint.
    pos = f.position if sender == Sender.MIDDLEBOX else None
    return name_reset(f, ResetRecord(
        frame=ctx.frame, file_id=ctx.file_id, ts_ns=ctx.ts_ns, ts=ctx.ts_ns / NS,
        flow_id=flow.flow_id, src=addr_text(src_raw, flow.ip_v), sport=sport,
        dst=addr_text(dst_raw, flow.ip_v), dport=dport,
        direction="orig" if from_orig else "resp", flags=flags_text(ctx.flags),
        origin=origin, sender=sender,
        sender_hops=sender_hops, confidence=round(conf, 3), cause=cause,
        evidence=evidence, alternatives=tuple(dict(reversed(alternatives)).items())[::-1],
        advice=advice, idle_gap_s=_r(f.idle_gap_s),
        idle_gap_orig_s=_r((ctx.ts_ns - orig_last_ts_ns) / NS if orig_last_ts_ns >= 0
                           else None),
        idle_gap_resp_s=_r((ctx.ts_ns - resp_last_ts_ns) / NS if resp_last_ts_ns >= 0
                           else None),
        idle_since_payload_s=_r((ctx.ts_ns - last_pl) / NS if last_pl >= 0 else None),
        idle_before_trigger_s=_r(f.trigger_gap_s) if f.triggered else None,
        silence_s=_r(silence),
        silence_from_ns=(silence_end - int(round(silence * NS))
                         if silence is not None and silence_end >= 0 else None),
        triggered=f.triggered, trigger_frame=ctx.r_last_non_rst_frame if f.triggered else None,
        latency_s=_r(f.latency_s) if f.triggered else None, rtt_s=_r(f.rtt_s),
        ttl=ctx.ttl, expected_ttl=f.ttl_mode, hop_delta=f.hop_delta,
        emitter_hops_from_client=pos.from_client if pos else None,
        emitter_hops_to_server=pos.to_server if pos else None,
        path_position=pos.text if pos else None, ip_id=ctx.ip_id,
        timeout_candidates=cands, conn_state=ctx.conn_state,
        seq_status=f.seq_status,  # type: ignore[arg-type]
        tags=tuple(sorted(str(t) for t in f.tags)),
    ))


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


__all__ = ["KIND_RULES", "RULES", "EvidenceDoc", "Rule", "check_order", "classify"]
