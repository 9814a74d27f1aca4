"""The answer from per-TTL replies: lab-recorded runs, then the edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rstscope.probe.answer import conclude, emitter_hop
from rstscope.probe.model import Hop, result_from_dict

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("*.probe.json"))


def _redo(doc: dict) -> object:
    r = result_from_dict(doc)
    return conclude(r.hops, r.path, target=r.address, trigger=r.trigger,
                    endpoint_ttl=r.endpoint_ttl, endpoint_hops=r.endpoint_hops,
                    socket_alive=r.socket_alive)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_recorded_lab_runs_round_trip_and_reconclude(path: Path) -> None:
    doc = json.loads(path.read_text())
    r = result_from_dict(doc)
    assert r.to_dict()["hops"] == doc["hops"]
    assert _redo(doc) == r.answer
    # The minimum JSON fields.
    for key in ("target", "trigger", "hops", "rst_hop", "rst_from", "endpoint_hops", "verdict"):
        assert key in doc
    for h in doc["hops"]:
        assert {"ttl", "reply", "from", "rtt_ms"} <= set(h)
    assert doc["verdict"].count(". ") == 0 and doc["verdict"].endswith(".")


def test_recorded_answers_name_the_lab_box() -> None:
    got = {p.name.split(".")[0]: json.loads(p.read_text()) for p in FIXTURES}
    assert (got["fw-reject"]["reset_hop"], got["fw-reject"]["rst_hop"], got["fw-reject"]["box"]) \
        == (1, 2, "firewall")
    assert (got["l4lb"]["reset_hop"], got["l4lb"]["box"]) == (3, "load-balancer")
    assert got["nat-rebind"]["outcome"] == "endpoint-unknown-connection"
    assert got["dpi-rtr"]["on_path"] and got["dpi-rtr"]["reset_hop"] == 2
    assert got["fw-drop"]["outcome"] == "silent-drop" and got["fw-drop"]["drop_after_hop"] == 1


def te(ttl: int, addr: str) -> Hop:
    return Hop(ttl=ttl, reply="time-exceeded", from_addr=addr, rtt_ms=0.2)


PATH = [te(1, "r1"), te(2, "r2"), te(3, "r3"), Hop(4, "ack", "T", 0.3)]


def test_emitter_hop_from_rst_ttl() -> None:
    assert [emitter_hop(t) for t in (255, 64, 63, 61, 127)] == [1, 1, 2, 4, 2]


def test_rst_ttl_outside_k_minus_1_k_falls_back_to_the_probe_ttl() -> None:
    # A box that copies the probe's TTL (or a strange initial TTL): RST TTL 200 would
    # say hop 56; the answer keeps the probe TTL instead.
    hops = [te(1, "r1"), te(2, "r2"), Hop(3, "rst", "T", 0.3, rst_ttl=200, rst_ip_id=1)]
    a = conclude(hops, PATH, target="T", trigger="idle", endpoint_ttl=61, endpoint_hops=4,
                 socket_alive=True)
    assert (a.reset_hop, a.reset_hop_basis, a.endpoint) == (3, "probe-ttl", False)
    assert (a.router_before, a.router_after) == ("r2", "T")


def test_endpoint_rst_on_sni_trigger_is_the_server() -> None:
    hops = [*PATH[:3], Hop(4, "rst", "T", 0.3, rst_ttl=61, rst_ip_id=0)]
    a = conclude(hops, PATH, target="T", trigger="sni", endpoint_ttl=61, endpoint_hops=4,
                 socket_alive=None)
    assert (a.outcome, a.box, a.endpoint, a.reset_hop) == ("endpoint-reset", "server", True, 4)


def test_idle_endpoint_rst_with_our_socket_closed_is_not_a_nat() -> None:
    hops = [*PATH[:3], Hop(4, "rst", "T", 0.3, rst_ttl=61, rst_ip_id=0)]
    a = conclude(hops, PATH, target="T", trigger="idle", endpoint_ttl=61, endpoint_hops=4,
                 socket_alive=False)
    assert a.outcome == "endpoint-reset"


def test_no_reset_unreachable_inconclusive() -> None:
    a = conclude(PATH, PATH, target="T", trigger="idle", endpoint_ttl=61, endpoint_hops=4,
                 socket_alive=True)
    assert a.outcome == "no-reset" and a.rst_hop is None
    u = conclude([te(1, "r1"), Hop(2, "unreachable", "r2", 0.2)], PATH, target="T",
                 trigger="idle", endpoint_ttl=61, endpoint_hops=4, socket_alive=True)
    assert u.outcome == "unreachable" and "Hop 2 (r2)" in u.verdict
    i = conclude([te(1, "r1"), te(2, "r2")], [], target="T", trigger="idle", endpoint_ttl=61,
                 endpoint_hops=None, socket_alive=True)
    assert i.outcome == "inconclusive" and "--max-hops" in i.verdict


def test_nothing_at_all_is_a_drop_at_the_first_hop() -> None:
    a = conclude([Hop(1, "none", None, None), Hop(2, "none", None, None)], PATH, target="T",
                 trigger="idle", endpoint_ttl=61, endpoint_hops=4, socket_alive=True)
    assert (a.outcome, a.drop_after_hop) == ("silent-drop", 0)
    assert "TTL 1 to 2" in a.verdict


def test_reset_on_the_fresh_path_is_answered_from_the_path() -> None:
    path = [te(1, "r1"), Hop(2, "rst", "T", 0.3, rst_ttl=63, rst_ip_id=0)]
    a = conclude(path, [], target="T", trigger="path", endpoint_ttl=61, endpoint_hops=None,
                 socket_alive=None)
    assert (a.outcome, a.reset_hop, a.rst_hop) == ("middlebox-reset", 2, 2)
