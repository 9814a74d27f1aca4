"""Socket helpers shared by the lab's client and server: how a connection ends."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import time


def log_event(event: str, **fields: object) -> None:
    """One JSON line on stdout with a wall-clock ``ts_ns`` (same clock as the captures)."""
    print(json.dumps({"event": event, "ts_ns": time.time_ns(), **fields}), flush=True)


def abort(sock: socket.socket) -> None:
    """Abortive close: SO_LINGER {on, 0} makes close() send a RST instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def close_gracefully(sock: socket.socket, wait_s: float = 1.0) -> None:
    """TLS close_notify, then FIN, then drain until the peer's FIN (or ``wait_s``)."""
    sock.settimeout(wait_s)
    raw: socket.socket = sock
    if isinstance(sock, ssl.SSLSocket):
        try:
            raw = sock.unwrap()
        except (OSError, ssl.SSLError, ValueError):
            # The peer may answer close_notify with nothing or with data; either way
            # our close_notify is sent, which is all a graceful close needs.
            raw = sock
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)
    with contextlib.suppress(OSError, ssl.SSLError):
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and raw.recv(4096):
            pass
    raw.close()


def close_now(sock: ssl.SSLSocket) -> None:
    """close_notify, then close() at once (FIN) without waiting for the peer's answer,
    as an HTTP server does after a ``Connection: close`` response.  The socket is then
    gone: data the peer sends afterwards is answered by the kernel with a RST."""
    sock.setblocking(False)
    with contextlib.suppress(OSError, ssl.SSLError, ValueError):
        # Sends close_notify; the peer's has not come yet, so this "fails" with
        # SSLWantReadError once our alert is written, which is all we want.
        sock.unwrap()
    sock.close()
