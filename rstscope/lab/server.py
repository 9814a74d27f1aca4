"""Lab endpoint: a TLS streaming (SSE-like) HTTP/1.1 server on the real Linux stack.

Run inside the server namespace::

    python -m rstscope.lab.server --bind 203.0.113.2 --port 443 --cert c.pem --key k.pem \
        --schedule "d,d,s4,d,abort"

The schedule says what to do for each request, step by step:

``d``            send one event-stream chunk
``d<bytes>``     send one event of about that many bytes (an LLM token delta, say)
``r<n>x<step>``  repeat the next step ``n`` times (``r40x0.05,d150`` = 40 events,
                 one every 0.05 s); keeps long event streams short on the command line
``s<seconds>``   stay silent (the idle gaps middleboxes time out on)
``end``          finish the response (terminating chunk) and wait for the next request
``close``        finish the response and close at once (the response says
                 ``Connection: close``): close_notify and FIN, without waiting for
                 the peer, so whatever the client sends next meets a closed socket
``graceful``     TLS close_notify then FIN
``abort``        SO_LINGER 0 then close: the kernel sends a RST
``idle-abort<seconds>``  stay silent, then abort (a server idle timeout)
``hold``         keep the connection open until the peer goes away

It prints one JSON line per event on stdout, so the runner can see what happened.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import time
from collections.abc import Sequence

from rstscope.lab.socket_ends import abort, close_gracefully, close_now, log_event

HEADER = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
          b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
#: The same head for a response after which the server closes.
HEADER_CLOSE = HEADER.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")


def _read_request(conn: ssl.SSLSocket) -> bool:
    """Read one request head; False when the peer closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(4096)
        if not data:
            return False
        buf += data
    return True


def _chunk(text: bytes) -> bytes:
    return f"{len(text):x}\r\n".encode() + text + b"\r\n"


def _expand(steps: Sequence[str]) -> list[str]:
    """``r<n>x<sleep>`` followed by an event step: n times (event, sleep)."""
    out: list[str] = []
    i = 0
    while i < len(steps):
        step = steps[i]
        if step.startswith("r") and "x" in step and i + 1 < len(steps):
            n, pause = step[1:].split("x", 1)
            out += [steps[i + 1], f"s{pause}"] * int(n)
            i += 2
            continue
        out.append(step)
        i += 1
    return out


def serve_connection(conn: ssl.SSLSocket, steps: Sequence[str]) -> None:
    """Answer requests on one connection following ``steps`` for each."""
    while True:
        if not _read_request(conn):
            log_event("peer-closed")
            conn.close()
            return
        log_event("request")
        conn.sendall(HEADER_CLOSE if "close" in steps else HEADER)
        n = 0
        for step in _expand(steps):
            if step == "d" or (step.startswith("d") and step[1:].isdigit()):
                n += 1
                text = f"data: chunk {n}".encode()
                if step != "d":
                    text = text.ljust(max(len(text), int(step[1:]) - 2), b".")
                conn.sendall(_chunk(text + b"\n\n"))
                log_event("chunk", n=n)
            elif step.startswith("s"):
                time.sleep(float(step[1:]))
            elif step == "end":
                conn.sendall(b"0\r\n\r\n")
                log_event("response-end")
                break
            elif step == "close":
                conn.sendall(b"0\r\n\r\n")
                log_event("response-end")
                close_now(conn)
                log_event("closed", how="close-after-response")
                return
            elif step == "graceful":
                close_gracefully(conn)
                log_event("closed", how="graceful")
                return
            elif step == "abort":
                abort(conn)
                log_event("closed", how="abort")
                return
            elif step.startswith("idle-abort"):
                time.sleep(float(step[len("idle-abort"):]))
                abort(conn)
                log_event("closed", how="idle-abort")
                return
            elif step == "hold":
                conn.settimeout(None)
                while conn.recv(4096):
                    pass
                log_event("peer-closed")
                conn.close()
                return
            else:
                raise SystemExit(f"unknown schedule step {step!r}")
        else:
            # Schedule ran out without an explicit end: close gracefully.
            close_gracefully(conn)
            log_event("closed", how="graceful")
            return


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.server")
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, default=443)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--schedule", default="d,d,d,end")
    ap.add_argument("--connections", type=int, default=1, help="serve this many, then exit")
    ap.add_argument("--handshake-delay-s", type=float, default=0.0,
                    help="wait this long after accept before reading the ClientHello "
                         "(a far or busy server; lets an on-path injector win the race)")
    args = ap.parse_args(argv)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(16)
    log_event("listening", port=args.port)
    steps = [s.strip() for s in args.schedule.split(",") if s.strip()]
    for _ in range(args.connections):
        raw, peer = lsock.accept()
        log_event("accepted", peer=peer[0], port=peer[1])
        time.sleep(args.handshake_delay_s)
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
            serve_connection(conn, steps)
        except (OSError, ssl.SSLError) as exc:
            # A reset from the peer or a middlebox is an outcome here, not a failure.
            log_event("error", error=type(exc).__name__, detail=str(exc))
            raw.close()
    lsock.close()


if __name__ == "__main__":
    main()
    print(json.dumps({"event": "exit"}), flush=True)
