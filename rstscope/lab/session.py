"""One lab run's resources: network namespaces, child processes, a temp dir.

Everything a run creates is registered here the moment it exists, so
:meth:`Session.close` can undo it on success, failure, exception, SIGINT or
SIGTERM.  The root namespace is never configured: every command runs inside a
namespace this session created (``ip netns exec``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

from rstscope.errors import LabError, PrivilegeError, ToolUnavailableError

#: Every namespace a lab run creates starts with this, then a random run id.
NS_PREFIX = "rsl"

#: Tools every scenario needs; scenario-specific ones are checked by the scenario.
BASE_TOOLS = ("ip", "tcpdump", "iptables", "ip6tables", "openssl")


def require_root() -> None:
    """The lab creates namespaces and veths: it needs root on Linux."""
    if not sys.platform.startswith("linux"):
        raise PrivilegeError("rstscope lab needs Linux network namespaces")
    if os.geteuid() != 0:
        raise PrivilegeError("rstscope lab needs root (network namespaces); run it with sudo")


def require_tools(tools: Sequence[str]) -> None:
    """Raise :class:`ToolUnavailableError` naming the first missing executable."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise ToolUnavailableError(
                f"rstscope lab needs '{tool}' on PATH (Debian: apt-get install {_APT.get(tool, tool)})"
            )


_APT = {"ip": "iproute2", "ip6tables": "iptables", "openssl": "openssl"}


class Session:
    """Owns namespaces, processes and a temp dir; ``close()`` removes all of them."""

    #: Sessions not yet closed, so a sweep interrupted in its main thread can tear
    #: down the sessions its worker threads own (:meth:`close_all`).
    _live: set[Session] = set()
    _live_lock = threading.Lock()
    #: Set by :meth:`close_all` until :meth:`allow_new`: no new session may start.
    _stopping = False

    def __init__(self, *, keep_tmp: bool = False) -> None:
        self.run_id = secrets.token_hex(3)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"rstscope-lab-{self.run_id}-"))
        self.keep_tmp = keep_tmp
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self._closed = False
        self._old_handlers: dict[int, object] = {}
        with Session._live_lock:
            if Session._stopping:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise LabError("the lab is shutting down (interrupted)")
            Session._live.add(self)

    @classmethod
    def close_all(cls) -> None:
        """Close every live session and refuse new ones (sweep teardown on SIGINT/SIGTERM)."""
        with cls._live_lock:
            cls._stopping = True
            live = list(cls._live)
        for s in live:
            s.close()

    @classmethod
    def allow_new(cls) -> None:
        with cls._live_lock:
            cls._stopping = False

    # -- namespaces ---------------------------------------------------------------
    def ns_name(self, key: str) -> str:
        # "rsl" + 6 hex + "-" + key stays short and unique per run.
        return f"{NS_PREFIX}{self.run_id}-{key}"

    def _check_open(self) -> None:
        # A sweep interrupted in its main thread closes every live session; a worker
        # thread still setting one up must stop, not create what nobody will remove.
        if self._closed:
            raise LabError("lab session was closed (interrupted)")

    def add_ns(self, key: str) -> str:
        name = self.ns_name(key)
        with Session._live_lock:
            self._check_open()
            # Register before creating: if creation half-succeeds, close() still tries.
            self.namespaces.append(name)
        self.run(["ip", "netns", "add", name])
        self.run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    # -- commands -----------------------------------------------------------------
    def run(self, argv: Sequence[str], *, ns: str | None = None, check: bool = True,
            timeout_s: float = 20.0) -> subprocess.CompletedProcess[str]:
        full = self._wrap(argv, ns)
        self._check_open()
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout_s)
        if check and proc.returncode != 0:
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            raise LabError(f"{' '.join(full)} failed: {msg[-1] if msg else proc.returncode}")
        return proc

    def sysctl(self, ns: str, key: str, value: str | int) -> None:
        self.run(["sysctl", "-q", "-w", f"{key}={value}"], ns=ns)

    def spawn(self, argv: Sequence[str], *, ns: str | None, log: Path,
              stdout: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
        """Start a process in its own process group (so teardown can kill its tree)."""
        self._check_open()
        full = self._wrap(argv, ns)
        errf = open(log, "wb")  # noqa: SIM115 - lives as long as the process
        try:
            proc = subprocess.Popen(full, stdout=stdout if stdout is not None else errf,
                                    stderr=errf, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        finally:
            errf.close()
        with Session._live_lock:
            closed = self._closed
            self.procs.append(proc)
        if closed:
            _kill_group(proc)
            raise LabError("lab session was closed (interrupted)")
        return proc

    def python(self, module: str, args: Sequence[str], *, ns: str, log: Path,
               stdout: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
        """Run ``python -m rstscope.lab.<module>`` inside a namespace."""
        return self.spawn([sys.executable, "-u", "-m", f"rstscope.lab.{module}", *args],
                          ns=ns, log=log, stdout=stdout)

    @staticmethod
    def _wrap(argv: Sequence[str], ns: str | None) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)

    # -- teardown -----------------------------------------------------------------
    def close(self) -> None:
        """Kill every process, delete every namespace, remove temp files.  Idempotent."""
        with Session._live_lock:
            if self._closed:
                return
            self._closed = True
            Session._live.discard(self)
        for proc in self.procs:
            _kill_group(proc)
        for ns in reversed(self.namespaces):
            # Anything still alive inside one of *our* namespaces is ours: kill it by pid.
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        # A namespace whose creation raced this close (another thread was setting the
        # session up) may have appeared meanwhile: one more pass.
        still = set(self.namespaces) & set(leftovers())
        for ns in still:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Session:
        self._install_signal_handlers()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        finally:
            self._restore_signal_handlers()

    def _install_signal_handlers(self) -> None:
        # SIGTERM becomes KeyboardInterrupt so the same finally/__exit__ path runs.
        if threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, on_term)

    def _restore_signal_handlers(self) -> None:
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._old_handlers.clear()


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float = 2.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    # The group may outlive its leader (nginx workers): always sweep it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


def wait_for(pred: Callable[[], bool], *, timeout_s: float, what: str,
             interval_s: float = 0.02) -> None:
    """Poll ``pred`` until true or raise :class:`LabError` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval_s)
    raise LabError(f"timed out after {timeout_s:g} s waiting for {what}")


def leftovers() -> Iterator[str]:
    """Names of lab namespaces that exist now (for cleanup and the teardown test)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(NS_PREFIX):
            yield name


def remove_leftovers() -> list[str]:
    """Delete lab namespaces left by a run that was killed (SIGKILL skips teardown).

    Only namespaces named with the lab prefix are touched, and only processes
    running inside them are killed (by pid)."""
    removed = []
    for ns in list(leftovers()):
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        removed.append(ns)
    return removed
