"""Per scenario: origin, sender and the key evidence numbers on the committed lab samples.

The expectations come from the lab's configuration (the manifest's timeouts and
the topology's hop counts), never from rstscope's own output: a timer that fires
on a silence must show that silence within 50 ms of the configured timeout, and a
device nearer than the endpoint must show the hop difference the topology implies.
"""

from __future__ import annotations

import json

import pytest

from rstscope.api import analyze
from tests.conftest import SAMPLES

# Router hops from the client's capture point to each device in the lab topology
# client ── fw ── rtr ── lb ── srv (docs/lab.md): a packet leaving device X reaches
# the client with its initial TTL minus the routers in between.
HOPS_FROM_CLIENT = {"fw": 0, "rtr": 1, "lb": 2, "srv": 3}

# scenario, vantage, origin, sender, the timeout parameter whose value the silence
# before the verdict must equal (plus the named extra idle), nearer device or None.
CASES = [
    ("server-idle-abort", "client", "server", "server-endpoint", "idle_timeout_s", None, None),
    ("client-read-timeout-abort", "client", "client", "client-endpoint", "read_timeout_s",
     None, None),
    ("client-read-timeout-abort", "server", "client", "client-endpoint", "read_timeout_s",
     None, None),
    ("nginx-proxy-timeout", "client", "load-balancer", "server-endpoint", "proxy_timeout_s",
     None, None),
    ("llm-stream-60s", "client", "load-balancer", "server-endpoint", "proxy_timeout_s",
     None, None),
    # Seen on the backend, haproxy's `timeout server` is a same-link peer resetting
    # after a silence, which a client on the server's LAN does too: the wire cannot
    # tell them apart, so the verdict names the client (the balancer first among the
    # alternatives, test_lab_samples checks that) -- issue 13 removed the lean.
    ("haproxy-timeout", "server", "client", "client-endpoint", "proxy_timeout_s",
     None, None),
    # Lazy expiry: the state expired at T, the RST answers the first packet after
    # T + extra idle, so that packet's silence is T + extra.
    ("fw-idle-expiry-client-next", "client", "firewall", "middlebox", "conntrack_timeout_s",
     "extra_idle_s", "fw"),
    ("l4lb-idle-expiry", "client", "load-balancer", "middlebox", "conntrack_timeout_s",
     "extra_idle_s", "lb"),
    ("dpi-inject-single", "client", "firewall", "middlebox", None, None, "rtr"),
    ("dpi-inject-storm", "client", "firewall", "middlebox", None, None, "rtr"),
    ("server-abort", "client", "server", "server-endpoint", None, None, None),
    ("client-close-unread", "client", "client", "client-endpoint", None, None, None),
]


def _manifest(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.manifest.json").read_text())


@pytest.mark.parametrize(("name", "vantage", "origin", "sender", "timeout_key", "extra_key",
                          "nearer"), CASES, ids=[f"{c[0]}.{c[1]}" for c in CASES])
def test_scenario_verdict_and_evidence(name, vantage, origin, sender, timeout_key, extra_key,
                                       nearer):
    pcap = SAMPLES / f"{name}.{vantage}.pcap"
    labels = json.loads(pcap.with_suffix(".labels.json").read_text())
    assert labels, "the sample holds the scenario's RST"
    params = _manifest(name)["params"]
    by_frame = {r["frame"]: r for r in analyze(pcap).to_document()["resets"]}
    for lab in labels:
        r = by_frame[lab["frame"]]
        assert (r["origin"], r["sender"]) == (origin, sender), (lab["frame"], r["cause"])
        if timeout_key is not None:
            want = float(params[timeout_key]) + (float(params[extra_key]) if extra_key else 0.0)
            assert r["silence_s"] == pytest.approx(want, abs=0.05), r["cause"]
        if nearer is not None:
            # The server's packets cross HOPS_FROM_CLIENT["srv"] routers; the RST
            # came from a device that many fewer hops away.
            assert r["hop_delta"] == HOPS_FROM_CLIENT["srv"] - HOPS_FROM_CLIENT[nearer]
            assert r["sender_hops"] == HOPS_FROM_CLIENT[nearer]
            # Its place on the path in links: the box next to the client is 1 hop from
            # it, and the last box in front of the server 1 hop before it.
            assert r["emitter_hops_from_client"] == HOPS_FROM_CLIENT[nearer] + 1
            assert r["emitter_hops_to_server"] == HOPS_FROM_CLIENT["srv"] - HOPS_FROM_CLIENT[nearer]
        else:
            assert r["hop_delta"] in (0, None)
