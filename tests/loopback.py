"""The one loopback-capture harness: real tcpdump on the ``lo`` of a private network namespace.

Tests that need a real capture of real Linux TCP (an abort after idle, a
hostile ClientHello, 100k packets of ping-pong) build it with a *builder*: a
module-level function ``builder(out, **kwargs)`` that starts :class:`Tcpdump`,
runs a client and a server on loopback and stops the capture.

:func:`in_private_netns` runs the builder in a child Python inside
``unshare --user --map-user=UID --net --keep-caps``: a new user namespace (so
no real privilege is needed) that owns a new network namespace with only its
own ``lo``.  The child keeps the namespace's capabilities as ambient ones, so
tcpdump may open a packet socket there, while its uid inside is not 0 (the
caller's, or nobody's for root): tcpdump then does not try to drop to its
``tcpdump`` user (which fails in a user namespace, since setgroups is denied),
and the files it writes belong to the caller outside.  The same path is taken as root, so the captures
are also free of other jobs' loopback traffic.  Traffic stays on that ``lo``.

Where user namespaces are not allowed (a hardened kernel), root falls back to
the host's ``lo``; anyone else skips, with the reason.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Inside, the caller's uid, or nobody's for root: a non-zero uid, so that tcpdump
# keeps the ambient capabilities instead of dropping to its own user.
_INNER_ID = str(os.getuid() or 65534)
UNSHARE = ("unshare", "--user", f"--map-user={_INNER_ID}", f"--map-group={_INNER_ID}", "--net",
           "--keep-caps")
# Set in the child, so a builder called there runs in place instead of nesting.
_IN_NETNS = "RSTSCOPE_TEST_PRIVATE_NETNS"
LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def _missing(tool: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is not installed, but CI must provide it")
    pytest.skip(f"{tool} is not installed")


@functools.cache
def private_netns_problem() -> str | None:
    """None if this user may create a user + network namespace here, else why not."""
    if sys.platform != "linux":
        return "network namespaces are Linux-only"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare of a user + network namespace is refused: {probe.stderr.strip()}"
    return None


def require_tcpdump() -> str:
    path = shutil.which("tcpdump")
    if path is None:
        _missing("tcpdump")
    assert path is not None
    return path


def in_private_netns(builder: Callable[..., Any], out: Path, **kwargs: Any) -> Any:
    """``builder(out, **kwargs)`` run in a fresh user + network namespace; its result.

    The result comes back pickled (a Path, a frozen dataclass of the test's own).
    """
    require_tcpdump()
    if os.environ.get(_IN_NETNS):
        return builder(out, **kwargs)
    problem = private_netns_problem()
    if problem is not None:
        if os.geteuid() == 0:
            return builder(out, **kwargs)  # the host's lo, as root
        pytest.skip(f"no private network namespace for the capture ({problem})")
    target = f"{builder.__module__}:{builder.__qualname__}"
    args = pickle.dumps((target, out, kwargs))
    env = {**os.environ, _IN_NETNS: "1",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([*UNSHARE, sys.executable, "-m", "tests.loopback"], input=args,
                         capture_output=True, env=env, cwd=REPO_ROOT, timeout=600)
    if run.returncode != 0:
        raise RuntimeError(f"{target} failed in its network namespace:\n"
                           + run.stderr.decode(errors="replace")[-4000:])
    # The test's own child, writing the test's own objects: not untrusted data.
    return pickle.loads(run.stdout)  # noqa: S301


def _child() -> None:
    target, out, kwargs = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from our parent
    # A new network namespace starts with lo down.
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    module, _, name = target.partition(":")
    fn = getattr(importlib.import_module(module), name)
    result = fn(out, **kwargs)
    sys.stdout.buffer.write(pickle.dumps(result))


class Tcpdump:
    """tcpdump writing ``out`` until :meth:`stop`; started and armed ("listening on") on return.

    ``--immediate-mode``: without it libpcap hands packets over per filled
    TPACKET_V3 block, and tcpdump stopped by SIGINT can exit before writing the
    last one.
    """

    def __init__(self, out: Path, bpf: str, *, iface: str = "lo", snaplen: int | None = None,
                 extra_args: Sequence[str] = ()) -> None:
        argv = [require_tcpdump(), "-i", iface, "--immediate-mode", "-U", "-n"]
        if snaplen is not None:
            argv += ["-s", str(snaplen), "-B", "16384"]
        argv += [*extra_args, "-w", str(out), bpf]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 10
        line = ""
        # "listening on ..." once armed (after e.g. "data link type ...").
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if "listening on" in line or not line:
                break
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")

    def stop(self, settle_s: float = 0.3) -> None:
        if self.proc.poll() is None:
            time.sleep(settle_s)  # let the last segments reach the ring buffer
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> Tcpdump:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(family: socket.AddressFamily = socket.AF_INET, host: str = "127.0.0.1") -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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


# -- builders: a client and a server on loopback that end in a RST the test knows about --

@dataclass(frozen=True)
class Exchange:
    """What a builder did, for the test to check the plot against."""

    path: Path
    server_port: int
    client_ports: tuple[int, ...]
    idle_s: float
    rst_from: str  # "client" or "server"


def _listener() -> socket.socket:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    return srv


@contextlib.contextmanager
def _captured_connection(path: Path, snaplen: int
                         ) -> Iterator[tuple[int, socket.socket, socket.socket]]:
    """(server port, client socket, server socket) of one loopback connection that
    tcpdump writes to ``path``; the listener and the capture end with the block."""
    srv = _listener()
    port = srv.getsockname()[1]
    dump = Tcpdump(path, f"tcp port {port}", snaplen=snaplen)
    try:
        c = socket.create_connection(("127.0.0.1", port))
        conn, _ = srv.accept()
        yield port, c, conn
    finally:
        srv.close()
        dump.stop()


def _hello_then_server_abort(path: Path, sni: bytes) -> Exchange:
    """The client sends a ClientHello with ``sni``; the server answers with a RST
    (SO_LINGER 0 close), the pattern of SNI filtering."""
    with _captured_connection(path, snaplen=256) as (port, c, conn):
        c.sendall(client_hello(sni))
        conn.recv(4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ABORT)
        conn.close()
        with contextlib.suppress(OSError):
            c.recv(100)
        cport = c.getsockname()[1] if c.fileno() >= 0 else 0
        c.close()
    return Exchange(path, port, (cport,), 0.0, "server")


def _pingpong_then_abort(path: Path, *, rounds: int = 50_000, idle_s: float = 1.2) -> Exchange:
    """One flow of ``rounds`` request/echo round trips (TCP_NODELAY, so each is its own
    segment with the ACK piggybacked: ~2 packets per round), then ``idle_s`` of
    silence and a client abort.  50k rounds make a 100k-packet flow in ~3 s."""
    with _captured_connection(path, snaplen=80) as (port, c, conn):
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
    return Exchange(path, port, (cport,), idle_s, "client")


def hello_then_server_abort(path: Path, sni: bytes) -> Exchange:
    """The client sends a ClientHello with ``sni``; the server answers with a RST
    (SO_LINGER 0 close), the pattern of SNI filtering."""
    result: Exchange = in_private_netns(_hello_then_server_abort, path, sni=sni)
    return result


def pingpong_then_abort(path: Path, *, rounds: int = 50_000, idle_s: float = 1.2) -> Exchange:
    """One flow of ``rounds`` request/echo round trips (~2 packets per round), then
    ``idle_s`` of silence and a client abort: 50k rounds make a 100k-packet flow."""
    result: Exchange = in_private_netns(_pingpong_then_abort, path, rounds=rounds, idle_s=idle_s)
    return result


if __name__ == "__main__":
    _child()
