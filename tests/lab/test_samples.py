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
from rstscope.lab.make_samples import sample_dir
from tests.conftest import SAMPLES

# Only the lab's own samples (one per scenario and vantage); other files may live here.
PCAPS = sorted(sample_dir(SAMPLES, s) / f"{s}.{v}.pcap" for s in SCENARIOS for v in VANTAGES)
#: Scenarios whose point is that nobody resets: the control, and nginx, which answers a
#: backend connect timeout with a 504 and a clean close.
NO_RST = {"graceful-close", "nginx-backend-connect-timeout"}


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
    for p in PCAPS:
        readme = (p.parent / "README.md").read_text()
        assert "python -m rstscope.lab.make_samples samples/" in readme
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


@pytest.mark.parametrize("name", sorted(NO_RST))
def test_no_reset_scenarios_have_no_reset(name):
    for v in VANTAGES:
        path = sample_dir(SAMPLES, name) / f"{name}.{v}.labels.json"
        assert json.loads(path.read_text()) == []


def test_every_other_scenario_has_its_cause_somewhere():
    # Stall scenarios (issue 17) end without a RST that carries the cause: their
    # truth is the configured cause in the manifest (checked in tests/core/test_everyday_samples.py).
    from rstscope.lab.everyday import STALL_SCENARIOS, stall_truth

    for name in SCENARIOS:
        if name in NO_RST:
            continue
        if name in STALL_SCENARIOS:
            manifest = json.loads((SAMPLES / f"{name}.manifest.json").read_text())
            assert stall_truth(manifest), name
            continue
        causes = {lb["cause"] for v in VANTAGES
                  for lb in json.loads((sample_dir(SAMPLES, name) / f"{name}.{v}.labels.json")
                                       .read_text())}
        assert causes - {"side-effect"}, name


def test_proxy_backend_failures_are_labelled_by_provenance():
    """Behind a full proxy the client's RST comes from the proxy, not the backend that
    failed: the labels say lb / load-balancer, with the lb's TTL after its hops."""
    for name in ("haproxy-backend-abort", "nginx-backend-abort",
                 "haproxy-backend-connect-timeout"):
        d = sample_dir(SAMPLES, name)
        manifest = json.loads((d / f"{name}.manifest.json").read_text())
        at_client = [lb for lb in json.loads((d / f"{name}.client.labels.json").read_text())
                     if lb["cause"] != "side-effect"]
        assert at_client, name
        for lb in at_client:
            assert (lb["emitter"], lb["origin"], lb["sender"]) == (
                "lb", "load-balancer", "server-endpoint"), name
            assert lb["ttl"] == manifest["initial_ttl"]["lb"] - 2  # rtr and fw in between
    for name in ("haproxy-backend-refused", "nginx-backend-refused"):
        d = sample_dir(SAMPLES, name)
        at_server = json.loads((d / f"{name}.server.labels.json").read_text())
        # The backend's kernel refuses the proxy's SYN: RST+ACK from the server.
        assert at_server and {lb["cause"] for lb in at_server} == {"backend-refused"}
        assert {lb["origin"] for lb in at_server} == {"server"}


def test_no_machine_paths_in_samples():
    for p in SAMPLES.rglob("*"):
        if p.suffix in (".json", ".md"):
            text = p.read_text()
            assert "/tmp/" not in text and "/root" not in text and "/work/" not in text, p.name


@pytest.mark.parametrize("manifest", sorted(SAMPLES.rglob("*.manifest.json")),
                         ids=lambda p: p.name)
def test_labels_are_what_the_truth_code_gives_today(manifest, tmp_path):
    """Relabelling a sample from its manifest's emissions with today's matching (which
    also weighs the TTL drop along the path) changes nothing: the truth fix for forged
    RSTs that share a key with a real one left every committed label as it was."""
    import shutil

    from rstscope.lab.runner import relabel

    stem = manifest.name.removesuffix(".manifest.json")
    for f in manifest.parent.glob(f"{stem}.*"):
        shutil.copy(f, tmp_path / f.name)
    assert relabel(tmp_path / manifest.name) == []
