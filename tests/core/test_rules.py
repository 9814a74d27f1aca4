"""Each scoring rule on its own, through the Facts builder (no packets, no tracker).

End-to-end behaviour lives in test_classify.py; here every rule gets the inputs it
reads and nothing else, including a negative case for the traffic it must not catch.
"""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from rstscope.core import classify as C
from rstscope.core.facts import emitter_position
from rstscope.core.scoring import Scoring, table_rows
from rstscope.core.tags import Tag
from rstscope.schema import TH_ACK, TH_RST, TH_SYN
from tests.core.factsbuilder import CFG, NS, T0, make_facts, obs, prior

W = CFG.scoring.weights
K = CFG.scoring.kind


def names(evs):
    return {e.name: e.weight for e in evs}


# -- the table ---------------------------------------------------------------------

def test_every_number_in_the_table_has_a_reason():
    rows = table_rows()
    assert len(rows) >= 50
    assert all(why.strip() for _, _, _, why in rows), [r[1] for r in rows if not r[3]]


def test_the_table_rides_on_the_config_and_changes_the_verdict():
    strong = replace(CFG, scoring=replace(CFG.scoring, weights=replace(
        W, ttl_consistent=-9.0)))
    f = make_facts(strong)
    assert names(C.rule_ttl(f))["ttl"] == -9.0


def test_rule_order_is_checked():
    C.check_order((*C.RULES, *C.KIND_RULES), C.VERDICT_READS)
    storm = next(r for r in C.RULES if r.name == "rule_storm")
    seq = next(r for r in C.RULES if r.name == "rule_seq")
    swapped = tuple(r for r in C.RULES if r is not seq)
    with pytest.raises(ValueError, match="rule_storm reads"):
        C.check_order(swapped)
    assert Tag.SEQ_OOW in storm.reads


def test_a_rule_setting_an_undeclared_tag_fails_loudly():
    def sneaky(f):
        f.tags.add(Tag.RACE)
        return []

    rule = C.Rule(sneaky, frozenset(), frozenset(), ())
    with pytest.raises(AssertionError, match="undeclared"):
        C._run((rule,), make_facts())


def test_every_tag_is_set_by_some_stage():
    set_somewhere = set(C.VERDICT_SETS).union(*(r.sets for r in (*C.RULES, *C.KIND_RULES)))
    assert set(Tag) == set_somewhere


def test_every_evidence_name_is_documented_once():
    docs = [e.name for r in (*C.RULES, *C.KIND_RULES) for e in r.evidence]
    assert len(docs) == len(set(docs))
    assert all(e.measures and e.reads_as for r in (*C.RULES, *C.KIND_RULES) for e in r.evidence)


# -- rule_ttl ----------------------------------------------------------------------

def test_ttl_consistent_supports_the_endpoint():
    f = make_facts()
    assert names(C.rule_ttl(f)) == {"ttl": W.ttl_consistent}
    assert not f.tags


def test_ttl_local_host_is_strong():
    f = make_facts(direction=0)
    assert names(C.rule_ttl(f)) == {"ttl": W.ttl_local}


def test_ttl_one_hop_off_a_stable_baseline():
    f = make_facts(ttl=53)
    assert names(C.rule_ttl(f)) == {"ttl_one_hop": W.ttl_one_hop}
    assert Tag.TTL_MISMATCH in f.tags


def test_ttl_one_hop_needs_enough_baseline_packets():
    f = make_facts(ttl=53, s_ttl_counts={52: 2})
    assert "ttl_one_hop" not in names(C.rule_ttl(f))


def test_ttl_initial_class_differs():
    f = make_facts(ttl=250, s_syn_ttl=52)
    assert names(C.rule_ttl(f)) == {"ttl_initial_class": W.ttl_initial_class}


def test_ttl_two_modes_matching_the_syn():
    f = make_facts(ttl=52, s_ttl_counts={52: 3, 57: 8}, s_syn_ttl=52)
    assert names(C.rule_ttl(f)) == {"ttl_matches_syn": W.ttl_matches_syn}
    assert Tag.TTL_MULTIMODAL in f.tags


def test_no_baseline_with_ttl_255():
    f = make_facts(ttl=255, s_ttl_counts={}, s_pkts=0)
    assert names(C.rule_ttl(f)) == {"ttl_baseline": 0.0, "initial_ttl_255": W.initial_ttl_255}
    assert Tag.NO_BASELINE in f.tags


def test_no_baseline_with_a_host_ttl_says_nothing_of_class():
    f = make_facts(ttl=60, s_ttl_counts={}, s_pkts=0)
    assert names(C.rule_ttl(f)) == {"ttl_baseline": 0.0}


# -- rule_ip_id --------------------------------------------------------------------

def test_ip_id_continuing_the_counter():
    f = make_facts(ip_id=1012)
    assert names(C.rule_ip_id(f)) == {"ip_id_step": W.ip_id_continuous}
    assert Tag.IPID_CONTINUOUS in f.tags


def test_ip_id_breaking_the_counter():
    f = make_facts(ip_id=40000)
    assert names(C.rule_ip_id(f)) == {"ip_id_step": W.ip_id_break}


def test_ip_id_recycled_from_the_trigger():
    f = make_facts(ip_id=77, win=500)
    assert names(C.rule_ip_id(f)) == {"ip_id_recycled": W.ip_id_recycled,
                                      "window_recycled": W.window_recycled}


def test_ip_id_zero_df_is_context_not_a_verdict():
    f = make_facts(ip_id=0)
    assert names(C.rule_ip_id(f)) == {"ip_id_zero_df": 0.0}
    assert Tag.IPID0_DF in f.tags


def test_ipv6_has_no_ip_id_evidence():
    assert C.rule_ip_id(make_facts(ip_id=-1)) == []


# -- rule_latency ------------------------------------------------------------------

def test_rst_faster_than_the_path():
    f = make_facts(ts_ns=T0, r_last_non_rst_ts_ns=T0 - NS // 1000,
                   s_last_non_rst_ts_ns=T0 - NS)  # 1 ms, RTT 40 ms
    assert names(C.rule_latency(f)) == {"latency_vs_rtt": W.too_fast}
    assert Tag.TOO_FAST in f.tags


def test_rst_after_a_full_round_trip():
    f = make_facts(ts_ns=T0, r_last_non_rst_ts_ns=T0 - NS // 25,
                   s_last_non_rst_ts_ns=T0 - NS)  # 40 ms
    assert names(C.rule_latency(f)) == {"latency_vs_rtt": W.latency_ok}


def test_untriggered_rst_has_no_latency():
    assert C.rule_latency(make_facts()) == []  # the sender spoke last


# -- rule_seq ----------------------------------------------------------------------

@pytest.mark.parametrize(("seq", "name", "weight"), [
    (5000, "exact", W.seq_exact), (5100, "in-window", W.seq_in_window),
    (5000 + 10_000_000, "out-of-window", W.seq_out_of_window)])
def test_seq_status(seq, name, weight):
    f = make_facts(seq=seq)
    assert [(e.value, e.weight) for e in C.rule_seq(f)] == [(name, weight)]
    assert (Tag.SEQ_OOW in f.tags) == (name == "out-of-window")


# -- rule_race ---------------------------------------------------------------------

def test_data_after_rst_with_progress_is_a_race():
    later = [obs(T0 + NS // 100, 1, TH_ACK, seq=5000, payload_len=500)]
    f = make_facts(later=later)
    assert names(C.rule_race(f)) == {"data_after_rst": W.race}


def test_in_flight_packet_without_progress_is_not_a_race():
    later = [obs(T0 + NS // 10000, 1, TH_ACK, seq=4900, ack=9000)]
    assert C.rule_race(make_facts(later=later)) == []


# -- rule_storm --------------------------------------------------------------------

def test_burst_with_different_ttls_is_a_storm():
    f = make_facts(prior=[prior(T0 - NS // 100, 1, ttl=47)])
    assert names(C.rule_storm(f)) == {"rst_burst_ttls": W.burst_ttls}


def test_identical_copies_are_duplicates_not_a_storm():
    f = make_facts(prior=[prior(T0 - NS // 1000, 1, seq=5000, ack=9000, ttl=52, ip_id=1011)])
    assert names(C.rule_storm(f)) == {"duplicate_rsts": 0.0}
    assert Tag.STORM not in f.tags


# -- rule_bidirectional --------------------------------------------------------------

def test_rst_toward_both_ends():
    later = [obs(T0 + NS // 1000, 0, TH_RST | TH_ACK, ttl=61)]
    f = make_facts(later=later)
    assert names(C.rule_bidirectional(f)) == {"rst_both_directions": W.bidirectional}


def test_one_sided_rst_is_not_bidirectional():
    assert C.rule_bidirectional(make_facts()) == []


# -- rule_context --------------------------------------------------------------------

def test_after_own_fin_and_alert():
    f = make_facts(s_fin_ts_ns=T0 - NS // 10, s_tls_alert_ts_ns=T0 - NS // 10)
    n = names(C.rule_context(f))
    assert n["after_own_fin"] == W.after_own_fin and n["after_tls_alert"] == W.after_tls_alert


def test_rst_answering_a_syn_is_refused():
    f = make_facts(s_pkts=0, s_ttl_counts={}, r_last_non_rst_flags=TH_SYN,
                   r_last_non_rst_payload_len=0, r_last_non_rst_ts_ns=T0 - NS // 1000,
                   s_last_non_rst_ts_ns=-1, r_pkts=1)
    assert names(C.rule_context(f))["answers_syn"] == W.answers_syn
    assert Tag.REFUSED in f.tags


def test_server_rst_right_after_a_client_hello_is_sni():
    f = make_facts(client_hello_ts_ns=T0 - NS // 100, s_last_payload_ts_ns=T0 - NS)
    assert names(C.rule_context(f))["after_client_hello"] == W.after_client_hello


def test_server_rst_after_its_server_hello_is_not_sni():
    f = make_facts(client_hello_ts_ns=T0 - NS // 100, server_hello_ts_ns=T0 - NS // 200,
                   s_last_payload_ts_ns=T0 - NS)
    assert "after_client_hello" not in names(C.rule_context(f))


def test_client_rst_right_after_its_client_hello_is_sni():
    # A server capture: the injector's RST toward the server claims the client, whose
    # last data is the ClientHello itself.
    f = make_facts(direction=0, client_hello_ts_ns=T0 - NS // 100,
                   s_last_payload_ts_ns=T0 - NS // 100)
    assert names(C.rule_context(f))["after_client_hello"] == W.after_client_hello
    assert Tag.AFTER_CLIENTHELLO in f.tags


def test_client_rst_after_more_client_data_is_not_sni():
    # Negative: the client sent more data after its ClientHello (a client abandoning
    # the handshake it was driving, not a box answering the SNI).
    f = make_facts(direction=0, client_hello_ts_ns=T0 - NS // 100,
                   s_last_payload_ts_ns=T0 - NS // 200)
    assert "after_client_hello" not in names(C.rule_context(f))


def test_unanswered_retransmissions_are_a_silent_drop():
    f = make_facts(s_since_peer=6, s_rxmit=5)
    assert "unanswered_retransmissions" in names(C.rule_context(f))
    assert Tag.UNANSWERED in f.tags


# -- rule_timeout ------------------------------------------------------------------

def test_lazy_expiry_at_a_catalog_rst_timeout():
    # 350 s of silence, then the client's packet is answered by a RST: AWS NLB.
    f = make_facts(r_last_non_rst_gap_ns=350 * NS + NS // 2, r_last_non_rst_ts_ns=T0 - NS // 1000,
                   s_last_non_rst_ts_ns=T0 - 351 * NS)
    assert names(C.rule_timeout(f)) == {"idle_matches_rst_timeout": W.timeout_rst_device}


def test_short_silence_is_never_matched():
    assert C.rule_timeout(make_facts()) == []


# -- kind rules --------------------------------------------------------------------

def test_catalog_rows_of_both_kinds_cancel():
    # 350 s: AWS NLB (load balancer) and AWS NAT gateway (nat) both reset the next packet.
    f = make_facts(r_last_non_rst_gap_ns=350 * NS, r_last_non_rst_ts_ns=T0 - NS // 1000,
                   s_last_non_rst_ts_ns=T0 - 351 * NS)
    ev = C.kind_catalog(f)
    assert [e.weight for e in ev] == [0.0]
    assert Tag.CATALOG_AMBIGUOUS in f.tags


def test_kind_injection_means_firewall():
    f = make_facts()
    f.tags.add(Tag.RACE)
    assert names(C.kind_signs(f)) == {"kind_injection": K.injection}


def test_kind_out_of_window_box_rst_is_injection():
    # A box that kept state answers with the trigger's acknowledgement number; one out
    # of the window guessed it.
    f = make_facts()
    f.tags.add(Tag.SEQ_OOW)
    assert names(C.kind_signs(f)) == {"kind_injection": K.injection}


def test_kind_in_window_box_rst_is_no_injection():
    f = make_facts()
    assert "kind_injection" not in names(C.kind_signs(f))


def test_kind_reject_means_firewall():
    f = make_facts()
    f.tags.add(Tag.REFUSED)
    assert names(C.kind_signs(f)) == {"kind_reject": K.reject}


def test_kind_position_near_the_server():
    # Client capture, server 3 routers away; a RST with 2 routers behind it was
    # made by the last box in front of the server.
    f = make_facts(ttl=62, s_ttl_counts={61: 10}, s_syn_ttl=61)
    assert f.position.to_server == 1 and f.position.from_client == 3
    assert names(C.kind_position(f)) == {"kind_position": K.near_server}
    assert Tag.NEAR_SERVER in f.tags


def test_kind_position_at_the_client_edge():
    f = make_facts(ttl=255, s_ttl_counts={61: 10}, s_syn_ttl=61)
    assert f.position.from_client == 1
    assert names(C.kind_position(f)) == {"kind_position": K.client_edge}


def test_kind_position_mid_path():
    f = make_facts(ttl=254, s_ttl_counts={60: 10}, s_syn_ttl=60)
    assert (f.position.from_client, f.position.to_server) == (2, 3)
    assert names(C.kind_position(f)) == {"kind_position": K.mid_path}


def test_kind_position_mid_path_nearer_the_server():
    # Server 12 routers from the client capture; a RST with 8 routers behind it was made
    # 9 hops from the client and 4 before the server: the server's network.
    f = make_facts(ttl=56)
    assert (f.position.from_client, f.position.to_server) == (9, 4)
    assert names(C.kind_position(f)) == {"kind_position": K.server_side}
    assert Tag.MID_PATH in f.tags


def test_kind_position_exact_midpoint_counts_as_transit():
    f = make_facts(ttl=58, s_ttl_counts={51: 10}, s_syn_ttl=51)
    assert (f.position.from_client, f.position.to_server) == (7, 7)
    assert names(C.kind_position(f)) == {"kind_position": K.mid_path}


def test_kind_ttl_class():
    assert names(C.kind_ttl_class(make_facts(ttl=250))) == {"kind_initial_ttl": K.initial_ttl_255}
    assert names(C.kind_ttl_class(make_facts(ttl=60))) == {"kind_initial_ttl": K.initial_ttl_host}


# -- position ----------------------------------------------------------------------

@pytest.mark.parametrize(("ttl", "direction", "ch", "sh", "want"), [
    (255, 1, 0, 3, (1, 3)),     # client capture, box next to the client
    (62, 1, 0, 3, (3, 1)),      # client capture, box in front of the server
    (61, 1, 0, 3, (4, 0)),      # the server's own distance
    (253, 0, 3, 0, (1, 3)),     # server capture, client-edge box resetting toward the server
    (64, 0, 3, 0, (3, 1)),      # server capture, the box on the server's link
    (60, 1, 2, 2, (7, 0)),      # mid capture: 4 routers beyond it is past the server
])
def test_emitter_position(ttl, direction, ch, sh, want):
    p = emitter_position(ttl, direction, ch, sh)
    assert (p.from_client, p.to_server) == want


def test_position_text():
    assert emitter_position(255, 1, 0, 3).text == "made 1 hop from the client, 3 hops before the server"
    assert emitter_position(60, 1, None, None).text == "4 routers beyond the capture point"


def test_ipv6_hop_limit_places_the_box_like_a_ttl():
    f4 = make_facts(ttl=62, s_ttl_counts={61: 10}, s_syn_ttl=61)
    f6 = make_facts(ttl=62, s_ttl_counts={61: 10}, s_syn_ttl=61, ip_id=-1)
    assert f4.position == f6.position


def test_scoring_groups_are_frozen():
    s = Scoring()
    for grp in fields(s):
        with pytest.raises(AttributeError):
            setattr(getattr(s, grp.name), fields(getattr(s, grp.name))[0].name, 1.0)



def test_kind_reject_of_a_connection_that_was_not_idle():
    # Triggered 1 ms after the client's data, 50 ms of silence before it: a policy.
    f = make_facts(ts_ns=T0, r_last_non_rst_ts_ns=T0 - NS // 1000, s_last_non_rst_ts_ns=T0 - NS,
                   r_last_non_rst_gap_ns=NS // 20)
    assert names(C.kind_signs(f)) == {"kind_reject": K.reject}


def test_kind_no_reject_after_an_idle_expiry():
    # Negative: the same RST after 5 s of silence is expired state, not a policy.
    f = make_facts(ts_ns=T0, r_last_non_rst_ts_ns=T0 - NS // 1000, s_last_non_rst_ts_ns=T0 - 6 * NS,
                   r_last_non_rst_gap_ns=5 * NS)
    assert "kind_reject" not in names(C.kind_signs(f))
