"""Capture privilege: check CAP_NET_RAW up front, drop root once the socket is open.

Opening a packet socket needs CAP_NET_RAW (root, or a capability on the
interpreter).  Nothing else does, so after the socket is open we switch to the
invoking user (``SUDO_UID``/``SUDO_GID`` under sudo) or to ``-Z USER``, and only
then create output files: they belong to that user, never to root.
"""

from __future__ import annotations

import os
import pwd
import socket
import sys
from dataclasses import dataclass

from rstscope.errors import PrivilegeError, UsageError


def privilege_hint() -> str:
    """How to get CAP_NET_RAW, as one line (the CLI prints errors on one line)."""
    python = sys.executable or "python3"
    return (
        "live capture needs CAP_NET_RAW: run it with sudo, e.g. "
        f"'sudo \"$(which python)\" -m rstscope capture ...' (here: sudo {python} -m rstscope ...), "
        "or give a dedicated interpreter the capabilities with "
        "'sudo setcap cap_net_raw,cap_net_admin=eip /path/to/dedicated/python3' "
        "(not the system python: every script run by it would get them)"
    )


def check_capture_privilege() -> None:
    """Raise :class:`PrivilegeError` unless a packet socket can be opened."""
    try:
        probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError as exc:
        raise PrivilegeError(privilege_hint()) from exc
    except AttributeError as exc:  # no AF_PACKET: not Linux
        raise UsageError("live capture is supported on Linux only") from exc
    probe.close()


@dataclass(frozen=True, slots=True)
class Identity:
    """The user to run as after the socket is open."""

    uid: int
    gid: int
    name: str | None  # for supplementary groups; None when only SUDO_UID is known
    reason: str  # "-Z USER" | "sudo" | "unchanged"


def target_identity(user: str | None, environ: dict[str, str] | None = None) -> Identity | None:
    """Whom to become after opening the socket, or None to stay as we are.

    ``-Z USER`` wins; otherwise, when running as root under sudo, the invoking
    user from ``SUDO_UID``/``SUDO_GID``.  A plain root login stays root (like
    tcpdump without -Z).
    """
    env = os.environ if environ is None else environ
    if user is not None:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            try:
                pw = pwd.getpwuid(int(user))
            except (ValueError, KeyError):
                raise UsageError(f"-Z: no such user {user!r}") from None
        if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
            raise UsageError(f"-Z {user}: switching user needs root")
        return Identity(pw.pw_uid, pw.pw_gid, pw.pw_name, "-Z USER")
    if os.geteuid() != 0:
        return None
    sudo_uid = env.get("SUDO_UID")
    if not sudo_uid:
        return None
    try:
        uid = int(sudo_uid)
        gid = int(env.get("SUDO_GID", ""))
    except ValueError:
        raise UsageError("SUDO_UID/SUDO_GID are not numbers; use -Z USER") from None
    if uid == 0:
        return None
    try:
        name: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = None
    return Identity(uid, gid, name, "sudo")


def drop_privileges(identity: Identity | None) -> None:
    """Become ``identity`` for good (groups, gid, then uid; irreversible)."""
    if identity is None or (os.geteuid() == identity.uid and os.getegid() == identity.gid):
        return
    try:
        if identity.name is not None:
            os.initgroups(identity.name, identity.gid)
        else:
            os.setgroups([])
        os.setresgid(identity.gid, identity.gid, identity.gid)
        os.setresuid(identity.uid, identity.uid, identity.uid)
    except OSError as exc:
        raise PrivilegeError(
            f"cannot switch to uid {identity.uid} gid {identity.gid}: {exc.strerror}"
        ) from exc
    # Belt and braces: if root could be regained, the drop did not happen.
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise PrivilegeError("privilege drop failed: root could be regained")
