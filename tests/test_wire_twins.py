"""Wire signatures and twins (scripts/wire_twins.py, ``calibrate.py twins``).

The signature describes a labelled RST from its capture alone (dpkt, not the
classifier).  Two RSTs of different truth with one signature are wire twins: no
rule on that evidence is right for both.  The signature must not merge what the
wire separates: where the classifier beats a twin group's majority truth, it is
too coarse, and the dev part checks that none is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import calibrate  # noqa: E402
import wire_twins as wt  # noqa: E402

from rstscope.lab.corpus import iter_committed  # noqa: E402


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(case, vantage) -> capture of the committed dev part."""
    items = iter_committed(tmp_path_factory.mktemp("dev"))
    return {(it.case, it.vantage): it.pcap for it in items}


@pytest.fixture(scope="module")
def dev_rows(tmp_path_factory: pytest.TempPathFactory) -> list[wt.Row]:
    said = {(r["case"], r["vantage"], r["frame"]): r["origin"] for r in calibrate.load("dev")}
    items = [it for it in iter_committed(tmp_path_factory.mktemp("rows")) if it.labels]
    return wt.rows_of(items, said)


def sig(dev: dict[tuple[str, str], Path], case: str, vantage: str, frame: int) -> wt.Signature:
    return wt.signature(dev[(case, vantage)], frame)


def test_a_balancers_timeout_and_a_clients_read_timeout_are_twins_at_the_server(dev):
    # haproxy's `timeout server` seen at its backend (truth: load balancer), two
    # routers away, and a client's read-timeout abort (truth: client): same packets,
    # same silence class, same RST.
    lb = sig(dev, "s101-0043-haproxy-timeout", "server", 15)
    client = sig(dev, "s102-0030-client-read-timeout-abort", "server", 15)
    assert lb == client
    assert lb.vantage == "server" and lb.trigger == "none" and lb.hops == "2+"


def test_a_reject_and_a_closed_port_are_twins(dev):
    # A firewall's REJECT of the client's SYN (truth: firewall) and a backend's closed
    # port answering nginx's SYN (truth: server): a SYN, then a RST/ACK from the same
    # distance with nothing else of the far side's.
    reject = sig(dev, "s103-0049-fw-policy-reject", "client", 2)
    closed = sig(dev, "s101-0031-nginx-backend-refused", "server", 2)
    assert reject == closed
    assert reject.seq == ("cS",) and reject.rst == "sRA?"  # "?": no packet to compare with
    assert (reject.rst_seq, reject.trigger, reject.silence) == ("unknown", "rtt", "<1s")


def test_a_balancer_on_the_backends_link_is_no_twin_of_a_remote_client(dev):
    # Negative: haproxy right in front of its backend arrives undecremented, a client
    # across routers does not; the capture shows that, so the signatures differ.
    lb = sig(dev, "s101-0017-haproxy-timeout", "server", 15)
    client = sig(dev, "s102-0030-client-read-timeout-abort", "server", 15)
    assert lb != client
    assert lb.vantage == "both-ends-local" and lb.hops == "0"


def test_a_reject_is_no_twin_of_a_closed_port_seen_on_its_own_host(dev):
    # Negative: the closed port seen on the backend's own link comes undecremented from
    # the capture host; a REJECT from a box routers away does not.
    reject = sig(dev, "s101-0020-fw-policy-reject", "client", 2)
    closed = sig(dev, "s101-0002-haproxy-backend-refused", "server", 2)
    assert reject.seq[0].startswith("cS") and closed.seq[0].startswith("cS")
    assert reject != closed


def _row(truth: str, key: str, verdict: str | None = None, scenario: str = "x") -> wt.Row:
    s = wt.Signature("client", (key,), (key,), "sRA", "64", "0", "end", "exact", "w0", "none",
                     "<1s", ())
    return wt.Row("dev", scenario, "c", "client", 1, truth, s, verdict)


def test_ceiling_counts_the_majority_truth_of_each_signature():
    rows = [_row("server", "a"), _row("server", "a"), _row("firewall", "a"),
            _row("client", "b"), _row("firewall", "c"), _row("server", "c")]
    f = wt.figures(rows)
    # a: 2 of 3; b: 1 of 1; c: a tie, each of its rows gets half a right answer
    assert (f.rsts, f.twins, f.alone) == (6, 5, 1)
    assert f.ceiling == pytest.approx((2 + 1 + 1) / 6)
    # per scenario the same credit, grouped over all rows
    sub = wt.figures([r for r in rows if r.truth == "firewall"], rows)
    assert sub.ceiling == pytest.approx(0.5 / 2)


def test_a_group_the_classifier_splits_flags_the_signature_as_too_coarse():
    rows = [_row("server", "a", "server"), _row("firewall", "a", "firewall"),
            _row("server", "b", "server"), _row("firewall", "b", "server")]
    coarse = wt.too_coarse(rows)
    assert [(n, top, right) for _key, n, top, right in coarse] == [(2, 1, 2)]


def test_the_dev_signature_is_not_coarser_than_the_classifier(dev_rows):
    # every labelled RST of the committed dev captures, each with its committed verdict
    assert len(dev_rows) == len(calibrate.load("dev"))
    assert all(r.verdict is not None for r in dev_rows)
    assert wt.too_coarse(dev_rows) == []
    f = wt.figures(dev_rows)
    assert f.twins > 0 and f.ceiling >= f.classifier  # type: ignore[operator]


def test_a_public_closed_port_shares_a_lab_rejects_signature(dev, shared_dir: Path):
    # Real traffic: nmap's version scan hitting a closed port (Zeek's nmap-vsn trace)
    # is wire-identical to a lab firewall's REJECT of the client's SYN.
    reject = sig(dev, "s101-0054-fw-policy-reject", "client", 2)
    ref = wt.reference_rows([shared_dir / "captures" / "zeek" / "Traces" / "nmap-vsn.pcap"])
    assert any(r.sig == reject for r in ref)


def test_the_twins_section_of_the_docs_is_current(dev_rows):
    from gen_verdicts_doc import DOC, render

    old = DOC.read_text("utf-8")
    assert render(old, {"twins": wt.doc_block(dev_rows)}) == old, (
        "docs/verdicts.md is stale: run python scripts/calibrate.py twins DIR --committed --doc")
