"""Every number the classifier weighs, in one table: weights, thresholds, confidence caps.

Each field carries a one-line reason in its metadata (``why``), so the table is
documentation as well as configuration; :func:`table_rows` renders it and a test
checks that no number comes without its reason.  The table rides on
:class:`~rstscope.core.config.TrackerConfig` (``cfg.scoring``), so a calibration
run can try other values without touching code.

Weights are log-odds.  Endpoint weights (:class:`Weights`) argue for "the claimed
endpoint sent this RST" (> 0) or "a box on the path did" (< 0).  Kind weights
(:class:`KindWeights`) argue, once a box is known to have sent it, for a load
balancer (> 0) or a firewall (< 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def knob(value: float, why: str) -> Any:
    """A table entry: its default and the one-line reason for it."""
    return field(default=value, metadata={"why": why})


@dataclass(frozen=True, slots=True)
class Weights:
    """Log-odds for the endpoint (> 0) against a box on the path (< 0)."""

    prior_endpoint: float = knob(0.7, "most RSTs in real traffic are benign endpoint aborts "
                                      "(a probability, not log-odds)")
    ttl_local: float = knob(2.5, "the RST left the capture host with the sender's own "
                                 "undecremented TTL: no box could have sent it")
    ttl_consistent: float = knob(1.5, "same TTL as the sender's other packets; a box at the "
                                      "same distance would need the same initial TTL")
    ttl_one_hop: float = knob(-2.0, "one stable TTL from the sender and the RST one hop off: a "
                                    "box next to the endpoint")
    ttl_matches_syn: float = knob(1.0, "two TTLs from the sender; the RST matches its SYN's")
    ttl_initial_class: float = knob(-3.0, "a different initial TTL is a different stack")
    ttl_off: float = knob(-2.0, "TTL off the sender's baseline: another distance")
    ttl_off_per_hop: float = knob(-0.1, "the further off, the surer (up to 10 hops)")
    initial_ttl_255: float = knob(-1.5, "no baseline, and hosts start at 64/128 while "
                                        "routers and appliances start at 255")
    ttl_host_consistent: float = knob(1.0, "no baseline in this flow, but the sender's "
                                           "address sent its other connections from the "
                                           "same distance (a weaker baseline: another port "
                                           "may take another path)")
    ttl_host_off: float = knob(-2.5, "the sender's address sent its other connections from "
                                     "another distance or stack: a box answered for it")
    ttl_capture_host: float = knob(2.0, "no baseline, but the RST is undecremented while the "
                                        "peer's packets crossed routers: the capture host "
                                        "answered for itself")
    ip_id_recycled: float = knob(-4.5, "the trigger's own IP ID: a 1-in-65536 coincidence "
                                       "unless a box rewrote the trigger into the RST")
    window_recycled: float = knob(-1.0, "the trigger's window survived the rewrite too")
    ip_id_zero_consistent: float = knob(0.5, "IP ID 0 + DF from a sender that always used 0")
    ip_id_continuous: float = knob(2.0, "the RST continues the sender's per-socket counter")
    ip_id_break: float = knob(-1.0, "an incrementing counter broken by the RST")
    ip_id_nonzero: float = knob(-0.7, "a sender that always used ID 0 sent a nonzero ID")
    too_fast: float = knob(-2.0, "faster than the path to the sender allows")
    latency_ok: float = knob(0.5, "delay consistent with the path to the sender")
    seq_exact: float = knob(0.5, "exactly the sender's next sequence number")
    seq_out_of_window: float = knob(-1.5, "outside the window: blind or stale injection")
    seq_in_window: float = knob(-0.3, "in the window but not at SND.NXT")
    race: float = knob(-3.0, "the sender kept talking after its own RST (Weaver's race)")
    burst_ttls: float = knob(-2.0, "a burst of RSTs with different TTLs: an injector")
    burst_seq: float = knob(-1.0, "a burst with differing out-of-window sequence numbers")
    burst_seq_ahead: float = knob(-2.0, "a burst running ahead of SND.NXT (RST_SEQ_CHANGE)")
    bidirectional: float = knob(-2.5, "RSTs to both ends at once: only a box in the middle "
                                      "can do that")
    after_own_fin: float = knob(1.0, "an endpoint closing, then aborting")
    after_tls_alert: float = knob(0.8, "an endpoint's TLS alert, then its abort")
    after_client_hello: float = knob(-1.0, "a server RST right after the ClientHello: SNI "
                                           "filtering")
    answers_syn: float = knob(0.5, "a closed port answers a SYN with a RST")
    no_socket: float = knob(0.3, "a socket-less kernel answering data")
    timeout_rst_device: float = knob(-1.0, "the silence matches a catalog device that sends "
                                           "this kind of RST on expiry")


@dataclass(frozen=True, slots=True)
class KindWeights:
    """Log-odds for a load balancer (> 0) against a firewall (< 0), given a box sent it."""

    prior: float = knob(0.0, "no prior preference between the two kinds")
    catalog_fit: float = knob(1.5, "the silence fits a catalog row of that category that "
                                   "sends this kind of RST (rows of both kinds cancel out)")
    injection: float = knob(-3.0, "races, bursts, SNI triggers and recycled triggers are "
                                  "what DPI/IPS and censorship boxes do")
    bidirectional: float = knob(0.5, "RSTs to both ends at the timeout: reset-on-idle load "
                                     "balancers (injectors are caught by the signs above)")
    reject: float = knob(-1.5, "a RST answering a SYN from a box: a firewall's REJECT")
    near_server: float = knob(0.8, "a box right in front of the server (1 link): where "
                                   "load balancers sit")
    client_edge: float = knob(-0.8, "a box at the client's edge (1 link from it): an edge "
                                    "firewall or NAT")
    mid_path: float = knob(-0.3, "a box mid-path, nearer the client than the server: "
                                 "transit or enterprise filtering more often than balancing")
    server_side: float = knob(0.8, "a box mid-path but nearer the server than the client: "
                                   "the server's network, where balancers sit (with routers "
                                   "between them and the backends)")
    initial_ttl_255: float = knob(-0.6, "appliances and routers start at 255; several LB "
                                        "appliances do too, so only a lean")
    initial_ttl_host: float = knob(0.2, "a host-stack TTL (64/128): Linux LBs, but also "
                                        "iptables/pfSense firewalls, so barely a lean")
    unanswered: float = knob(-0.5, "the endpoint gave up after a silent drop: NAT/firewall "
                                   "state more often than a balancer's")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Cut-offs the rules compare against."""

    ttl_baseline_min_pkts: float = knob(3, "a TTL baseline of this many packets is stable "
                                           "enough to call a one-hop difference")
    ipid_majority: float = knob(0.6, "share of the sender's IP ID steps that names its "
                                     "behaviour (incrementing / zero)")
    ipid_step_max: float = knob(64, "a per-socket counter advances at most this much "
                                    "between the sender's last packet and its RST")
    too_fast_fraction: float = knob(0.5, "a RST sooner than this share of the RTT to the "
                                         "sender came from a nearer box")
    min_rtt_s: float = knob(0.001, "below this RTT latency says nothing")
    race_default_rtt_s: float = knob(0.05, "RTT assumed for the race window when unknown")
    race_min_s: float = knob(0.002, "packets this soon after a RST may be in flight")
    bidir_window_s: float = knob(0.2, "RTT assumed for 'both directions at once' when "
                                      "unknown")
    client_hello_window_s: float = knob(1.0, "a server RST this soon after a ClientHello "
                                             "answers it")
    timeout_min_gap_s: float = knob(5.0, "silences shorter than this are never matched "
                                         "against idle timeouts")
    lazy_expiry_min_gap_s: float = knob(1.0, "a triggered RST after this much silence is "
                                             "a box whose state expired")
    same_link_min_gap_s: float = knob(1.0, "a same-link peer resetting after this much "
                                           "silence may be a balancer's timeout")
    mid_response_min_gap_s: float = knob(1.0, "a close after this much silence mid-response "
                                              "is a timer, not the application finishing")
    abortive_close_s: float = knob(0.01, "a RST this soon after the sender's own close, with "
                                         "nothing from the peer, is one abortive close")
    close_reaction_s: float = knob(0.05, "a peer packet this soon after the close (or two "
                                         "RTTs) reacts to it; later it is a new request")


@dataclass(frozen=True, slots=True)
class Caps:
    """Upper bounds on confidence where the wire cannot separate two answers."""

    local_endpoint: float = knob(0.95, "even the capture host's own stack may have been "
                                       "driven by a local firewall rule")
    far_endpoint: float = knob(0.75, "a full proxy terminates TCP: from the far side its "
                                     "stack is the endpoint")
    far_endpoint_proxy_match: float = knob(0.55, "and the silence matches a full-proxy "
                                                 "timeout")
    proxy_lean: float = knob(0.55, "a lean toward a proxy in front of the endpoint")
    far_close_then_reset: float = knob(0.55, "the far side closed right after its data, then "
                                             "reset: a server ending a response and a proxy "
                                             "whose backend failed mid-response look alike "
                                             "(no HTTP framing under TLS)")
    endpoint_catalog_fit: float = knob(0.6, "an endpoint verdict whose silence fits a box "
                                            "that resets")
    no_baseline: float = knob(0.5, "no packet from the claimed sender to compare with")
    host_baseline: float = knob(0.75, "no packet of this flow from the claimed sender, only "
                                      "its address's other connections")
    lone: float = knob(0.3, "a lone RST: nothing to compare at all")
    ttl_multimodal: float = knob(0.6, "the sender's packets came with two TTLs")
    kind_max: float = knob(0.9, "the kind of box is never certain from the wire alone")
    kind_no_evidence: float = knob(0.55, "nothing but the prior separated the two kinds")


@dataclass(frozen=True, slots=True)
class Scoring:
    """The classifier's whole table (``TrackerConfig.scoring``)."""

    weights: Weights = field(default_factory=Weights)
    kind: KindWeights = field(default_factory=KindWeights)
    thresholds: Thresholds = field(default_factory=Thresholds)
    caps: Caps = field(default_factory=Caps)


def table_rows(scoring: Scoring | None = None) -> list[tuple[str, str, float, str]]:
    """(group, name, value, reason) for every entry of the table."""
    s = scoring or Scoring()
    out = []
    for grp in fields(s):
        part = getattr(s, grp.name)
        for f in fields(part):
            out.append((grp.name, f.name, float(getattr(part, f.name)), f.metadata.get("why", "")))
    return out


__all__ = ["Caps", "KindWeights", "Scoring", "Thresholds", "Weights", "table_rows"]
