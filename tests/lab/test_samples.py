"""The committed samples: every labelled RST is really there, checked with tshark.

The labels were written by the lab (scapy); these tests re-read the captures
with an independent dissector (dpkt) and check each label points at a RST with the
same addresses, ports and sequence numbers, that no RST is unlabelled, and that
the README lists every capture.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from rstscope.lab import SCENARIOS, VANTAGES
from tests.conftest import SAMPLES

# Only the lab's own samples (one per scenario and vantage); other files may live here.
PCAPS = sorted(SAMPLES / f"{s}.{v}.pcap" for s in SCENARIOS for v in VANTAGES)


def _dpkt_rsts(pcap: Path) -> dict[int, dict[str, object]]:
    """RST frames read by dpkt (an independent dissector): frame -> header fields."""
    import dpkt

    rows: dict[int, dict[str, object]] = {}
    with open(pcap, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        link = reader.datalink()
        for frame, (_ts, buf) in enumerate(reader, start=1):
            if link == dpkt.pcap.DLT_EN10MB:
                ip = dpkt.ethernet.Ethernet(buf).data
            elif link == 276:  # LINKTYPE_LINUX_SLL2
                ip = dpkt.sll2.SLL2(buf).data
            else:
                ip = dpkt.sll.SLL(buf).data
            tcp = getattr(ip, "data", None)
            if not isinstance(tcp, dpkt.tcp.TCP) or not tcp.flags & dpkt.tcp.TH_RST:
                continue
            v6 = isinstance(ip, dpkt.ip6.IP6)
            rows[frame] = {
                "src": ipaddress.ip_address(ip.src).compressed,
                "dst": ipaddress.ip_address(ip.dst).compressed,
                "sport": tcp.sport, "dport": tcp.dport, "seq": tcp.seq, "ack": tcp.ack,
                "ttl": ip.hlim if v6 else ip.ttl,
            }
    return rows


def test_one_sample_per_scenario_and_vantage():
    for p in PCAPS:
        assert p.is_file(), p.name
        assert p.with_suffix(".labels.json").is_file(), p.name


def test_readme_lists_every_capture_and_the_regeneration_command():
    readme = (SAMPLES / "README.md").read_text()
    assert "python -m rstscope.lab.make_samples samples/" in readme
    for p in PCAPS:
        assert f"`{p.name}`" in readme


@pytest.mark.parametrize("pcap", PCAPS, ids=lambda p: p.name)
def test_samples_are_small(pcap):
    assert pcap.stat().st_size < 16_000


@pytest.mark.parametrize("pcap", PCAPS, ids=lambda p: p.name)
def test_labels_match_the_capture(pcap):
    labels = json.loads(pcap.with_suffix(".labels.json").read_text())
    rsts = _dpkt_rsts(pcap)
    assert sorted(lb["frame"] for lb in labels) == sorted(rsts)
    for lb in labels:
        assert {k: lb[k] for k in ("src", "dst", "sport", "dport", "seq", "ack", "ttl")} == \
            rsts[lb["frame"]]
        assert lb["role"] in ("client", "server", "load-balancer", "firewall")
        assert lb["emitter"] in ("client", "fw", "rtr", "lb", "srv")


def test_control_scenario_has_no_reset():
    for v in VANTAGES:
        assert json.loads((SAMPLES / f"graceful-close.{v}.labels.json").read_text()) == []


def test_every_other_scenario_has_its_cause_somewhere():
    for name in SCENARIOS:
        if name == "graceful-close":
            continue
        causes = {lb["cause"] for v in VANTAGES
                  for lb in json.loads((SAMPLES / f"{name}.{v}.labels.json").read_text())}
        assert causes - {"side-effect"}, name


def test_no_machine_paths_in_samples():
    for p in SAMPLES.iterdir():
        if p.suffix in (".json", ".md"):
            text = p.read_text()
            assert "/tmp/" not in text and "/root" not in text and "/work/" not in text, p.name
