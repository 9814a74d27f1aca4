"""Teardown leaves nothing behind: namespaces, veths, root-ns rules, processes, temp files.

Also the CLI's error contract: no root -> 77, missing tool -> 69, one line, no traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rstscope.errors import LabError
from rstscope.lab import run_scenario
from rstscope.lab.session import NS_PREFIX, Session, leftovers

IS_ROOT = sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0


def _root_ns_state() -> dict[str, str]:
    """What the lab must never change in the root namespace."""
    out = {}
    for name, argv in {
        "links": ["ip", "-br", "link"],
        "routes4": ["ip", "route"],
        "routes6": ["ip", "-6", "route"],
        "iptables": ["iptables-save"],
        "ip6tables": ["ip6tables-save"],
        "nft": ["nft", "list", "ruleset"],
        "ttl": ["sysctl", "net.ipv4.ip_default_ttl", "net.ipv4.ip_forward",
                "net.netfilter.nf_conntrack_tcp_timeout_established"],
    }.items():
        if shutil.which(argv[0]):
            text = subprocess.run(argv, capture_output=True, text=True).stdout
            # iptables-save prints a timestamp comment; drop comments.
            out[name] = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#"))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def _ns_pids(names: list[str]) -> set[int]:
    pids: set[int] = set()
    for ns in names:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids |= {int(p) for p in out.split()}
    return pids


def _assert_clean(run_id: str, tmp: Path, pids: set[int], before: dict[str, str]) -> None:
    assert not [ns for ns in leftovers() if run_id in ns]
    assert not [p for p in pids if _alive(p)], "lab processes still running"
    assert not tmp.exists()
    assert _root_ns_state() == before


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="lab teardown tests need root on Linux")
@pytest.mark.parametrize("name", ["haproxy-timeout", "dpi-inject-single"])
def test_failure_midway_leaves_nothing(tmp_path, name):
    before = _root_ns_state()
    seen: dict[str, object] = {}

    def on_ready(session: Session) -> None:
        seen["run_id"], seen["tmp"] = session.run_id, session.tmp
        seen["pids"] = _ns_pids(session.namespaces) | {p.pid for p in session.procs}
        assert len(session.namespaces) == 5 and seen["pids"]

    with pytest.raises(LabError, match="injected failure"):
        run_scenario(name, {}, tmp_path, fail_after_setup=True, on_ready=on_ready)
    _assert_clean(str(seen["run_id"]), Path(str(seen["tmp"])), set(seen["pids"]), before)


def _fail_if_ended(proc: subprocess.Popen[str]) -> None:
    """A child that ended before the signal is a broken test setup, not a pass (exit 0
    would test nothing) nor a teardown failure."""
    if proc.poll() is not None:
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"test setup: the lab run ended (exit {proc.returncode}) before the "
                    f"signal was sent, so the signal path was not tested\n{err}")


#: haproxy's idle timeout for the signalled run: far longer than the wait for the run
#: to be in full swing (30 s at most), so the run cannot finish before the signal.
_SIGNAL_RUN_IDLE_S = 120


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="lab teardown tests need root on Linux")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_midway_leaves_nothing(tmp_path, sig):
    before = _root_ns_state()
    # The child's own temp directory: its run id is read from the one directory the
    # run makes there (rstscope-lab-<run id>-...), never guessed from the
    # namespaces, where other lab runs on the same machine show up too.
    child_tmp = tmp_path / "tmp"
    child_tmp.mkdir()
    # A long idle timeout (the run lasts about proxy_timeout_s + 4 s): with the 3 s
    # default a loaded machine let the run finish before the signal arrived (exit 0),
    # so the signal path went untested.  The signal now always lands mid-run.
    proc = subprocess.Popen([sys.executable, "-m", "rstscope", "lab", "run", "haproxy-timeout",
                             "--set", f"proxy_timeout_s={_SIGNAL_RUN_IDLE_S}",
                             "--out", str(tmp_path / "out")], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(child_tmp)})
    # Wait until the run is in full swing: its server namespace has processes.
    deadline = time.monotonic() + 30
    run_id = ""
    ours: list[str] = []
    pids: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        if not run_id:
            made = list(child_tmp.glob("rstscope-lab-*-*"))
            run_id = made[0].name.split("-")[2] if made else ""
        if run_id:
            ours = sorted(ns for ns in leftovers() if ns.startswith(f"{NS_PREFIX}{run_id}-"))
            pids = _ns_pids(ours)
            if len(ours) == 5 and len(pids) >= 9:  # 8 tcpdumps + server (haproxy may follow)
                break
        time.sleep(0.1)
    signalled = False
    try:
        _fail_if_ended(proc)
        assert run_id, "lab run made no temp directory"
        assert len(ours) == 5, "lab run did not start"
        time.sleep(0.5)
        pids |= _ns_pids(ours)
        # Signal only a child provably still mid-run: its own namespaces exist and
        # it has not exited.
        assert len([ns for ns in leftovers() if ns.startswith(f"{NS_PREFIX}{run_id}-")]) == 5, \
            "test setup: the lab run's namespaces went away before the signal"
        _fail_if_ended(proc)
        proc.send_signal(sig)
        signalled = True
    finally:
        if not signalled and proc.poll() is None:
            # A setup failure must not leave the child's long lab run going.
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert list(child_tmp.iterdir()) == []
    _assert_clean(run_id, tmp_path / "nonexistent", pids, before)


def _cli(*args: str, env: dict[str, str] | None = None, user_ns: bool = False):
    argv = [sys.executable, "-m", "rstscope", "lab", *args]
    if user_ns:
        # A fresh user namespace: the same binary, but not root (euid is unmapped).
        argv = ["unshare", "--user", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)


def test_not_root_exit_77(tmp_path):
    if IS_ROOT and not shutil.which("unshare"):
        pytest.skip("needs unshare to drop root")
    r = _cli("run", "server-abort", "--out", str(tmp_path / "o"), user_ns=IS_ROOT)
    assert r.returncode == 77
    assert r.stderr.strip().count("\n") == 0 and "root" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_missing_tool_exit_69(tmp_path):
    if not IS_ROOT:
        pytest.skip("the tool check runs after the root check")
    # A PATH with every lab tool except haproxy.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ip", "tcpdump", "iptables", "ip6tables", "openssl", "ss", "sysctl"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    r = _cli("run", "haproxy-timeout", "--out", str(tmp_path / "o"),
             env={**os.environ, "PATH": str(bindir)})
    assert r.returncode == 69, r.stderr
    assert "haproxy" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_unknown_scenario_and_bad_set_are_usage_errors(tmp_path):
    r = _cli("run", "nope", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown lab scenario" in r.stderr
    r = _cli("run", "server-abort", "--set", "novalue", "--out", str(tmp_path))
    assert r.returncode == 2 and "key=value" in r.stderr


def test_list_shows_every_scenario_with_defaults():
    from rstscope.lab import SCENARIOS

    r = _cli("list")
    assert r.returncode == 0
    for name in SCENARIOS:
        assert name in r.stdout
    assert "conntrack_timeout_s=3" in r.stdout and "ttl_fw=255" in r.stdout


def test_sweep_cli_contract(tmp_path):
    """Usage errors before privileges; no root -> 77; a bad path parameter -> 2."""
    r = _cli("sweep", "--seed", "1", "--count", "0", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--count" in r.stderr and "Traceback" not in r.stderr
    r = _cli("run", "server-abort", "--set", "fw_at=nowhere", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "fw_at" in r.stderr
    if IS_ROOT and not shutil.which("unshare"):
        pytest.skip("needs unshare to drop root")
    r = _cli("sweep", "--seed", "1", "--count", "2", "--out", str(tmp_path / "o"),
             user_ns=IS_ROOT)
    assert r.returncode == 77 and "root" in r.stderr
    assert r.stderr.strip().count("\n") == 0 and not (tmp_path / "o").exists()
