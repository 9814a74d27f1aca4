"""Lab servers for the everyday causes of ECONNRESET (issue 17).

Run inside the server namespace with the same arguments as
:mod:`rstscope.lab.server` (``--bind --port --cert --key``) plus ``--mode``:

``keepalive``        Python's own ``http.server`` (HTTP/1.1 keep-alive over TLS)
                     whose idle keep-alive timeout (``--keepalive-s``) closes the
                     connection with a FIN, as every real keep-alive server does.
``keepalive-timer``  the same server shape, but the keep-alive timer fires while a
                     request is already in the socket buffer, unread (an event loop
                     that runs its timers before its I/O callbacks, like Node's
                     ``keepAliveTimeout``): close() with unread data sends a RST.
``bulk``             answer one request with ``--bytes`` of body in one write: the
                     stack sends full-size segments (a path-MTU black hole eats them).
``backlog``          listen with ``--backlog``, accept one connection and hold it;
                     the others wait in (and overflow) the kernel's accept queue.

It prints one JSON line per event on stdout (``listening`` first).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer

from rstscope.lab.server import _read_request
from rstscope.lab.socket_ends import log_event

BODY = b"data: " + b"x" * 58 + b"\n\n"


def _tls(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _family(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve_keepalive(args: argparse.Namespace, ctx: ssl.SSLContext) -> None:
    keepalive_s = args.keepalive_s

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive by default
        # StreamRequestHandler applies this to the socket: waiting longer than this
        # for the next request ends the connection (http.server's keep-alive timeout).
        timeout = keepalive_s

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            log_event("request", path=self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
            log_event("response-end")

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002
            log_event("http-log", msg=format % a)

    class Server(HTTPServer):
        address_family = _family(args.bind)

        def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
            log_event("closed", how="keepalive-timeout")
            super().shutdown_request(request)

    httpd = Server((args.bind, args.port), Handler, bind_and_activate=False)
    httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    httpd.server_bind()
    httpd.server_activate()
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    log_event("listening", port=args.port)
    for _ in range(args.connections):
        httpd.handle_request()
    httpd.server_close()


def _respond(conn: ssl.SSLSocket, body: bytes) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


def serve_keepalive_timer(conn: ssl.SSLSocket, keepalive_s: float) -> None:
    if not _read_request(conn):
        return
    log_event("request")
    _respond(conn, BODY)
    log_event("response-end")
    # The keep-alive timer and the next request race; the timer's callback runs
    # first, so whatever arrived meanwhile is still unread when the socket closes.
    time.sleep(keepalive_s)
    conn.close()
    log_event("closed", how="keepalive-timer")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.everyday_server")
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--schedule", default="", help="accepted for runner compatibility")
    ap.add_argument("--mode", choices=("keepalive", "keepalive-timer", "bulk", "backlog"),
                    required=True)
    ap.add_argument("--keepalive-s", type=float, default=2.0)
    ap.add_argument("--bytes", type=int, default=65536)
    ap.add_argument("--backlog", type=int, default=1)
    ap.add_argument("--hold-s", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=1)
    args = ap.parse_args(argv)
    ctx = _tls(args.cert, args.key)
    if args.mode == "keepalive":
        serve_keepalive(args, ctx)
        return
    lsock = socket.socket(_family(args.bind), socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    if args.mode == "backlog":
        # Deferred accept (nginx 'deferred', haproxy 'defer-accept'): a connection
        # joins the accept queue with its first data, not with the handshake's ACK.
        # A burst of handshakes then all pass the SYN check while the queue is
        # empty, and overflow it together when their requests arrive.
        lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    lsock.listen(args.backlog if args.mode == "backlog" else 16)
    log_event("listening", port=args.port)
    raw, peer = lsock.accept()
    log_event("accepted", peer=peer[0], port=peer[1])
    try:
        conn = ctx.wrap_socket(raw, server_side=True)
        if args.mode == "keepalive-timer":
            serve_keepalive_timer(conn, args.keepalive_s)
        elif args.mode == "bulk":
            if _read_request(conn):
                log_event("request")
                _respond(conn, b"x" * args.bytes)
                log_event("response-written", bytes=args.bytes)
                time.sleep(args.hold_s)
            conn.close()
        else:  # backlog: serve nothing more; the queue behind us overflows
            time.sleep(args.hold_s)
            conn.close()
    except (OSError, ssl.SSLError) as exc:
        log_event("error", error=type(exc).__name__, detail=str(exc))
        raw.close()
    log_event("exit")
    lsock.close()


if __name__ == "__main__":
    main()
