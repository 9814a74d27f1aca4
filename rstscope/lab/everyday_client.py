"""Lab clients for the everyday causes of ECONNRESET (issue 17).

Same first arguments as :mod:`rstscope.lab.client` (``--host --port --sni
--keylog``) plus ``--mode``:

``pool``   Python's ``http.client`` connection, kept and reused after
           ``--reuse-after-s`` like any connection pool (urllib3, requests).
``total``  one streaming request with a *total* deadline (``--total-s``, like an
           SDK's ``timeout=``), whatever the activity; then an abortive close.
``many``   ``--conns`` TLS connections opened at once (an overloaded server
           or balancer); each one sends a request and reads with a timeout.

It prints one JSON line per event on stdout.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Sequence

from rstscope.lab.socket_ends import abort, log_event


def _ctx(keylog: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # per-run self-signed certificate
    ctx.verify_mode = ssl.CERT_NONE
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def run_pool(args: argparse.Namespace, ctx: ssl.SSLContext) -> None:
    conn = http.client.HTTPSConnection(args.host, args.port, context=ctx, timeout=10)
    for i in range(2):
        if i:
            time.sleep(args.reuse_after_s)
        try:
            conn.request("GET", f"/v1/items?n={i}", headers={"Host": args.sni})
            log_event("request", n=i)
            resp = conn.getresponse()
            body = resp.read()
            log_event("response", n=i, status=resp.status, bytes=len(body))
        except (OSError, http.client.HTTPException) as exc:
            # ECONNRESET / RemoteDisconnected: what the application sees.
            log_event("error", n=i, error=type(exc).__name__, detail=str(exc))
            break
    conn.close()
    log_event("closed")


def _connect(args: argparse.Namespace, ctx: ssl.SSLContext) -> ssl.SSLSocket | None:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    raw = socket.socket(family, socket.SOCK_STREAM)
    raw.settimeout(args.connect_timeout_s)
    try:
        raw.connect((args.host, args.port))
        log_event("connected", sport=raw.getsockname()[1])
        return ctx.wrap_socket(raw, server_hostname=args.sni)
    except (OSError, ssl.SSLError) as exc:
        log_event("connect-error", error=type(exc).__name__, detail=str(exc))
        raw.close()
        return None


def run_total(args: argparse.Namespace, ctx: ssl.SSLContext) -> None:
    conn = _connect(args, ctx)
    if conn is None:
        return
    conn.sendall(f"GET /v1/stream HTTP/1.1\r\nHost: {args.sni}\r\n\r\n".encode())
    start = time.monotonic()
    log_event("request")
    got = 0
    while True:
        left = args.total_s - (time.monotonic() - start)
        if left <= 0:
            log_event("total-timeout", bytes=got)
            abort(conn)
            break
        conn.settimeout(min(left, args.read_timeout_s))
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        except (OSError, ssl.SSLError) as exc:
            log_event("error", error=type(exc).__name__, detail=str(exc), bytes=got)
            conn.close()
            break
        if not data:
            log_event("eof", bytes=got)
            conn.close()
            break
        got += len(data)
    log_event("closed")


def _burst(args: argparse.Namespace) -> list[socket.socket]:
    """Open ``--conns`` connections at once: every SYN leaves before the first
    SYN/ACK is back, so they all find room in the server's SYN queue and their
    handshakes complete together (what a traffic spike does to a backlog)."""
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    socks = [socket.socket(family, socket.SOCK_STREAM) for _ in range(args.conns)]
    for s in socks:
        s.setblocking(False)
        s.connect_ex((args.host, args.port))
    for s in socks:
        s.setblocking(True)
    return socks


def run_many(args: argparse.Namespace, ctx: ssl.SSLContext) -> None:
    def one(i: int, raw: socket.socket | None) -> None:
        if raw is None:
            conn = _connect(args, ctx)
            if conn is None:
                return
        else:
            raw.settimeout(args.connect_timeout_s)
            try:
                conn = ctx.wrap_socket(raw, server_hostname=args.sni)
            except (OSError, ssl.SSLError) as exc:
                log_event("connect-error", n=i, error=type(exc).__name__, detail=str(exc))
                raw.close()
                return
        got = 0
        try:
            conn.sendall(f"GET /v1/q?n={i} HTTP/1.1\r\nHost: {args.sni}\r\n\r\n".encode())
            conn.settimeout(args.read_timeout_s)
            while data := conn.recv(65536):
                got += len(data)
                if data.endswith(b"0\r\n\r\n"):
                    break
            log_event("response", n=i, bytes=got)
        except (OSError, ssl.SSLError) as exc:
            log_event("error", n=i, error=type(exc).__name__, detail=str(exc), bytes=got)
        conn.close()

    raws: list[socket.socket | None] = list(_burst(args)) if args.burst else [None] * args.conns
    threads = [threading.Thread(target=one, args=(i, raw)) for i, raw in enumerate(raws)]
    for t in threads:
        t.start()
        time.sleep(args.stagger_s)
    for t in threads:
        t.join()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.everyday_client")
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--sni", default="api.lab.test")
    ap.add_argument("--keylog", default=None)
    ap.add_argument("--mode", choices=("pool", "total", "many"), required=True)
    ap.add_argument("--reuse-after-s", type=float, default=3.0)
    ap.add_argument("--total-s", type=float, default=3.0)
    ap.add_argument("--read-timeout-s", type=float, default=10.0)
    ap.add_argument("--connect-timeout-s", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--stagger-s", type=float, default=0.0)
    ap.add_argument("--burst", action="store_true", help="many: send every SYN at once")
    ap.add_argument("--linger-s", type=float, default=0.0)
    args = ap.parse_args(argv)
    ctx = _ctx(args.keylog)
    {"pool": run_pool, "total": run_total, "many": run_many}[args.mode](args, ctx)
    time.sleep(args.linger_s)


if __name__ == "__main__":
    main()
