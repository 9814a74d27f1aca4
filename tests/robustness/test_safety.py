"""Safety: no unsafe deserialisation, HTML escapes capture strings, no root-owned leftovers."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.loopback import hello_then_server_abort
from tests.robustness.corpus import can_capture

PACKAGE = Path(__file__).resolve().parents[2] / "rstscope"

# Patterns that must not appear in the package source (code, comments or strings:
# a mention in a comment is how such a call usually sneaks back in).
FORBIDDEN = (
    (re.compile(r"\bpickle\b|\bcPickle\b|\bdill\b|\bmarshal\.loads?\b|\bshelve\b"), "pickle-like deserialisation"),
    (re.compile(r"(?<![\w.])eval\s*\("), "eval("),
    (re.compile(r"(?<![\w.])exec\s*\("), "exec("),
    (re.compile(r"yaml\.(?:load|load_all)\s*\((?![^)]*SafeLoader)"), "yaml.load without SafeLoader"),
    (re.compile(r"yaml\.unsafe_load|yaml\.full_load"), "unsafe yaml loader"),
    (re.compile(r"shell\s*=\s*True"), "shell=True"),
    (re.compile(r"os\.system\s*\(|os\.popen\s*\("), "os.system/os.popen (a shell)"),
    (re.compile(r"allow_pickle\s*=\s*True"), "numpy allow_pickle=True"),
)


def test_no_unsafe_calls_in_package() -> None:
    hits = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for pattern, what in FORBIDDEN:
                if pattern.search(line):
                    hits.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {what}: {line.strip()}")
    assert hits == []


def test_forbidden_patterns_do_catch_things() -> None:
    """The grep above can fail: each pattern matches a typical offending line."""
    bad = ["import pickle", "x = eval(s)", "exec(code)", "yaml.load(f)",
           "subprocess.run(cmd, shell=True)", "os.system('ls')", "np.load(f, allow_pickle=True)"]
    for line in bad:
        assert any(p.search(line) for p, _ in FORBIDDEN), line
    for ok in ["yaml.load(f, Loader=yaml.SafeLoader)", "df.eval_later()", "self.exec_path"]:
        assert not any(p.search(ok) for p, _ in FORBIDDEN), ok


# -- HTML escaping -------------------------------------------------------------------------

EVIL = "<script>alert(1)</script>"
EVIL_FILE = "<img src=x onerror=alert(2)>.pcap"


@pytest.fixture(scope="module")
def hostile_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = can_capture()
    if why:
        pytest.skip(why)
    return hello_then_server_abort(tmp_path_factory.mktemp("evil") / EVIL_FILE, EVIL.encode()).path


def _assert_escaped(page: str, where: str) -> None:
    assert "<script>alert" not in page, f"{where}: raw <script> from the capture"
    assert "<img src=x" not in page, f"{where}: raw <img> from the file name"


def test_repr_html_escapes_capture_strings(hostile_capture: Path) -> None:
    from rstscope.api import analyze

    a = analyze(hostile_capture)
    assert a.reset_records(), "the capture should contain the RST"
    page = a._repr_html_()
    _assert_escaped(page, "Analysis._repr_html_")
    assert "&lt;img src=x" in page  # the file name is shown, escaped


def test_html_report_escapes_capture_strings(hostile_capture: Path, tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is needed for the TLS context (SNI) in the report")
    from rstscope.api import analyze
    from rstscope.report.html import build_report

    a = analyze(hostile_capture)
    page = build_report([a], title=EVIL)
    _assert_escaped(page, "HTML report")
    # The SNI did reach the report (escaped), so the check above was meaningful.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- live capture: no root-owned files in a user's directory ----------------------------------


def _live_available() -> str | None:
    why = can_capture()
    if why:
        return why
    # This one captures on the host's lo and drops root to the user: it needs root
    # itself (can_capture alone no longer says so: it may use a private namespace).
    if os.geteuid() != 0:
        return "live capture that drops root to a user needs root"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user 'nobody'"
    return None


@pytest.mark.root
@pytest.mark.parametrize("extra", [["-C", "2k", "-W", "3"], ["-G", "1", "-W", "2"], []])
def test_live_capture_leaves_no_root_owned_files(extra: list[str]) -> None:
    why = _live_available()
    if why:
        pytest.skip(why)
    nobody = pwd.getpwnam("nobody")
    # A directory that belongs to the unprivileged user, like a home directory.
    home = Path(tempfile.mkdtemp(prefix="rstscope-user-"))
    try:
        os.chown(home, nobody.pw_uid, nobody.pw_gid)
        os.chmod(home, 0o755)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        name = "cap-%Y%m%d%H%M%S.pcapng" if "-G" in extra else "cap.pcapng"
        proc = subprocess.Popen(
            [sys.executable, "-m", "rstscope.live", "capture", "-i", "lo", "-f", f"port {port}",
             "-w", str(home / name), "-Z", "nobody", "--duration", "3", *extra],
            cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        srv = socket.socket()
        srv.bind(("127.0.0.1", port))
        srv.listen(8)
        for _ in range(20):
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            a, _ = srv.accept()
            c.sendall(b"x" * 300)
            a.recv(1000)
            a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            a.close()
            c.close()
            time.sleep(0.05)
        srv.close()
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        files = [p for p in home.rglob("*")]
        assert files, "the capture should have written something"
        root_owned = [str(p.relative_to(home)) for p in files if p.stat().st_uid == 0]
        assert root_owned == []
        assert all(p.stat().st_uid == nobody.pw_uid for p in files)
    finally:
        shutil.rmtree(home, ignore_errors=True)
