"""Real captures for plot/report tests: real Linux TCP on 127.0.0.1, captured by real tcpdump.

Each builder starts ``tcpdump -i lo`` with a port filter, waits until it is
listening, runs a tiny client/server exchange that ends in a RST the test
knows about (an abortive close with SO_LINGER 0), then stops tcpdump with
SIGINT so it flushes.  Traffic stays on loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def needs_tcpdump() -> None:
    if shutil.which("tcpdump") is None:
        if os.environ.get("CI"):
            pytest.fail("tcpdump is not installed, but CI must provide it")
        pytest.skip("tcpdump is not installed")
    if os.geteuid() != 0:
        pytest.skip("capturing on loopback needs root (CAP_NET_RAW)")


@dataclass(frozen=True)
class Exchange:
    """What a builder did, for the test to check the plot against."""

    path: Path
    server_port: int
    client_ports: tuple[int, ...]
    idle_s: float
    rst_from: str  # "client" or "server"


class _Tcpdump:
    def __init__(self, path: Path, bpf: str, snaplen: int = 256) -> None:
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", str(snaplen), "-B", "16384",
             "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "listening on" in line or not line:
                break
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            time.sleep(0.3)  # let the last segments reach the ring buffer
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()


def _listener() -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv


def idle_then_abort(path: Path, *, idle_s: float = 1.6, flows: int = 1,
                    chunks: int = 30) -> Exchange:
    """``flows`` connections; each streams ``chunks`` chunks, goes idle ``idle_s``,
    then the client aborts (RST from the client).  An extra control connection
    closes gracefully (no RST)."""
    needs_tcpdump()
    srv = _listener()
    port = srv.getsockname()[1]
    dump = _Tcpdump(path, f"tcp port {port}")
    client_ports: list[int] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            for _ in range(flows + 1):
                conn, _addr = srv.accept()
                with conn:
                    req = conn.recv(100)
                    n = chunks if req.startswith(b"GET") else 1
                    for i in range(n):
                        conn.sendall(b"data: %d\n\n" % i + b"x" * (50 * (i % 20)))
                        time.sleep(0.005)
                    if req.startswith(b"BYE"):
                        continue  # graceful close by the server's with-block
                    conn.settimeout(idle_s + 5)
                    try:
                        while conn.recv(100):
                            pass
                    except OSError:
                        pass  # the client's RST
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        for _ in range(flows):
            c = socket.create_connection(("127.0.0.1", port))
            client_ports.append(c.getsockname()[1])
            c.sendall(b"GET /stream\r\n")
            got = 0
            while got < chunks:
                data = c.recv(65536)
                if not data:
                    break
                got += data.count(b"\n\n")
            time.sleep(idle_s)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
            c.close()
        c = socket.create_connection(("127.0.0.1", port))
        client_ports.append(c.getsockname()[1])
        c.sendall(b"BYE\r\n")
        while c.recv(65536):
            pass
        c.close()
        t.join(timeout=idle_s + 10)
    finally:
        srv.close()
        dump.stop()
    if errors:
        raise errors[0]
    return Exchange(path, port, tuple(client_ports), idle_s, "client")


def client_hello(sni: bytes) -> bytes:
    """A minimal TLS 1.2-style ClientHello record carrying ``sni`` (RFC 8446 §4.1.2, RFC 6066 §3)."""
    name = struct.pack("!BH", 0, len(sni)) + sni
    sni_ext = struct.pack("!HH", 0, len(name) + 2) + struct.pack("!H", len(name)) + name
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00"  # version, random, empty session id
            + struct.pack("!H", 4) + b"\x13\x01\xc0\x2f"  # two cipher suites
            + b"\x01\x00"  # null compression
            + struct.pack("!H", len(sni_ext)) + sni_ext)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def hello_then_server_abort(path: Path, sni: bytes) -> Exchange:
    """The client sends a ClientHello with ``sni``; the server answers with a RST
    (SO_LINGER 0 close), the pattern of SNI filtering."""
    needs_tcpdump()
    srv = _listener()
    port = srv.getsockname()[1]
    dump = _Tcpdump(path, f"tcp port {port}")
    try:
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        c.sendall(client_hello(sni))
        conn.recv(4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
        conn.close()
        with contextlib.suppress(OSError):
            c.recv(100)
        cport = c.getsockname()[1] if c.fileno() >= 0 else 0
        c.close()
    finally:
        srv.close()
        dump.stop()
    return Exchange(path, port, (cport,), 0.0, "server")


def pingpong_then_abort(path: Path, *, rounds: int = 50_000, idle_s: float = 1.2) -> Exchange:
    """One flow of ``rounds`` request/echo round trips (TCP_NODELAY, so each is its own
    segment with the ACK piggybacked: ~2 packets per round), then ``idle_s`` of
    silence and a client abort.  50k rounds make a 100k-packet flow in ~3 s."""
    needs_tcpdump()
    srv = _listener()
    port = srv.getsockname()[1]
    dump = _Tcpdump(path, f"tcp port {port}", snaplen=80)
    try:
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        for s in (c, conn):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def echo() -> None:
            for _ in range(rounds):
                conn.sendall(conn.recv(100))

        t = threading.Thread(target=echo, daemon=True)
        t.start()
        for i in range(rounds):
            c.sendall(b"ping%06d" % i)
            c.recv(100)
        t.join(timeout=30)
        time.sleep(idle_s)
        cport = c.getsockname()[1]
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
        c.close()
        conn.close()
    finally:
        srv.close()
        dump.stop()
    return Exchange(path, port, (cport,), idle_s, "client")
