"""A minimal three-namespace network for live-capture tests (root only).

    client (eth0 192.0.2.2) ── (c0 192.0.2.1) fw (s0 198.51.100.1) ── (eth0 198.51.100.2) server
           2001:db8:71::2      2001:db8:71::1   2001:db8:72::1        2001:db8:72::2

``fw`` forwards (so the server's packets reach the client one TTL lower) and
has initial TTL 128, so RSTs it forges with netfilter ``REJECT --reject-with
tcp-reset`` are distinguishable on the wire, as a real firewall's often are.
Everything is torn down on exit, even after failures: processes are killed by
process group and the namespaces (with their veths) are deleted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

CLIENT = "192.0.2.2"
FW_IN = "192.0.2.1"
FW_OUT = "198.51.100.1"
SERVER = "198.51.100.2"
CLIENT6 = "2001:db8:71::2"
FW_IN6 = "2001:db8:71::1"
FW_OUT6 = "2001:db8:72::1"
SERVER6 = "2001:db8:72::2"
PORT = 443

# A TCP server: per connection, the first request word picks the behaviour.
#   abort: reply, then close with SO_LINGER 0 (the kernel sends RST)
#   hold:  reply, then keep the connection open (until killed)
#   chatter N: reply N times, 10 ms apart (many packets for rotation tests)
SERVER_CODE = textwrap.dedent("""
    import socket, struct, sys, threading, time
    srv = socket.socket(socket.AF_INET6)  # dual stack: IPv4 clients arrive v4-mapped
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", int(sys.argv[1])))
    srv.listen(16)
    print("LISTENING", flush=True)
    def serve(c):
        req = c.recv(100).split()
        if req[0] == b"abort":
            c.sendall(b"bye-" * 8)
            time.sleep(0.3)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        elif req[0] == b"hold":
            c.sendall(b"ok")
            time.sleep(120)
        elif req[0] == b"chatter":
            for _ in range(int(req[1])):
                c.sendall(b"x" * 200)
                time.sleep(0.01)
            c.close()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
""")

# A client: sends argv[2] and reads; with "hold" it then waits for a line on
# stdin before sending more, so the test can insert a firewall rule in between.
CLIENT_CODE = textwrap.dedent("""
    import socket, sys
    s = socket.create_connection((sys.argv[1], 443), timeout=10)
    s.sendall(sys.argv[2].encode())
    try:
        if sys.argv[2] == "hold":
            print("READY", s.recv(10), flush=True)
            sys.stdin.readline()
            s.sendall(b"more data")
        while True:
            d = s.recv(4096)
            if not d:
                print("EOF", flush=True)
                break
    except ConnectionResetError:
        print("RESET", flush=True)
""")


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


class Net:
    """Three namespaces wired client ── fw ── server; a context manager."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns = {role: f"rlv{tag}{role[0]}" for role in ("client", "fw", "server")}
        self.procs: list[subprocess.Popen[Any]] = []

    # -- lifecycle -----------------------------------------------------------
    def __enter__(self) -> Net:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        c, f, s = self.ns["client"], self.ns["fw"], self.ns["server"]
        for n in (c, f, s):
            sh("ip", "netns", "add", n)
        sh("ip", "link", "add", "eth0", "netns", c, "type", "veth", "peer", "name", "c0",
           "netns", f)
        sh("ip", "link", "add", "s0", "netns", f, "type", "veth", "peer", "name", "eth0",
           "netns", s)
        for n, ifname, addr, addr6 in ((c, "eth0", CLIENT, CLIENT6), (f, "c0", FW_IN, FW_IN6),
                                       (f, "s0", FW_OUT, FW_OUT6), (s, "eth0", SERVER, SERVER6)):
            sh("ip", "-n", n, "addr", "add", f"{addr}/29", "dev", ifname)
            # nodad: usable at once, no duplicate-address-detection wait.
            sh("ip", "-n", n, "-6", "addr", "add", f"{addr6}/64", "dev", ifname, "nodad")
            sh("ip", "-n", n, "link", "set", ifname, "up")
            # Segmentation offloads off: the capture sees wire-sized packets.
            sh("ip", "netns", "exec", n, "ethtool", "-K", ifname, "tso", "off", "gso", "off",
               "gro", "off", check=False)
        for n in (c, f, s):
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "-n", c, "route", "add", "default", "via", FW_IN)
        sh("ip", "-n", s, "route", "add", "default", "via", FW_OUT)
        sh("ip", "-n", c, "-6", "route", "add", "default", "via", FW_IN6)
        sh("ip", "-n", s, "-6", "route", "add", "default", "via", FW_OUT6)
        sh("ip", "netns", "exec", f, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        sh("ip", "netns", "exec", f, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", f, "sysctl", "-qw", "net.ipv4.ip_default_ttl=128")

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.close()
        for n in self.ns.values():
            sh("ip", "netns", "del", n, check=False)

    # -- processes -----------------------------------------------------------
    def spawn(self, role: str, argv: list[str], *, stdin: int | None = subprocess.DEVNULL,
              stdout: int | IO[Any] | None = subprocess.PIPE,
              stderr: int | IO[Any] | None = subprocess.PIPE,
              env: dict[str, str] | None = None, user: str | None = None,
              cwd: str | Path | None = None) -> subprocess.Popen[str]:
        full = ["ip", "netns", "exec", self.ns[role]]
        if user is not None:
            full += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        proc = subprocess.Popen(full + argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                text=True, env=env, cwd=cwd, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, role: str, argv: list[str], timeout: float = 30,
            **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.ns[role], *argv], capture_output=True,
                              text=True, timeout=timeout, check=False, **kw)

    def start_server(self, port: int = PORT) -> subprocess.Popen[str]:
        proc = self.spawn("server", [sys.executable, "-c", SERVER_CODE, str(port)])
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "LISTENING" in line, proc.stderr.read() if proc.stderr else line
        return proc

    def client(self, request: str, server: str = SERVER) -> subprocess.Popen[str]:
        return self.spawn("client", [sys.executable, "-c", CLIENT_CODE, server, request],
                          stdin=subprocess.PIPE)

    def fw_reject(self, client_port: int | None = None) -> None:
        """From now on, the fw answers the client's packets with a forged RST."""
        match = ["-s", CLIENT, "-p", "tcp", "--dport", str(PORT)]
        if client_port is not None:
            match += ["--sport", str(client_port)]
        r = self.run("fw", ["iptables", "-I", "FORWARD", *match, "-j", "REJECT",
                            "--reject-with", "tcp-reset"])
        assert r.returncode == 0, r.stderr


class Lines:
    """Collect a process stream's lines in a thread, each with its arrival time.

    A thread (not select on a buffered text stream) so no line sits unseen in a
    buffer, and so the arrival wall-clock time measures report latency.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.items: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._cond:
                    self.items.append((time.time(), line))
                    self._cond.notify_all()
        except (ValueError, OSError):
            pass  # Net.close() closed the pipe of a killed process: that is its end
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()
            with contextlib.suppress(OSError):
                stream.close()  # the pipe is ours to close (no ResourceWarning)

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(line for _, line in self.items)

    def wait(self, pred: Callable[[str], bool], timeout_s: float) -> tuple[float, str]:
        """The first line (and its arrival time) satisfying ``pred``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for item in self.items:
                    if pred(item[1]):
                        return item
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    raise TimeoutError(f"no matching line within {timeout_s} s; got:\n"
                                       + "".join(line for _, line in self.items))
                self._cond.wait(left)

    def join(self, timeout_s: float = 10) -> None:
        self._thread.join(timeout_s)
