"""Lab endpoint: a client that behaves like an LLM SDK streaming a response.

It sends a request, reads the event stream with a read timeout, and then
either aborts (SO_LINGER 0, what many SDKs do on timeout or cancel) or closes
gracefully.  With ``--requests 2 --reuse-after-s N`` it keeps the connection in
its pool and reuses it after an idle period: the classic stale-connection RST.
TLS secrets go to ``--keylog`` in SSLKEYLOGFILE format so captures can be
decrypted in Wireshark.

Prints one JSON line per event on stdout.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time
from collections.abc import Sequence

from rstscope.lab.socket_ends import abort, close_gracefully, log_event

END = b"0\r\n\r\n"


def _complete_by_length(got: bytes) -> bool:
    """A response with Content-Length (a proxy's 502/504 page) is complete when its
    body is in; the lab server itself always streams chunked."""
    head, sep, body = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return False
    return False


def read_response(conn: ssl.SSLSocket, *, close_after_bytes: int) -> str:
    """Read until the terminating chunk.  Returns how the read ended."""
    got = b""
    while True:
        try:
            data = conn.recv(65536)
        except TimeoutError:
            log_event("read-timeout", bytes=len(got))
            return "timeout"
        except ssl.SSLZeroReturnError:
            log_event("eof", bytes=len(got), tls="close_notify")
            return "eof"
        except (ConnectionResetError, ssl.SSLError, OSError) as exc:
            log_event("error", error=type(exc).__name__, detail=str(exc), bytes=len(got))
            return "error"
        if not data:
            log_event("eof", bytes=len(got))
            return "eof"
        got += data
        if close_after_bytes and len(got) >= close_after_bytes:
            log_event("stop-reading", bytes=len(got))
            return "stopped"
        if got.endswith(END) or _complete_by_length(got):
            log_event("response-end", bytes=len(got))
            return "complete"


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.client")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--sni", default="api.lab.test")
    ap.add_argument("--keylog", default=None)
    ap.add_argument("--requests", type=int, default=1)
    ap.add_argument("--reuse-after-s", type=float, default=0.0)
    ap.add_argument("--read-timeout-s", type=float, default=30.0)
    ap.add_argument("--on-timeout", choices=("abort", "graceful"), default="abort")
    ap.add_argument("--on-done", choices=("abort", "graceful", "close"), default="graceful")
    ap.add_argument("--close-after-bytes", type=int, default=0,
                    help="stop reading after this many bytes and close with data unread")
    ap.add_argument("--done-delay-s", type=float, default=0.0,
                    help="after a complete response wait this long before closing "
                         "(a pool that closes the connection a moment later)")
    ap.add_argument("--linger-s", type=float, default=0.0,
                    help="after the last step keep the process alive (sockets closed) this long")
    args = ap.parse_args(argv)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The lab's certificate is self-signed per run; verification is not what's tested.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if args.keylog:
        ctx.keylog_filename = args.keylog
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.settimeout(10)
    try:
        raw.connect((args.host, args.port))
        log_event("connected", sport=raw.getsockname()[1])
        conn = ctx.wrap_socket(raw, server_hostname=args.sni)
    except (OSError, ssl.SSLError) as exc:
        log_event("connect-error", error=type(exc).__name__, detail=str(exc))
        raw.close()
        time.sleep(args.linger_s)
        return
    log_event("tls-up", version=conn.version())
    conn.settimeout(args.read_timeout_s)
    outcome = "complete"
    for i in range(args.requests):
        if i:
            time.sleep(args.reuse_after_s)
        try:
            conn.sendall(f"GET /v1/stream?n={i} HTTP/1.1\r\nHost: {args.sni}\r\n"
                         "Accept: text/event-stream\r\n\r\n".encode())
        except (OSError, ssl.SSLError) as exc:
            log_event("send-error", error=type(exc).__name__, detail=str(exc))
            outcome = "error"
            break
        log_event("request", n=i)
        outcome = read_response(conn, close_after_bytes=args.close_after_bytes)
        if outcome != "complete":
            break
    if outcome == "timeout":
        how = args.on_timeout
    elif outcome == "stopped":
        # Let the rest of the burst land in the receive buffer, then close with it unread.
        time.sleep(0.3)
        how = "close"
    elif outcome == "error":
        how = "close"
    else:
        how = args.on_done
        time.sleep(args.done_delay_s)
    if how == "abort":
        abort(conn)
    elif how == "graceful":
        close_gracefully(conn)
    else:
        conn.close()
    log_event("closed", how=how)
    time.sleep(args.linger_s)


if __name__ == "__main__":
    main()
