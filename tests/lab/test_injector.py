"""The injector's ClientHello SNI parser, fed a ClientHello made by real OpenSSL."""

from __future__ import annotations

import contextlib
import ssl

from rstscope.lab.injector import client_hello_sni


def _client_hello(server_hostname: str | None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def test_sni_of_real_client_hello():
    assert client_hello_sni(_client_hello("blocked.lab.test")) == "blocked.lab.test"


def test_no_sni_extension():
    assert client_hello_sni(_client_hello(None)) is None


def test_not_a_client_hello():
    assert client_hello_sni(b"GET / HTTP/1.1\r\n\r\n" * 4) is None
    assert client_hello_sni(b"") is None


def test_truncated_client_hello_does_not_raise():
    hello = _client_hello("blocked.lab.test")
    for cut in range(0, len(hello), 7):
        result = client_hello_sni(hello[:cut])
        assert result is None or "blocked.lab.test".startswith(result)
