"""One probe run: connect, map the path, trigger, probe with growing TTLs, conclude.

Order of events (see docs/probe.md for the safety rules):

1. the raw sockets open first, so the SYN-ACK is seen (its TTL is the
   endpoint's reference, its ACK our sequence base);
2. the kernel connects (TLS through an in-memory BIO with ``--sni`` on an idle
   trigger, so we know the last byte we sent);
3. the guard rule goes in (our host's RSTs on this 4-tuple are dropped);
4. **path**: harmless probes with TTL 1, 2, ... on the fresh connection, until
   the endpoint answers: the routers' addresses and ``endpoint_hops``;
5. the trigger: sit silent ``--idle`` seconds, or hand the 4-tuple to the raw
   socket (the kernel socket is aborted, its RST dropped by the guard) and send
   the ClientHello / payload;
6. **hops**: the trigger segment with TTL 1, 2, ... until the first RST or the
   endpoint's answer, never more than ``--max-hops``, never faster than
   ``--interval``;
7. everything is undone in ``finally``: sockets closed, guard removed, signal
   handlers restored (SIGTERM becomes KeyboardInterrupt, like Ctrl-C).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from rstscope.errors import PrivilegeError, ToolUnavailableError, UsageError
from rstscope.probe.answer import conclude
from rstscope.probe.guard import NFT_MISSING, RstGuard
from rstscope.probe.model import Answer, Hop, ProbeResult
from rstscope.probe.net import RawIO, Received
from rstscope.probe.segments import (
    TH_ACK,
    TH_PSH,
    TH_RST,
    Segment,
    tcp_header,
    timestamp_option,
)
from rstscope.probe.seqstate import SeqState

TRIGGERS = ("idle", "sni", "data")
#: Safety floor between two probes (the issue's "at most one every 100 ms").
MIN_INTERVAL_S = 0.1
#: One segment, unfragmented on any IPv6 path (1280 - 40 - 20 - 12 of timestamps, rounded).
MAX_PAYLOAD = 1200
MAX_HOPS_LIMIT = 64
#: Advertised window of a probe.  Our kernel's real window is not visible from here;
#: any open window is harmless for a duplicate or a first segment.
PROBE_WINDOW = 502


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    host: str
    port: int
    trigger: str = "idle"
    idle_s: float = 0.0
    sni: str | None = None
    payload: bytes | None = None
    max_hops: int = 30
    interval_s: float = MIN_INTERVAL_S
    wait_s: float = 1.0
    ip_v: int | None = None  # force 4 or 6
    connect_timeout_s: float = 5.0

    def validate(self) -> None:
        if self.trigger not in TRIGGERS:
            raise UsageError(f"--trigger must be one of {', '.join(TRIGGERS)}")
        if not 1 <= self.port <= 65535:
            raise UsageError(f"port {self.port} out of range")
        if not 1 <= self.max_hops <= MAX_HOPS_LIMIT:
            raise UsageError(f"--max-hops must be 1..{MAX_HOPS_LIMIT}")
        if self.interval_s < MIN_INTERVAL_S:
            raise UsageError(f"--interval below {MIN_INTERVAL_S:g} s is not allowed "
                             "(probes are rate-limited)")
        if not 0.05 <= self.wait_s <= 30:
            raise UsageError("--wait must be 0.05..30 seconds")
        if self.idle_s < 0:
            raise UsageError("--idle must be >= 0 seconds")
        if self.trigger == "sni" and not self.sni:
            raise UsageError("--trigger sni needs --sni NAME")
        if self.sni is not None:
            _check_hostname(self.sni)
        if self.trigger == "data":
            if not self.payload:
                raise UsageError("--trigger data needs --payload FILE (non-empty)")
            if len(self.payload) > MAX_PAYLOAD:
                raise UsageError(f"--payload is {len(self.payload)} bytes; a probe carries "
                                 f"at most {MAX_PAYLOAD} (one unfragmented segment)")


def _check_hostname(name: str) -> None:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise UsageError("--sni takes a host name, not an address (TLS sends no SNI for one)")
    if not name or len(name) > 253 or any(c.isspace() for c in name):
        raise UsageError(f"--sni {name!r} is not a host name")


def parse_target(text: str, default_port: int = 443) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address."""
    host, port = text, default_port
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"bad target {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"bad target {text!r}")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, p = text.split(":")
        port = _port(p, text)
    if not host:
        raise UsageError(f"bad target {text!r}: no host")
    return host, port


def _port(p: str, text: str) -> int:
    try:
        port = int(p)
    except ValueError:
        raise UsageError(f"bad port in {text!r}") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"port out of range in {text!r}")
    return port


def resolve(host: str, port: int, ip_v: int | None) -> tuple[str, int]:
    """The one address the probe will talk to, and its IP version."""
    fam = {4: socket.AF_INET, 6: socket.AF_INET6}.get(ip_v or 0, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(host, port, fam, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve {host!r}: {exc.strerror}") from None
    addr = str(infos[0][4][0]).split("%")[0]
    return addr, 6 if infos[0][0] == socket.AF_INET6 else 4


def privilege_hint() -> str:
    return ("rstscope probe needs CAP_NET_RAW (raw sockets) and CAP_NET_ADMIN (its one nft "
            "rule): run it with sudo, e.g. 'sudo \"$(which rstscope)\" probe HOST:PORT ...'")


def check_privilege() -> None:
    """Raise :class:`PrivilegeError` (exit 77) unless raw sockets and nft rules are allowed."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except PermissionError as exc:
        raise PrivilegeError(privilege_hint()) from exc
    if not _has_cap(12):  # CAP_NET_ADMIN
        raise PrivilegeError(privilege_hint())
    if shutil.which("nft") is None:
        raise ToolUnavailableError(NFT_MISSING)


def _has_cap(bit: int) -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return os.geteuid() == 0


@contextlib.contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while probing, so one ``finally`` undoes everything."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def client_hello(name: str) -> bytes:
    """A real ClientHello naming ``name``, produced by this Python's OpenSSL and never
    sent through the kernel socket."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


class _Limiter:
    """At most one probe per ``interval_s``, across the path and the trigger."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last = -1e9

    def wait(self) -> None:
        delay = self.last + self.interval_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self.last = time.monotonic()


class Prober:
    """State of one run (sockets, guard, sequence numbers); use :func:`run_probe`."""

    def __init__(self, opts: ProbeOptions, address: str, ip_v: int,
                 on_hop: Callable[[str, Hop], None] | None = None) -> None:
        self.opts = opts
        self.address = address
        self.ip_v = ip_v
        self.on_hop = on_hop
        self.io: RawIO | None = None
        self.sock: socket.socket | None = None
        self.guard: RstGuard | None = None
        self.state = SeqState()
        self.limiter = _Limiter(opts.interval_s)
        self.ip_id_base = secrets.randbelow(0xFF00)
        self.sent_bytes = 0
        self.last_byte = b""
        self.probes_sent = 0
        self.kernel_alive = False

    # -- plumbing ---------------------------------------------------------------------
    def _drain(self, timeout_s: float = 0.0) -> list[Received]:
        assert self.io is not None
        got = self.io.poll(timeout_s)
        for r in got:
            if r.tcp is not None:
                self.state.update(r.tcp, r.at_s)
        return got

    def _wait_until(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._drain(min(left, 0.05))
        return True

    def connect(self) -> None:
        fam = socket.AF_INET6 if self.ip_v == 6 else socket.AF_INET
        self.io = RawIO(self.ip_v, self.address, self.opts.port)
        sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock = sock
        sock.settimeout(self.opts.connect_timeout_s)
        try:
            sock.connect((self.address, self.opts.port))
        except OSError as exc:
            raise UsageError(f"cannot connect to {self.opts.host}:{self.opts.port}: "
                             f"{exc.strerror or exc}") from None
        self.kernel_alive = True
        name = sock.getsockname()
        local, lport = str(name[0]).split("%")[0], int(name[1])
        self.io.set_flow(local, lport)
        self.guard = RstGuard(ip_v=self.ip_v, local=local, lport=lport, remote=self.address,
                              rport=self.opts.port)
        self.guard.install()
        if not self._wait_until(lambda: self.state.synack_ttl is not None, 1.0):
            raise UsageError("the handshake's SYN-ACK was not seen on the raw socket")
        if self.opts.trigger == "idle" and self.opts.sni:
            self._tls_handshake(self.opts.sni)

    def _send_all(self, data: bytes) -> None:
        assert self.sock is not None
        if data:
            self.sock.sendall(data)
            self.sent_bytes += len(data)
            self.last_byte = data[-1:]

    def _tls_handshake(self, name: str) -> None:
        """TLS over the kernel socket through memory BIOs: we see every byte we send."""
        assert self.sock is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname=name)
        deadline = time.monotonic() + self.opts.connect_timeout_s
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_all(out.read())
                if time.monotonic() > deadline:
                    raise UsageError("TLS handshake timed out") from None
                try:
                    data = self.sock.recv(65536)
                except OSError as exc:
                    raise UsageError(f"TLS handshake failed: {exc.strerror or exc}") from None
                if not data:
                    raise UsageError("the server closed during the TLS handshake") from None
                inc.write(data)
            except ssl.SSLError as exc:
                raise UsageError(f"TLS handshake failed: {exc.reason or exc}") from None
        self._send_all(out.read())
        # TLS 1.3 servers send session tickets right after the handshake: let them
        # arrive (and read them) before mapping the path, so the path sees a quiet flow.
        self._quiet(0.2, 1.0)
        self.socket_alive()

    def _quiet(self, quiet_s: float, max_s: float) -> None:
        """Drain until no segment arrived for ``quiet_s`` (at most ``max_s``)."""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            if not self._drain(quiet_s):
                return

    def _all_acked(self) -> bool:
        st = self.state
        if st.snd_nxt is None or st.isn1 is None:
            return False
        return st.snd_nxt == (st.isn1 + self.sent_bytes) % 2**32

    def socket_alive(self) -> bool:
        """No FIN or RST reached our kernel socket (pending data is read and dropped)."""
        if self.sock is None or not self.kernel_alive:
            return False
        # Non-blocking: a socket timeout would turn "nothing to read" into an OSError.
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536, socket.MSG_DONTWAIT)
                if not data:
                    return False
        except BlockingIOError:
            return not self.state.closed_by_peer
        except OSError:
            return False

    def abort_kernel_socket(self) -> None:
        """Forget the connection in our kernel without telling anyone: SO_LINGER 0 makes
        close() send a RST, which the guard drops."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.sock = None
        self.kernel_alive = False

    # -- probing ----------------------------------------------------------------------
    def _segment(self, *, seq: int, payload: bytes, flags: int) -> bytes:
        st = self.state
        assert st.rcv_nxt is not None and self.io is not None and self.io.lport is not None
        ts = st.our_ts_val(time.monotonic())
        opts = timestamp_option(ts, st.ts_ecr or 0) if ts is not None else b""
        return tcp_header(sport=self.io.lport, dport=self.opts.port, seq=seq, ack=st.rcv_nxt,
                          flags=flags, window=PROBE_WINDOW, options=opts,
                          payload=payload)

    def probe(self, ttl: int, *, seq: int, payload: bytes, flags: int, linger: bool) -> Hop:
        """Send one segment with ``ttl`` and classify what comes back within ``--wait``."""
        assert self.io is not None
        self.limiter.wait()
        ip_id = (self.ip_id_base + ttl) & 0xFFFF
        segment = self._segment(seq=seq, payload=payload, flags=flags)
        t0 = time.monotonic()
        self.io.send(ttl=ttl, segment=segment, ip_id=ip_id)
        self.probes_sent += 1
        deadline = t0 + self.opts.wait_s
        rst: Received | None = None
        ack: Received | None = None
        icmp: Received | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for r in self._drain(left):
                if r.tcp is not None:
                    if r.tcp.flags & TH_RST:
                        rst = rst or r
                    elif ack is None and self._answers(r.tcp, seq, payload):
                        ack = r
                elif r.icmp is not None and r.icmp.seq == seq % 2**32 and icmp is None:
                    if self.ip_v == 4 and r.icmp.quoted_ip_id not in (ip_id, None):
                        continue  # a late answer to an earlier probe
                    icmp = r
            if rst is not None and (icmp is not None or not linger):
                break
            if not linger and (icmp is not None or ack is not None):
                break
        if rst is not None:
            assert rst.tcp is not None
            return Hop(ttl=ttl, reply="rst", from_addr=rst.tcp.src,
                       rtt_ms=_ms(rst.at_s - t0), rst_ttl=rst.tcp.ttl, rst_ip_id=rst.tcp.ip_id,
                       icmp_from=icmp.icmp.src if icmp is not None and icmp.icmp else None)
        if ack is not None:
            assert ack.tcp is not None
            return Hop(ttl=ttl, reply="ack", from_addr=ack.tcp.src, rtt_ms=_ms(ack.at_s - t0))
        if icmp is not None:
            assert icmp.icmp is not None
            return Hop(ttl=ttl, reply=icmp.icmp.kind, from_addr=icmp.icmp.src,
                       rtt_ms=_ms(icmp.at_s - t0))
        return Hop(ttl=ttl, reply="none", from_addr=None, rtt_ms=None)

    @staticmethod
    def _answers(seg: Segment, seq: int, payload: bytes) -> bool:
        """Is ``seg`` the endpoint answering our probe?  A bare ACK always is (an
        endpoint ACKs a duplicate at once); a segment with data only if it
        acknowledges the probe's new bytes: data sent for other reasons (a TLS
        session ticket arriving late) must not pass for an answer."""
        if seg.payload_len == 0:
            return True
        return bool(payload) and seg.ack == (seq + len(payload)) % 2**32

    def trace(self, phase: str, *, seq: int, payload: bytes, flags: int, linger: bool,
              stop_after: int | None) -> list[Hop]:
        hops: list[Hop] = []
        last = min(self.opts.max_hops, stop_after if stop_after is not None else 255)
        for ttl in range(1, last + 1):
            hop = self.probe(ttl, seq=seq, payload=payload, flags=flags, linger=linger)
            hops.append(hop)
            if self.on_hop is not None:
                self.on_hop(phase, hop)
            if hop.reply in ("rst", "ack", "unreachable"):
                break
        return hops

    def keepalive_probe(self) -> tuple[int, bytes]:
        """seq and payload of the harmless segment: the last byte already acknowledged
        again (or, with nothing sent yet, an empty keepalive at the same sequence number)."""
        if self.state.snd_nxt is None:
            raise UsageError("the connection's sequence numbers were not seen")
        payload = self.last_byte if self._all_acked() else b""
        return (self.state.snd_nxt - 1) % 2**32, payload

    def run(self) -> ProbeResult:
        started = time.time()
        self.connect()
        self._wait_until(self._all_acked, 2.0)
        seq, payload = self.keepalive_probe()
        path = self.trace("path", seq=seq, payload=payload, flags=TH_ACK, linger=False,
                          stop_after=None)
        endpoint_hops = next((h.ttl for h in path if h.reply == "ack"), None)
        if any(h.reply == "rst" for h in path):
            # Reset before any trigger: the harmless probe itself drew it.  Nothing is
            # left to trigger; the path is the measurement.
            return self._result(started, path, [], endpoint_hops, None,
                                conclude(path, [], target=self.address, trigger="path",
                                         endpoint_ttl=self.state.synack_ttl,
                                         endpoint_hops=endpoint_hops, socket_alive=None))
        if self.opts.trigger == "idle":
            self._wait_until(lambda: False, self.opts.idle_s)
            alive: bool | None = self.socket_alive()
            seq, payload = self.keepalive_probe()
            flags = TH_ACK
        else:
            alive = None
            self.abort_kernel_socket()
            assert self.state.snd_nxt is not None
            seq = self.state.snd_nxt
            payload = (client_hello(self.opts.sni or "") if self.opts.trigger == "sni"
                       else self.opts.payload or b"")
            flags = TH_ACK | TH_PSH
        stop = endpoint_hops + 1 if endpoint_hops is not None else None
        hops = self.trace("trigger", seq=seq, payload=payload, flags=flags, linger=True,
                          stop_after=stop)
        answer = conclude(hops, path, target=self.address, trigger=self.opts.trigger,
                          endpoint_ttl=self.state.synack_ttl, endpoint_hops=endpoint_hops,
                          socket_alive=alive)
        return self._result(started, path, hops, endpoint_hops, alive, answer)

    def _result(self, started: float, path: list[Hop], hops: list[Hop],
                endpoint_hops: int | None, alive: bool | None, answer: Answer) -> ProbeResult:
        assert self.io is not None
        return ProbeResult(
            target=_hostport(self.opts.host, self.opts.port), address=self.address,
            port=self.opts.port, ip_v=self.ip_v, trigger=self.opts.trigger, sni=self.opts.sni,
            idle_s=self.opts.idle_s if self.opts.trigger == "idle" else None,
            local=_hostport(self.io.local or "", self.io.lport or 0), endpoint_ttl=self.state.synack_ttl,
            endpoint_hops=endpoint_hops, socket_alive=alive, path=tuple(path),
            hops=tuple(hops), answer=answer, started_ts=started,
            settings={"max_hops": self.opts.max_hops, "interval_s": self.opts.interval_s,
                      "wait_s": self.opts.wait_s, "probes_sent": self.probes_sent})

    def close(self) -> None:
        """Undo everything: close (gracefully if still alive), remove the guard, sockets."""
        try:
            if self.sock is not None:
                if self.kernel_alive and self.socket_alive():
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(socket.SHUT_WR)
                with contextlib.suppress(OSError):
                    self.sock.close()
                self.sock = None
        finally:
            try:
                if self.guard is not None:
                    self.guard.remove()
            finally:
                if self.io is not None:
                    self.io.close()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def run_probe(opts: ProbeOptions, *,
              on_hop: Callable[[str, Hop], None] | None = None) -> ProbeResult:
    """Validate, check privilege, resolve, probe; always clean up."""
    opts.validate()
    check_privilege()
    address, ip_v = resolve(opts.host, opts.port, opts.ip_v)
    prober = Prober(opts, address, ip_v, on_hop)
    with _term_as_interrupt():
        try:
            return prober.run()
        finally:
            prober.close()
