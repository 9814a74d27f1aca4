"""The everyday cause rules (rstscope.core.causes) and stalls (rstscope.core.stalls) on
hand-built conversations: each rule fires on its signature and not on look-alikes."""

from __future__ import annotations

import pytest

from rstscope.api import make_config
from rstscope.core import Tracker
from rstscope.core.causes import CAUSES
from tests.core.fakewire import FakeWire


def run(w: FakeWire) -> Tracker:
    tr = Tracker(make_config())
    tr.feed(w.batch())
    tr.finish()
    return tr


def one_reset(w: FakeWire):
    (r,) = run(w).resets()
    return r


def test_every_verdict_has_a_cause_id_from_the_vocabulary() -> None:
    w = FakeWire().handshake().exchange(2)
    w.wait(0.01)
    w.rst("c")
    assert one_reset(w).cause_id in CAUSES


# -- keep-alive race -------------------------------------------------------------
def keepalive(order: str, idle_s: float = 2.0, late_s: float = 0.3) -> FakeWire:
    w = FakeWire().handshake().exchange(1)
    if order == "fin-first":
        w.wait(idle_s)
        w.fin("s")
        w.wait(0.001)
        w.ack("c")
        w.wait(late_s)
        w.data("c", 120)  # the pooled client's next request
        w.wait(0.0005)
        w.rst("s", with_ack=False, ip_id=0)
    else:
        w.wait(idle_s - late_s)
        w.data("c", 120)
        w.wait(0.001)
        w.ack("s")
        w.wait(late_s)
        w.rst("s")  # close() with the request unread: RST+ACK acknowledging it
    return w


@pytest.mark.parametrize("order", ["fin-first", "request-first"])
def test_keepalive_race_both_orders(order: str) -> None:
    r = one_reset(keepalive(order))
    assert r.cause_id == "keepalive-race"
    assert "Keep-alive race" in r.cause
    assert any("pool" in a for a in r.advice)


def test_keepalive_race_needs_a_reused_connection_after_idle() -> None:
    # The server resets at once after its response, no idle, no new request: an abort.
    w = FakeWire().handshake().exchange(1)
    w.wait(0.01)
    w.rst("s")
    assert one_reset(w).cause_id != "keepalive-race"


def test_proxy_close_answered_by_a_tls_alert_is_not_a_keepalive_race() -> None:
    # A proxy's idle timeout: FIN, the client answers with a TLS alert, the proxy resets.
    w = FakeWire().handshake().exchange(1)
    w.wait(6.0)
    w.fin("s")
    w.wait(0.001)
    w.pkt("c", 0x18, 24, tls_ct=21)
    w.wait(0.0005)
    w.rst("s", with_ack=False)
    assert one_reset(w).cause_id != "keepalive-race"


def test_client_side_reset_after_idle_is_not_a_keepalive_race() -> None:
    w = FakeWire().handshake().exchange(1)
    w.wait(2.0)
    w.data("s", 100)
    w.wait(0.001)
    w.rst("c")
    assert one_reset(w).cause_id != "keepalive-race"


# -- overload at accept -------------------------------------------------------------
def test_accept_overflow_reset_after_handshake_before_server_data() -> None:
    w = FakeWire().handshake()
    w.wait(0.002)
    w.data("c", 517)  # ClientHello
    w.wait(0.0001)
    w.rst("s", with_ack=False, ip_id=0)
    r = one_reset(w)
    assert r.cause_id == "accept-overflow"
    assert "backlog" in " ".join(r.advice)


def test_refused_syn_is_not_accept_overflow() -> None:
    w = FakeWire()
    w.pkt("c", 0x02)
    w.wait(0.0001)
    w.pkt("s", 0x14, ack=w.nxt["c"])
    assert one_reset(w).cause_id in ("refused", "policy-reject")


def test_server_reset_after_it_sent_data_is_not_accept_overflow() -> None:
    w = FakeWire().handshake().exchange(1)
    w.data("c", 100)
    w.wait(0.0001)
    w.rst("s", with_ack=False)
    assert one_reset(w).cause_id != "accept-overflow"


# -- total-time limits ---------------------------------------------------------------
def streaming(total_s: float, step_s: float = 0.5) -> FakeWire:
    w = FakeWire().handshake()
    w.data("c", 150)
    t = 0.0
    while t + step_s <= total_s:
        w.wait(step_s)
        t += step_s
        w.data("s", 60)
        w.wait(0.0005)
        w.ack("c")
    return w


def test_total_timeout_abort_while_data_flows() -> None:
    w = streaming(3.0)
    w.wait(0.0003)
    w.rst("c")
    r = one_reset(w)
    assert r.cause_id == "total-timeout"
    assert "3.0 s" in r.cause


def test_cancel_at_an_odd_time_is_not_a_total_timeout() -> None:
    w = streaming(3.0)
    w.wait(0.4)
    w.rst("c")
    assert one_reset(w).cause_id != "total-timeout"


def test_read_timeout_on_a_silent_server_is_not_a_total_timeout() -> None:
    w = FakeWire().handshake()
    w.data("c", 150)
    w.wait(3.0)
    w.rst("c")
    assert one_reset(w).cause_id != "total-timeout"


# -- stalls and the path-MTU black hole ---------------------------------------------
def blackhole(small: int = 300, big: int = 1448, tries: int = 4) -> FakeWire:
    w = FakeWire().handshake()
    w.data("c", 150)
    w.wait(0.001)
    w.data("s", small)
    w.wait(0.001)
    w.ack("c")
    first = w.nxt["s"]
    w.data("s", big)
    w.data("s", big)
    rto = 0.2
    for _ in range(tries):
        w.wait(rto)
        w.data("s", big, seq=first)
        rto *= 2
    w.stuck_seq = first  # type: ignore[attr-defined]  # what the client still acknowledges
    return w


def test_pmtu_blackhole_stall_when_the_capture_ends_hanging() -> None:
    (s,) = run(blackhole()).stalls()
    assert (s.kind, s.end, s.stalled_side) == ("data-unacked", "open", "resp")
    assert s.cause_id == "pmtu-blackhole" and s.stuck_plens == (1448,)
    assert s.through_max_plen == 300 and s.retransmissions == 4


def test_pmtu_blackhole_names_the_reset_that_ends_it() -> None:
    w = blackhole()
    w.wait(0.5)
    w.rst("c", ack=w.stuck_seq)  # type: ignore[attr-defined]
    tr = run(w)
    (r,) = tr.resets()
    assert r.cause_id == "pmtu-blackhole"
    assert tr.stalls()[0].end == "rst"


def test_small_segments_lost_too_is_not_pmtu() -> None:
    # Loss of every size (a dead path): path-silent, not a black hole.
    w = blackhole(small=300, big=400)
    (s,) = run(w).stalls()
    assert s.cause_id == "path-silent"


def test_fin_after_retransmissions_is_a_stall() -> None:
    w = blackhole(big=500)
    w.wait(1.0)
    w.fin("c", ack=w.stuck_seq)  # type: ignore[attr-defined]
    (s,) = run(w).stalls()
    assert s.end == "fin" and s.retransmissions == 4


def test_healthy_flows_have_no_stalls() -> None:
    w = FakeWire().handshake().exchange(3)
    w.fin("c")
    w.wait(0.001)
    w.fin("s")
    w.wait(0.001)
    w.ack("c")
    assert run(w).stalls() == []


def test_unanswered_syns_name_overload_only_when_the_service_answered_others() -> None:
    served = FakeWire(cport=40001).handshake().exchange(2)
    lost = FakeWire(cport=40002, t0_s=1_700_000_000.2)
    for rto in (1.0, 2.0, 0.0):
        lost.pkt("c", 0x02, seq=1000)
        lost.wait(rto)
    from tests.core.fakewire import merge

    tr = Tracker(make_config())
    tr.feed(merge(served.batch(), lost.batch()))
    tr.finish()
    (s,) = tr.stalls()
    assert (s.kind, s.cause_id) == ("syn-unanswered", "accept-overflow")
    tr2 = run(lost)
    (s2,) = tr2.stalls()
    assert s2.cause_id == "path-silent"  # nothing else reached the service: no overload claim


def test_capture_ending_mid_conversation_is_no_stall() -> None:
    # Both sides spoke; the originator's last message (a keepalive) has no reply
    # when the capture ends: a symmetric protocol, not a hang.
    w = FakeWire(sport=179).handshake().exchange(2)
    w.wait(1.0)
    w.data("c", 19)
    w.wait(0.001)
    w.ack("s")
    w.wait(10.0)
    w.data("c", 19)
    assert run(w).stalls() == []


def test_request_never_answered_then_abandoned_is_a_stall() -> None:
    w = FakeWire().handshake()
    w.data("c", 517)
    w.wait(0.001)
    w.ack("s")
    w.wait(3.0)
    w.fin("c")
    (s,) = run(w).stalls()
    assert (s.kind, s.end, s.cause_id) == ("request-unanswered", "fin", "unanswered")


# -- the black hole seen by the receiver (a client capture) --------------------------
def receiver_blackhole(*, repaired: bool = False, big: int = 1448, lost: int = 3,
                       tail: int = 700, after_s: float = 4.0) -> FakeWire:
    """The client's view: a short answer, then ``lost`` full-size segments that never
    arrive (the capture point is behind the narrow link), then the short last segment,
    which does arrive; the client's ACKs stay at the hole (duplicate ACKs)."""
    w = FakeWire().handshake()
    w.data("c", 150)
    w.wait(0.04)
    w.data("s", 300)
    w.wait(0.001)
    w.ack("c")
    hole = w.nxt["s"]
    w.nxt["s"] = hole + lost * big  # sent by the server, dropped before this point
    w.data("s", tail)
    w.ack("c", ack=hole)  # duplicate ACK (SACK would name the segment past the hole)
    w.wait(0.2)
    w.data("s", tail, seq=hole + lost * big)  # tail-loss probe: the tail again
    w.ack("c", ack=hole)
    if repaired:
        # Ordinary loss: the retransmissions arrive and the client acknowledges all.
        w.wait(0.3)
        end = w.nxt["s"]
        w.nxt["s"] = hole
        for _ in range(lost):
            w.data("s", big)
        w.nxt["s"] = end
        w.ack("c")
    w.wait(after_s)
    w.hole = hole  # type: ignore[attr-defined]
    return w


def test_receiver_sees_the_black_hole_and_names_the_reset() -> None:
    w = receiver_blackhole()
    w.rst("c", ack=w.hole)  # type: ignore[attr-defined]
    (r,) = run(w).resets()
    assert r.cause_id == "pmtu-blackhole"
    assert "4344 bytes never arrived" in r.cause


def test_receiver_black_hole_is_a_stall_when_the_capture_ends_hanging() -> None:
    w = receiver_blackhole()
    w.ack("c", ack=w.hole)  # type: ignore[attr-defined]  # the capture runs on
    (s,) = run(w).stalls()
    assert (s.kind, s.end, s.stalled_side, s.cause_id) == ("data-hole", "open", "resp",
                                                           "pmtu-blackhole")
    assert s.through_max_plen == 700


def test_repaired_loss_is_no_black_hole() -> None:
    w = receiver_blackhole(repaired=True)
    w.rst("c")
    tr = run(w)
    assert [r.cause_id for r in tr.resets()] != ["pmtu-blackhole"]
    assert tr.stalls() == []


def test_a_full_size_segment_arriving_after_the_hole_is_no_black_hole() -> None:
    # One full-size segment lost while full-size ones arrive: ordinary (unrepaired) loss.
    w = receiver_blackhole(lost=1, tail=1448)
    w.rst("c", ack=w.hole)  # type: ignore[attr-defined]
    tr = run(w)
    assert [r.cause_id for r in tr.resets()] != ["pmtu-blackhole"]
    assert all(s.cause_id != "pmtu-blackhole" for s in tr.stalls())


def test_a_hole_just_before_the_close_is_too_young_to_call() -> None:
    w = receiver_blackhole(after_s=0.5)
    w.rst("c", ack=w.hole)  # type: ignore[attr-defined]
    assert [r.cause_id for r in run(w).resets()] != ["pmtu-blackhole"]


def test_data_in_flight_at_the_sender_is_no_hole() -> None:
    # The sender's capture: every segment went out (the one at the ACK point too).
    w = FakeWire().handshake()
    w.data("c", 150)
    w.wait(0.04)
    hole = w.nxt["s"]
    for _ in range(3):
        w.data("s", 1448)
    w.ack("c", ack=hole)
    w.wait(3.0)
    assert all(s.kind != "data-hole" for s in run(w).stalls())


# -- proxy buffering seen by the client ----------------------------------------------
def bursty_stream(sizes: list[int], gap_s: float = 2.0, seg: int = 8688) -> FakeWire:
    """A request, then the answer in bursts of ``sizes`` bytes (GRO-sized segments),
    ``gap_s`` apart, then the client's read timeout (3 s) and its RST."""
    w = FakeWire().handshake()
    w.data("c", 150)
    w.wait(0.01)
    w.data("s", 300)  # response headers
    w.ack("c")
    for n in sizes:
        w.wait(gap_s)
        while n > 0:
            w.data("s", min(seg, n))
            n -= seg
        w.ack("c")
    w.wait(3.0)
    w.rst("c")
    return w


def test_whole_buffer_bursts_name_proxy_buffering_with_its_alternative() -> None:
    r = one_reset(bursty_stream([16413, 16413, 16413]))
    assert r.cause_id == "proxy-buffering"
    assert r.cause_alternatives == ("idle-timeout",)
    assert "3 bursts of the same 16413 bytes" in r.cause


def test_bursts_of_different_sizes_are_not_buffering() -> None:
    r = one_reset(bursty_stream([16413, 9000, 12000]))
    assert r.cause_id != "proxy-buffering" and r.cause_alternatives == ()


def test_a_steady_stream_of_small_events_then_silence_is_not_buffering() -> None:
    w = FakeWire().handshake()
    w.data("c", 150)
    for _ in range(40):
        w.wait(0.1)
        w.data("s", 180)
    w.ack("c")
    w.wait(3.0)
    w.rst("c")
    assert one_reset(w).cause_id != "proxy-buffering"


def test_one_burst_is_not_enough() -> None:
    assert one_reset(bursty_stream([16413])).cause_id != "proxy-buffering"


def test_a_request_unanswered_until_the_client_gave_up_is_a_stall() -> None:
    # A proxy's accept queue: handshake and request acknowledged by the kernel, no
    # answer; the client gives up (FIN); the proxy takes it from its queue later and
    # the answer draws the client's RST.  The stall ends at the client's FIN.
    w = FakeWire().handshake()
    w.data("c", 517)
    w.ack("s")
    w.wait(3.0)
    fin = w.fin("c")
    w.ack("s")
    w.wait(3.0)
    w.data("s", 760)
    w.rst("c", with_ack=False)
    (s,) = run(w).stalls()
    assert (s.kind, s.end, s.stalled_side) == ("request-unanswered", "fin", "orig")
    assert s.silence_s == pytest.approx(3.0, abs=0.01) and fin["ts_ns"] > s.ts_ns


def test_bursts_the_tail_cannot_hold_make_no_claim() -> None:
    # MSS-sized segments, an ACK every second one: a 16 kB burst is ~18 packets, so
    # the 32-packet tail holds one whole burst only.  No claim (documented limit).
    w = FakeWire().handshake()
    w.data("c", 150)
    w.data("s", 300)
    w.ack("c")
    for _ in range(3):
        w.wait(2.0)
        n, k = 16413, 0
        while n > 0:
            w.data("s", min(1448, n))
            n, k = n - 1448, k + 1
            if k % 2 == 0:
                w.ack("c")
        w.ack("c")
    w.wait(3.0)
    w.rst("c")
    assert one_reset(w).cause_id != "proxy-buffering"
