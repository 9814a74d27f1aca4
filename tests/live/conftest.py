"""Fixtures for live-capture tests: namespaces, a nobody-writable directory, the CLI."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.live.netlab import Lines, Net

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:  # pragma: no cover - every Linux distribution has it
    NOBODY = pwd.struct_passwd(("nobody", "x", 65534, 65534, "", "/", "/bin/false"))

needs_root = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0
    or not all(shutil.which(t) for t in ("ip", "tcpdump", "tshark", "capinfos", "mergecap",
                                            "iptables", "setpriv", "ss")),
    reason="needs root on Linux with ip, tcpdump, tshark, capinfos, mergecap, iptables, "
           "setpriv and ss")


def _registered() -> bool:
    try:
        import click

        from rstscope.cli import cli
        names = set(cli.list_commands(click.Context(cli)))
    except Exception:  # the main CLI is another engineer's; fall back to ours
        return False
    return {"capture", "watch"} <= names


def live_argv(*args: str) -> list[str]:
    """The CLI as users run it (``python -m rstscope``) once the main CLI registers the
    live commands; until then the same commands through ``python -m rstscope.live``."""
    module = "rstscope" if _registered() else "rstscope.live"
    return [sys.executable, "-m", module, *args]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    env.update(extra)
    return env


@pytest.fixture
def net() -> Iterator[Net]:
    with Net() as n:
        yield n


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user may write (pytest's tmp_path is root-only 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rstscope-live-"))
    os.chmod(d, 0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class LiveProc:
    """A running ``rstscope capture|watch`` in the client namespace."""

    def __init__(self, net: Net, args: list[str], *, cwd: Path, user: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.proc = net.spawn("client", live_argv(*args), cwd=cwd, user=user,
                              env=env or child_env())
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)

    def wait_listening(self, timeout_s: float = 20) -> None:
        self.err.wait(lambda s: "listening on" in s or "rstscope:" in s and "error" in s,
                      timeout_s)
        assert self.proc.poll() is None, self.err.text

    def wait_out(self, pred: Callable[[str], bool], timeout_s: float = 10) -> tuple[float, str]:
        """A stdout line matching ``pred``; on timeout the error says what stderr said."""
        try:
            return self.out.wait(pred, timeout_s)
        except TimeoutError as exc:
            alive = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
            raise AssertionError(f"{exc}\n[process {alive}; stderr]\n{self.err.text}") from None

    def interrupt(self, timeout_s: float = 20) -> int:
        """Ctrl-C, as a user would; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(timeout=timeout_s)
        self.out.join()
        self.err.join()
        return rc


def start_tcpdump(net: Net, path: Path, bpf: str = "tcp port 443",
                  snaplen: int = 256) -> tuple[subprocess.Popen[str], Lines]:
    proc = net.spawn("client", ["tcpdump", "-n", "-U", "-i", "eth0", "-s", str(snaplen),
                                "--time-stamp-precision=nano", "-w", str(path), bpf])
    assert proc.stderr is not None
    err = Lines(proc.stderr)
    err.wait(lambda s: "listening on" in s, 20)
    return proc, err
