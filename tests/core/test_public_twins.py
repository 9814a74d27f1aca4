"""Real traffic that three lab-fitted leans would misread (public captures, ../shared).

The lab corpus's misses that the classifier leaves alone have twins in real
traffic (docs/verdicts.md, "Wire twins").  Each of these leans would raise the
lab's figure and call the RSTs below wrongly; they stay as they are:

* a RST to a SYN with no packet of the server's is a firewall's REJECT
  (+19 on dev) – but real closed ports look the same;
* a peer on the server's own link resetting after a silence is a load balancer
  (+5 on dev) – but clients on the server's LAN do that;
* a far side that closes right after its data and then resets is a proxy whose
  backend failed (+14 on dev) – but servers ending a session do that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rstscope.api import analyze


def _resets(shared_dir: Path, name: str) -> dict[int, dict]:  # type: ignore[type-arg]
    path = shared_dir / "captures" / "zeek" / "Traces" / name
    if not path.exists():
        pytest.skip(f"{name} not in the shared captures")
    return {r["frame"]: r for r in analyze(path).to_document()["resets"]}


@pytest.mark.parametrize(("name", "frames"), [
    ("nmap-vsn.pcap", (11, 80, 257, 478, 479, 480)),  # a version scan's closed ports
    ("irc-353.pcap", (2,)),  # the host's own distance (its other connections)
    ("redis/attr.pcap", (2, 16)),
])
def test_closed_ports_stay_the_server(shared_dir: Path, name: str, frames: tuple[int, ...]):
    got = _resets(shared_dir, name)
    for frame in frames:
        r = got[frame]
        assert "refused" in r["tags"] and "no-baseline" in r["tags"]
        assert r["origin"] == "server" and r["confidence"] <= 0.75, (name, frame)
        assert r["alternatives"][0][0] == "firewall"


@pytest.mark.parametrize("name", ["postgresql/bad-backend-message-1.pcap",
                                  "postgresql/bad-startup-message-1.pcap"])
def test_a_client_on_the_servers_link_stays_the_client(shared_dir: Path, name: str):
    (r,) = _resets(shared_dir, name).values()
    assert "same-link-peer" in r["tags"]
    assert r["origin"] == "client" and r["confidence"] <= 0.55
    assert r["alternatives"][0][0] == "load-balancer"


@pytest.mark.parametrize(("name", "frames"), [
    ("tls/smtp-starttls.pcap", (36, 37)),
    ("tls/imap-starttls.pcap", (32,)),
    ("tls/pop3-starttls.pcap", (32, 33)),
    ("tls/xmpp-starttls.pcap", (33, 34)),
])
def test_a_mail_server_ending_its_session_stays_the_server(shared_dir: Path, name: str,
                                                           frames: tuple[int, ...]):
    got = _resets(shared_dir, name)
    for frame in frames:
        r = got[frame]
        assert "far-close" in r["tags"]
        assert r["origin"] == "server" and r["confidence"] <= 0.55, (name, frame)
        assert r["alternatives"][0][0] == "load-balancer"
