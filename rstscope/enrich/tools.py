"""Locating tshark and editcap, and running them with clear errors.

tshark is optional for rstscope as a whole: only enrichment and ``verify``
need it.  When it is missing the user gets one line naming the Debian package,
and the rest of rstscope keeps working.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache

from rstscope.errors import CaptureError, ToolUnavailableError

#: Debian package per Wireshark-suite tool (editcap/mergecap ship in wireshark-common,
#: which the tshark package depends on).
_APT_PACKAGE = {"tshark": "tshark", "editcap": "tshark", "mergecap": "tshark"}


def find_tool(name: str) -> str:
    """Absolute path of ``name`` on PATH, or :class:`ToolUnavailableError` with the apt line."""
    path = shutil.which(name)
    if path is None:
        pkg = _APT_PACKAGE.get(name, name)
        raise ToolUnavailableError(
            f"{name} not found on PATH; TLS/HTTP2 enrichment and verify need it: "
            f"apt-get install {pkg}"
        )
    return path


@lru_cache(maxsize=4)
def _version(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or "").splitlines()
    return first[0].strip() if first else "unknown"


def tshark_version() -> str:
    """First line of ``tshark --version`` (e.g. ``TShark (Wireshark) 4.0.17 ...``)."""
    return _version(find_tool("tshark"))


def run_tool(argv: Sequence[str], *, what: str) -> str:
    """Run a Wireshark-suite tool; a failure becomes a one-line :class:`CaptureError`."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        # tshark warns "Running as user root ... dangerous" on stderr: noise, skip it.
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "dangerous" not in ln]
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise CaptureError(f"{what} failed: {detail}")
    return proc.stdout
