"""conn_state and history: Zeek's vocabulary, driven through the tracker with FakeWire."""

from __future__ import annotations

import pytest

from rstscope.core import Tracker
from rstscope.core.states import is_log_threshold
from rstscope.schema import TH_ACK, TH_FIN, TH_RST, TH_SYN
from tests.core.fakewire import FakeWire


def run(w: FakeWire) -> tuple[str, str]:
    tr = Tracker()
    tr.feed(w.batch())
    tr.finish()
    flows = tr.flows()
    assert len(flows) == 1
    return flows[0].conn_state, flows[0].history


def test_s0_syn_only():
    w = FakeWire()
    w.pkt("c", TH_SYN)
    assert run(w) == ("S0", "S")


def test_rej_refused_port():
    w = FakeWire()
    w.pkt("c", TH_SYN)
    w.wait(0.01)
    w.rst("s", seq=0, ack=w.nxt["c"])
    assert run(w) == ("REJ", "Sr")


def test_rstos0_syn_then_orig_rst():
    w = FakeWire()
    w.pkt("c", TH_SYN)
    w.wait(1)
    w.rst("c", with_ack=False)
    assert run(w) == ("RSTOS0", "SR")


def test_lone_rst_is_oth_not_rstos0():
    # Zeek bug #1164: a backscatter RST was labelled RSTOS0 without any SYN.
    w = FakeWire(cport=55000, sport=60000)  # no port hint: first sender is orig
    w.rst("c", with_ack=True)
    assert run(w) == ("OTH", "R")


def test_lone_rst_from_server_port_is_flipped_rstrh():
    w = FakeWire()
    w.rst("s")  # from port 443: the responder
    assert run(w) == ("RSTRH", "^r")


def test_sf_normal_close():
    w = FakeWire().handshake().exchange(1)
    w.fin("c")
    w.wait(0.04)
    w.fin("s")
    w.wait(0.001)
    w.ack("c")
    assert run(w) == ("SF", "ShADdFf")


def test_s1_established():
    w = FakeWire().handshake().exchange(2)
    assert run(w) == ("S1", "ShADd")


def test_rsto_and_rstr():
    w = FakeWire().handshake().exchange(1)
    w.rst("c")
    assert run(w)[0] == "RSTO"
    w = FakeWire().handshake().exchange(1)
    w.rst("s")
    assert run(w) == ("RSTR", "ShADdr")


def test_fin_then_rst_then_peer_fin_is_sf():
    # Zeek turns "FIN, RST from one side, then the peer's FIN" back into a normal close.
    w = FakeWire().handshake().exchange(1)
    w.fin("c")
    w.rst("c")
    w.wait(0.04)
    w.fin("s")
    assert run(w) == ("SF", "ShADdFRf")


def test_fin_then_rst_without_peer_fin_is_rsto():
    w = FakeWire().handshake().exchange(1)
    w.fin("c")
    w.rst("c")
    assert run(w)[0] == "RSTO"


def test_rst_after_both_fins_is_sf():
    w = FakeWire().handshake().exchange(1)
    w.fin("c")
    w.fin("s")
    w.rst("s")
    # No "a": the responder never sends a segment with only ACK set (its data and
    # its FIN carry more), so Zeek's history has no lowercase a here.
    assert run(w) == ("SF", "ShADdFfr")


def test_sh_and_s2_s3():
    w = FakeWire()
    w.pkt("c", TH_SYN)
    w.fin("c")
    assert run(w)[0] == "SH"
    w = FakeWire().handshake()
    w.fin("c")
    assert run(w)[0] == "S2"
    w = FakeWire().handshake()
    w.fin("s")
    assert run(w)[0] == "S3"


def test_midstream_is_oth_with_inferred_orientation():
    w = FakeWire()
    w.data("c", 100)
    w.data("s", 100)
    tr = Tracker()
    tr.feed(w.batch())
    f = tr.flows()[0]
    assert f.conn_state == "OTH"
    assert f.orientation == "inferred:well-known-port"
    assert (f.orig_p, f.resp_p) == (40000, 443)


def test_synack_first_flips():
    w = FakeWire()
    w.pkt("s", TH_SYN | TH_ACK)
    w.ack("c")
    tr = Tracker()
    tr.feed(w.batch())
    f = tr.flows()[0]
    assert f.history.startswith("^h")
    assert f.orientation == "synack"
    assert f.orig_h == "198.51.100.10"


def test_repeated_rst_letters_only_when_seq_differs():
    w = FakeWire().handshake()
    w.rst("s")
    w.rst("s")  # identical copy: same seq -> one letter
    assert run(w)[1].endswith("r")
    assert not run(w)[1].endswith("rr")
    w = FakeWire().handshake()
    w.rst("s")
    w.rst("s", seq=w.nxt["s"] + 1460)
    assert run(w)[1].endswith("rr")


def test_fin_rst_packet_is_i_and_syn_fin_is_q():
    w = FakeWire().handshake()
    w.pkt("c", TH_FIN | TH_RST | TH_ACK)
    assert "I" in run(w)[1]
    w = FakeWire()
    w.pkt("c", TH_SYN | TH_FIN)
    assert run(w)[1] == "Q"


def test_retransmission_and_zero_window_letters_log_scale():
    w = FakeWire().handshake()
    first = w.data("c", 100)
    for _ in range(10):
        w.wait(0.2)
        w.data("c", 100, seq=first["seq"])
    _, hist = run(w)
    assert hist.count("T") == 2  # the 1st and the 10th retransmission
    w = FakeWire().handshake()
    for _ in range(10):
        w.ack("s", win=0)
    assert run(w)[1].count("w") == 2


@pytest.mark.parametrize(("n", "yes"), [(1, True), (2, False), (10, True), (11, False),
                                        (100, True), (1000, True), (500, False)])
def test_is_log_threshold(n: int, yes: bool):
    assert is_log_threshold(n) is yes


def test_ack_before_synack_does_not_make_partial():
    # Some stacks ACK a SYN before their SYN/ACK; Zeek ignores that ACK for state.
    w = FakeWire()
    w.pkt("c", TH_SYN)
    w.pkt("s", TH_ACK, ack=1001)
    w.rst("c", with_ack=False)
    assert run(w) == ("RSTOS0", "SaR")
