"""Privilege handling: the unprivileged error (exit 77) and whom we become after opening."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from rstscope.errors import UsageError
from rstscope.live.privileges import Identity, privilege_hint, target_identity
from tests.live.conftest import NOBODY, child_env, live_argv


def _unprivileged(argv: list[str]) -> list[str]:
    """Run ``argv`` without CAP_NET_RAW: as nobody when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return argv
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is needed to drop root for this test")
    return ["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", *argv]


@pytest.mark.skipif(sys.platform != "linux", reason="live capture is Linux only")
@pytest.mark.parametrize("command", ["capture", "watch"])
def test_no_cap_net_raw_exits_77_with_advice(command: str) -> None:
    argv = _unprivileged(live_argv(command, "-i", "lo", "-w", "never-written.pcapng"))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd="/",
                       env=child_env())
    assert r.returncode == 77, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one line, no traceback
    msg = lines[0]
    assert "CAP_NET_RAW" in msg
    assert 'sudo "$(which python)" -m rstscope capture' in msg
    assert "setcap cap_net_raw,cap_net_admin=eip" in msg
    assert not os.path.exists("/never-written.pcapng")


def test_hint_names_the_running_interpreter() -> None:
    assert sys.executable in privilege_hint()


@pytest.mark.skipif(os.geteuid() != 0, reason="identity selection as root")
def test_target_identity_under_sudo_and_Z() -> None:
    env = {"SUDO_UID": str(NOBODY.pw_uid), "SUDO_GID": str(NOBODY.pw_gid)}
    assert target_identity(None, env) == Identity(NOBODY.pw_uid, NOBODY.pw_gid, "nobody", "sudo")
    # No sudo, no -Z: a root login stays root, as tcpdump does without -Z.
    assert target_identity(None, {}) is None
    # sudo from root itself: nothing to drop to.
    assert target_identity(None, {"SUDO_UID": "0", "SUDO_GID": "0"}) is None
    # -Z wins over SUDO_UID.
    z = target_identity("nobody", {"SUDO_UID": "1234", "SUDO_GID": "1234"})
    assert z is not None and z.uid == NOBODY.pw_uid and z.reason == "-Z USER"
    with pytest.raises(UsageError, match="no such user"):
        target_identity("no-such-user-rstscope", {})
    with pytest.raises(UsageError, match="SUDO_UID"):
        target_identity(None, {"SUDO_UID": "x", "SUDO_GID": "1"})
