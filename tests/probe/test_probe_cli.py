"""rstscope probe's command line: usage errors, privilege (exit 77), help."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rstscope.errors import UsageError
from rstscope.probe.runner import ProbeOptions, client_hello, parse_target

IS_ROOT = os.geteuid() == 0


def cli(*args: str, user_ns: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "rstscope", "probe", *args]
    if user_ns:
        # A fresh user namespace: same binary, no privilege over this network namespace.
        argv = ["unshare", "--user", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("text", "want"), [
    ("example.test", ("example.test", 443)),
    ("203.0.113.2:8443", ("203.0.113.2", 8443)),
    ("[2001:db8::1]:444", ("2001:db8::1", 444)),
    ("[2001:db8::1]", ("2001:db8::1", 443)),
    ("2001:db8::1", ("2001:db8::1", 443)),
])
def test_parse_target(text: str, want: tuple[str, int]) -> None:
    assert parse_target(text) == want


@pytest.mark.parametrize("text", ["host:0", "host:x", "[2001:db8::1", ":443", "[::1]x"])
def test_parse_target_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


@pytest.mark.parametrize(("kw", "msg"), [
    ({"interval_s": 0.05}, "rate-limited"),
    ({"max_hops": 0}, "--max-hops"),
    ({"max_hops": 65}, "--max-hops"),
    ({"trigger": "sni"}, "--sni"),
    ({"trigger": "data"}, "--payload"),
    ({"trigger": "data", "payload": b"x" * 1201}, "at most 1200"),
    ({"sni": "192.0.2.1"}, "host name"),
    ({"wait_s": 0}, "--wait"),
])
def test_options_validation(kw: dict, msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        ProbeOptions(host="h", port=443, **kw).validate()


def test_client_hello_is_real_tls_naming_the_sni() -> None:
    from rstscope.lab.injector import client_hello_sni

    hello = client_hello("blocked.lab.test")
    assert hello[0] == 0x16 and hello[5] == 0x01 and len(hello) <= 1200
    assert client_hello_sni(hello) == "blocked.lab.test"


@pytest.mark.parametrize(("args", "code"), [
    (["192.0.2.1:443"], 2),  # --trigger idle needs --idle
    (["192.0.2.1:99999", "--idle", "1"], 2),
    (["192.0.2.1", "--idle", "1", "--interval", "0.01"], 2),
    (["192.0.2.1", "--trigger", "sni"], 2),
    (["192.0.2.1", "--trigger", "data", "--payload", "/nonexistent/payload.bin"], 66),
    (["192.0.2.1", "--idle", "1", "-4", "-6"], 2),
])
def test_usage_errors_are_one_line(args: list[str], code: int) -> None:
    r = cli(*args)
    assert r.returncode == code, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def test_without_privilege_exit_77_with_the_sudo_hint() -> None:
    if IS_ROOT and not shutil.which("unshare"):
        pytest.skip("needs unshare to drop privilege")
    r = cli("192.0.2.1:443", "--idle", "1", user_ns=IS_ROOT)
    assert r.returncode == 77, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert "sudo" in r.stderr and "CAP_NET_RAW" in r.stderr


def test_help_lists_probe_and_its_options() -> None:
    top = subprocess.run([sys.executable, "-m", "rstscope", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert "probe" in top.stdout
    r = cli("--help")
    assert r.returncode == 0
    for opt in ("--trigger", "--idle", "--sni", "--payload", "--max-hops", "--interval",
                "--format", "--plot"):
        assert opt in r.stdout


def test_data_trigger_payload_is_read(tmp_path: Path) -> None:
    # A readable payload passes validation; without privilege the run stops at 77.
    p = tmp_path / "p.bin"
    p.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    if IS_ROOT and not shutil.which("unshare"):
        pytest.skip("needs unshare to drop privilege")
    r = cli("192.0.2.1", "--trigger", "data", "--payload", str(p), user_ns=IS_ROOT)
    assert r.returncode == 77, r.stderr
