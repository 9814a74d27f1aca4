"""A real loopback TLS + HTTP/2 bench for the enrichment tests.

nginx terminates TLS (HTTP/2 via ALPN) on 127.0.0.1 and proxies ``/slow`` to a
silent upstream, so ``proxy_read_timeout`` expires and nginx answers 504.  Its
``keepalive_timeout`` closes idle HTTP/2 connections with GOAWAY.  The client
is Python ``ssl`` + the ``h2`` state machine, writing an SSLKEYLOGFILE, so the
tests decide exactly which side resets and when.  Real tcpdump records ``lo``.
Everything stays on loopback and is torn down even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout {idle_s}s;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        ssl_protocols {protocols};
        location /slow {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_read_timeout {proxy_read_s}s;
        }}
        location /ok {{ return 200 "hello\\n"; }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


class SilentUpstream:
    """Accepts connections and never answers: the backend that makes nginx time out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()
        self._thread.join(timeout=2)


@dataclass
class TlsBench:
    """nginx + silent upstream + tcpdump on lo, all for one test."""

    tmp: Path
    port: int
    pcap: Path
    keylog: Path
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def client(self, *, alpn: str = "h2", tls13: bool = True) -> H2Client:
        return H2Client(self.port, self.keylog, alpn=alpn, tls13=tls13)

    def stop_capture(self) -> Path:
        tcpdump = self._procs[0]
        if tcpdump.poll() is None:
            time.sleep(0.3)  # let the last segments reach the ring before tcpdump flushes
            tcpdump.send_signal(signal.SIGINT)
            tcpdump.wait(timeout=10)
        return self.pcap


class H2Client:
    """A deliberately scriptable HTTP/2 client: each step is explicit."""

    def __init__(self, port: int, keylog: Path, *, alpn: str, tls13: bool) -> None:
        import h2.config
        import h2.connection

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.keylog_filename = str(keylog)
        ctx.set_alpn_protocols([alpn])
        if not tls13:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="rst.example")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.events: list[object] = []

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def get(self, path: str) -> int:
        sid = int(self.conn.get_next_available_stream_id())
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                     (":authority", "rst.example"), (":path", path)],
                               end_stream=True)
        self.flush()
        return sid

    def read_until(self, kind: str, timeout_s: float) -> object | None:
        """Read until an h2 event of class ``kind`` (e.g. "StreamEnded") arrives."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            if not data:
                return None
            for ev in self.conn.receive_data(data):
                self.events.append(ev)
                if type(ev).__name__ == kind:
                    self.flush()
                    return ev
            self.flush()
        return None

    def cancel(self, sid: int) -> None:
        self.conn.reset_stream(sid)  # RST_STREAM CANCEL... h2 default error code is NO_ERROR
        self.flush()

    def abort(self) -> None:
        """close() with SO_LINGER 0: the kernel sends RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close_notify_then_abort(self) -> None:
        """Send TLS close_notify (unwrap), then abort the TCP connection."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            # unwrap() waits for the peer's close_notify; nginx may just close instead.
            self.sock.unwrap().close()
        except (OSError, ssl.SSLError):
            self.sock.close()

    def ping_after_close(self) -> None:
        """Reuse the connection after the server has gone: the server host answers RST.

        h2 refuses to send after GOAWAY, as a careful client would; a stale pooled
        connection in a real SDK does not, so write a raw PING frame (type 6).
        """
        frame = struct.pack("!I", 8)[1:] + bytes([6, 0]) + struct.pack("!I", 0) + b"stale!!!"
        with contextlib.suppress(OSError):
            self.sock.sendall(frame)


@pytest.fixture
def tls_bench(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[TlsBench]:
    """Started nginx/upstream/tcpdump; parameters via ``@pytest.mark.parametrize`` indirect."""
    for tool in ("nginx", "tcpdump", "openssl"):
        _need(tool)
    pytest.importorskip("h2")
    if os.geteuid() != 0:
        pytest.skip("tcpdump on lo needs root")
    params: dict[str, object] = getattr(request, "param", {}) or {}
    idle_s = int(params.get("idle_s", 2))  # type: ignore[call-overload]
    tls12 = bool(params.get("tls12", False))
    tmp = tmp_path
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=rst.example", "-keyout", str(tmp / "key.pem"),
                    "-out", str(tmp / "cert.pem")], check=True, capture_output=True)
    upstream = SilentUpstream()
    port = _free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream_port=upstream.port,
                                      idle_s=idle_s, proxy_read_s=1,
                                      protocols="TLSv1.2" if tls12 else "TLSv1.2 TLSv1.3"))
    bench = TlsBench(tmp=tmp, port=port, pcap=tmp / "lo.pcap", keylog=tmp / "keys.log")
    tcpdump_log = tmp / "tcpdump.log"
    nginx = None
    try:
        with tcpdump_log.open("wb") as log:
            tcpdump = subprocess.Popen(
                ["tcpdump", "-n", "-U", "-i", "lo", "-w", str(bench.pcap),
                 f"tcp port {port}"], stderr=log, stdout=subprocess.DEVNULL)
        bench._procs.append(tcpdump)
        deadline = time.monotonic() + 10
        while b"listening on" not in tcpdump_log.read_bytes():
            if time.monotonic() > deadline or tcpdump.poll() is not None:
                raise RuntimeError(f"tcpdump did not start: {tcpdump_log.read_text()}")
            time.sleep(0.02)
        nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf),
                                  "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        bench._procs.append(nginx)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or nginx.poll() is not None:
                    raise RuntimeError("nginx did not start: "
                                       + (tmp / "error.log").read_text()) from None
                time.sleep(0.05)
        # That probe connection is traffic too; the tests select flows by their own port.
        yield bench
    finally:
        for proc in reversed(bench._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is bench._procs[0] else signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        upstream.close()
