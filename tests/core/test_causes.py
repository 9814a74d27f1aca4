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
