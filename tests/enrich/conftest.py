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

from rstscope.enrich import FlowKey
from tests.loopback import Tcpdump

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
    ssl_certificate {tmp}/cert.pem;
    ssl_certificate_key {tmp}/key.pem;
{servers}
}}
"""

SERVER = """
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_protocols {protocols};
        location /slow {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_read_timeout {proxy_read_s}s;
        }}
        location /ok {{ return 200 "hello\\n"; }}
    }}
"""

#: The bench's listeners: TLS 1.2+1.3 (main), TLS 1.2 only, TLS 1.3 only.
PROTOCOLS = {"main": "TLSv1.2 TLSv1.3", "tls12": "TLSv1.2", "tls13": "TLSv1.3"}
#: nginx's proxy_read_timeout and keepalive_timeout on the bench (seconds).
PROXY_READ_S = 1
IDLE_S = 2


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
    """nginx + silent upstream + tcpdump on lo (``tests.loopback.Tcpdump``), for one test module."""

    tmp: Path
    ports: dict[str, int]
    pcap: Path
    keylog: Path
    tcpdump: Tcpdump | None = None
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.ports["main"]

    def client(self, *, listener: str = "main", alpn: str = "h2", tls13: bool = True
               ) -> H2Client:
        return H2Client(self.ports[listener], self.keylog, alpn=alpn, tls13=tls13)

    def failed_handshake(self, *, listener: str, max_version: ssl.TLSVersion) -> int:
        """A client limited to ``max_version``; when the server refuses it, abort with RST.

        Returns the client's port.
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = max_version
        raw = socket.create_connection(("127.0.0.1", self.ports[listener]), timeout=10)
        sock = ctx.wrap_socket(raw, server_hostname="rst.example",
                               do_handshake_on_connect=False)
        port = int(sock.getsockname()[1])
        with contextlib.suppress(ssl.SSLError, OSError):
            sock.do_handshake()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        return port

    def stop_capture(self) -> Path:
        tcpdump = self.tcpdump
        if tcpdump is not None and tcpdump.proc.poll() is None:
            # A loaded machine can delay tcpdump; stop only once the file has been
            # quiet for a while, so the last segments are written.
            last, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 15
            while time.monotonic() < deadline:
                size = self.pcap.stat().st_size if self.pcap.exists() else 0
                if size != last:
                    last, quiet_since = size, time.monotonic()
                elif time.monotonic() - quiet_since > 0.5:
                    break
                time.sleep(0.05)
            tcpdump.stop(settle_s=0)
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
        self.local_port = int(self.sock.getsockname()[1])
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
        """RST_STREAM with CANCEL (8), as a client giving up on a request does."""
        self.conn.reset_stream(sid, error_code=8)
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


def bench_available() -> None:
    for tool in ("nginx", "tcpdump", "openssl", "tshark", "editcap"):
        _need(tool)
    pytest.importorskip("h2")
    if os.geteuid() != 0:
        pytest.skip("tcpdump on lo needs root")


@contextlib.contextmanager
def tls_bench_at(tmp: Path) -> Iterator[TlsBench]:
    """Start nginx (three TLS listeners), the silent upstream and tcpdump; tear all down."""
    bench_available()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=rst.example", "-keyout", str(tmp / "key.pem"),
                    "-out", str(tmp / "cert.pem")], check=True, capture_output=True)
    upstream = SilentUpstream()
    ports = {name: _free_port() for name in PROTOCOLS}
    servers = "".join(SERVER.format(port=ports[n], protocols=p, upstream_port=upstream.port,
                                    proxy_read_s=PROXY_READ_S) for n, p in PROTOCOLS.items())
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, idle_s=IDLE_S, servers=servers))
    bench = TlsBench(tmp=tmp, ports=ports, pcap=tmp / "lo.pcap", keylog=tmp / "keys.log")
    try:
        bpf = " or ".join(f"tcp port {p}" for p in ports.values())
        bench.tcpdump = Tcpdump(bench.pcap, bpf)
        nginx = subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(conf),
                                  "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        bench._procs.append(nginx)
        # Wait for nginx through its pid file rather than by connecting, so that
        # no probe connections (and their resets) end up in the capture.
        deadline = time.monotonic() + 10
        while not (tmp / "nginx.pid").exists():
            if time.monotonic() > deadline or nginx.poll() is not None:
                raise RuntimeError("nginx did not start: " + (tmp / "error.log").read_text())
            time.sleep(0.05)
        time.sleep(0.2)
        yield bench
    finally:
        for proc in reversed(bench._procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if bench.tcpdump is not None:
            bench.tcpdump.stop(settle_s=0)
        upstream.close()


def tshark_resets(pcap: Path, server_ports: set[int]) -> list[dict[str, object]]:
    """ResetRecord-like dicts for every RST, built from tshark (not from rstscope).

    ``direction``/``sender`` come from the bench's known server ports.
    """
    out = subprocess.run(["tshark", "-n", "-r", str(pcap), "-Y", "tcp.flags.reset==1",
                          "-T", "fields", "-E", "separator=/t", "-e", "frame.number",
                          "-e", "frame.time_epoch", "-e", "ip.src", "-e", "tcp.srcport",
                          "-e", "ip.dst", "-e", "tcp.dstport"],
                         capture_output=True, text=True, check=True).stdout
    recs: list[dict[str, object]] = []
    for line in out.splitlines():
        frame, t, src, sport, dst, dport = line.split("\t")
        sec, _, frac = t.partition(".")
        server = int(sport) in server_ports
        recs.append({
            "frame": int(frame), "file_id": 0, "flow_id": None,
            "ts_ns": int(sec) * 10**9 + int((frac + "0" * 9)[:9]),
            "src": src, "sport": int(sport), "dst": dst, "dport": int(dport),
            "direction": "resp" if server else "orig",
            "origin": "server" if server else "client",
            "sender": "server-endpoint" if server else "client-endpoint",
            "confidence": 0.5, "cause": "core verdict", "advice": ["core advice"],
        })
    return recs


class Recording:
    def __init__(self, bench: TlsBench, pcap: Path, ports: dict[str, int]) -> None:
        self.bench = bench
        self.pcap = pcap
        self.keylog = bench.keylog
        self.client_ports = ports

    def key(self, scenario: str) -> FlowKey:
        listener = {"tls12-close": "tls12", "fatal-alert": "tls13"}.get(scenario, "main")
        return FlowKey.of("127.0.0.1", self.client_ports[scenario], "127.0.0.1",
                          self.bench.ports[listener])


def record_scenarios(bench: TlsBench) -> dict[str, int]:
    ports: dict[str, int] = {}
    # proxy-timeout-reuse: 504 from nginx's proxy_read_timeout, GOAWAY after keepalive
    # idle, then the client reuses the dead connection -> RST from the server side.
    c = bench.client()
    ports["proxy-timeout-reuse"] = c.local_port
    c.get("/slow")
    assert c.read_until("StreamEnded", PROXY_READ_S + 5) is not None
    assert c.read_until("ConnectionTerminated", IDLE_S + 5) is not None
    time.sleep(0.3)
    c.ping_after_close()
    time.sleep(0.3)
    c.abort()
    # proxy-504-abort: the client aborts right after the 504.
    c = bench.client()
    ports["proxy-504-abort"] = c.local_port
    c.get("/slow")
    assert c.read_until("StreamEnded", PROXY_READ_S + 5) is not None
    c.abort()
    # close-notify: a complete exchange, TLS close_notify, then SO_LINGER 0.
    c = bench.client()
    ports["close-notify"] = c.local_port
    c.get("/ok")
    assert c.read_until("StreamEnded", 5) is not None
    c.close_notify_then_abort()
    # stream-cancel: RST_STREAM CANCEL on a pending request, then abort.
    c = bench.client()
    ports["stream-cancel"] = c.local_port
    sid = c.get("/slow")
    time.sleep(0.1)
    c.cancel(sid)
    time.sleep(0.2)
    c.abort()
    # tls12-close: TLS 1.2, where an alert's record type (21) stays visible.
    c = bench.client(listener="tls12", tls13=False)
    ports["tls12-close"] = c.local_port
    c.get("/ok")
    assert c.read_until("StreamEnded", 5) is not None
    c.close_notify_then_abort()
    # fatal-alert: a TLS 1.2-only client against a TLS 1.3-only server.
    ports["fatal-alert"] = bench.failed_handshake(listener="tls13",
                                                  max_version=ssl.TLSVersion.TLSv1_2)
    time.sleep(0.2)
    return ports


@pytest.fixture(scope="session")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    """All bench scenarios recorded once per test session (about 5 s of real traffic)."""
    tmp = tmp_path_factory.mktemp("tlsbench")
    with tls_bench_at(tmp) as bench:
        ports = record_scenarios(bench)
        pcap = bench.stop_capture()
        yield Recording(bench, pcap, ports)


@pytest.fixture(scope="session")
def enriched_keys(recording: Recording):
    """The public API path (rstscope reader + editcap cut + pyshark), with the key log."""
    from rstscope.enrich import enrich_capture

    return enrich_capture(recording.pcap, keylog=recording.keylog)


@pytest.fixture(scope="session")
def enriched_opaque(recording: Recording):
    from rstscope.enrich import enrich_capture

    return enrich_capture(recording.pcap)


@pytest.fixture(scope="session")
def bench_resets(recording: Recording) -> list[dict[str, object]]:
    return tshark_resets(recording.pcap, set(recording.bench.ports.values()))


