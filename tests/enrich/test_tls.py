"""TLS/HTTP2 context from real nginx + Python h2 sessions captured with tcpdump on lo.

One recording per module (a few seconds): every scenario is its own connection,
told apart by the client's port.  Expected values come from what the bench was
configured to do (nginx proxy_read_timeout, keepalive_timeout, TLS versions),
never from rstscope's own output.
"""

from __future__ import annotations

import asyncio

import pytest

from rstscope.enrich.shark import build_contexts, dissect
from tests.enrich.conftest import IDLE_S, PROXY_READ_S


@pytest.fixture(scope="module")
def decrypted(recording):
    return build_contexts(dissect(recording.pcap, keylog=recording.keylog))


@pytest.fixture(scope="module")
def opaque(recording):
    return build_contexts(dissect(recording.pcap))


def test_handshake_facts(recording, decrypted, opaque):
    for ctxs in (decrypted, opaque):
        main = ctxs[recording.key("close-notify")]
        assert (main.sni, main.alpn, main.tls_version) == ("rst.example", "h2", "TLSv1.3")
        old = ctxs[recording.key("tls12-close")]
        assert (old.sni, old.alpn, old.tls_version) == ("rst.example", "h2", "TLSv1.2")
    assert decrypted[recording.key("close-notify")].decrypted
    assert not opaque[recording.key("close-notify")].decrypted


def test_decrypted_504_goaway_and_silence(recording, decrypted):
    ctx = decrypted[recording.key("proxy-timeout-reuse")]
    server = recording.bench.port
    status = [f for f in ctx.http2 if f.type == "HEADERS" and f.status is not None]
    assert [(f.sport, f.status) for f in status] == [(server, 504)]
    request = next(f for f in ctx.http2 if f.type == "HEADERS" and f.path == "/slow")
    waited_s = (status[0].ts_ns - request.ts_ns) / 1e9
    assert PROXY_READ_S - 0.05 <= waited_s <= PROXY_READ_S + 0.5
    goaway = [f for f in ctx.http2 if f.type == "GOAWAY"]
    assert [(f.sport, f.error_name, f.last_stream_id) for f in goaway] == \
        [(server, "NO_ERROR", 1)]
    # keepalive_timeout: GOAWAY comes IDLE_S after the last response frame.
    last_data = ctx.last_data_before(goaway[0].ts_ns)
    assert last_data is not None and last_data.sport == server
    idle_s = (goaway[0].ts_ns - last_data.ts_ns) / 1e9
    assert IDLE_S - 0.05 <= idle_s <= IDLE_S + 0.6
    closes = [a for a in ctx.alerts if a.sport == server]
    assert [(a.level, a.description, a.name) for a in closes] == [(1, 0, "close_notify")]


def test_rst_stream_cancel_decrypted(recording, decrypted):
    ctx = decrypted[recording.key("stream-cancel")]
    cancels = [f for f in ctx.http2 if f.type == "RST_STREAM"]
    assert [(f.sport, f.stream_id, f.error_code, f.error_name) for f in cancels] == \
        [(recording.client_ports["stream-cancel"], 1, 8, "CANCEL")]


def test_tls13_alert_is_opaque_without_keys(recording, opaque):
    ctx = opaque[recording.key("close-notify")]
    assert ctx.alerts == ()  # TLS 1.3 hides the alert's record type too
    assert ctx.http2 == ()
    client = recording.client_ports["close-notify"]
    last = [r for r in ctx.records if r.sport == client][-1]
    # close_notify = 2 alert bytes + 1 inner type byte + 16-byte AEAD tag.
    assert (last.content_type, last.length, last.encrypted) == (23, 19, True)


def test_tls12_encrypted_alert_vs_decrypted(recording, opaque, decrypted):
    client = recording.client_ports["tls12-close"]
    enc = [a for a in opaque[recording.key("tls12-close")].alerts if a.sport == client]
    assert [(a.encrypted, a.name) for a in enc] == [(True, "encrypted alert")]
    dec = [a for a in decrypted[recording.key("tls12-close")].alerts if a.sport == client]
    assert [(a.level, a.description, a.close_notify) for a in dec] == [(1, 0, True)]


def test_fatal_alert_from_server(recording, opaque):
    ctx = opaque[recording.key("fatal-alert")]
    server = recording.bench.ports["tls13"]
    alerts = [(a.sport, a.level, a.name) for a in ctx.alerts]
    assert alerts == [(server, 2, "protocol_version")]


def test_dissect_inside_running_event_loop(recording):
    """Jupyter runs a loop; pyshark must still work (pyshark#360/#542)."""

    async def main() -> int:
        facts = dissect(recording.pcap, keylog=recording.keylog)
        await asyncio.sleep(0)
        return len(facts)

    assert asyncio.run(main()) > 0
