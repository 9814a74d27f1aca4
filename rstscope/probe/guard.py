"""The one netfilter rule a probe installs, and its removal.

Once the probe has taken over the connection's 4-tuple, our kernel no longer
owns what comes back on it (for ``--trigger sni``/``data`` the kernel socket is
aborted; for ``--trigger idle`` the first RST kills it).  A kernel answers a
segment for a 4-tuple it does not know with a RST of its own, which would tear
down the very state the probe is measuring.  So the probe drops the RSTs *our
host* sends on exactly this 4-tuple, in a table of its own
(``inet rstscope_probe_<pid>``): removing the table removes everything, and
nothing else on the host is touched.  The probe itself never sends a RST.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from types import TracebackType

from rstscope.errors import PrivilegeError, ToolUnavailableError, UsageError

TABLE_PREFIX = "rstscope_probe_"
NFT_MISSING = ("rstscope probe needs 'nft' to keep the kernel from resetting the probed "
               "connection (Debian: apt-get install nftables)")


def table_name(pid: int | None = None) -> str:
    return f"{TABLE_PREFIX}{os.getpid() if pid is None else pid}"


def ruleset(table: str, *, ip_v: int, local: str, lport: int, remote: str, rport: int) -> str:
    """The nft script for the guard (one output-hook chain, one rule)."""
    fam = "ip6" if ip_v == 6 else "ip"
    return (
        f"table inet {table} {{\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        f"    {fam} saddr {local} {fam} daddr {remote} tcp sport {lport} tcp dport {rport} "
        "tcp flags & rst != 0 drop\n"
        "  }\n"
        "}\n"
    )


class RstGuard:
    """Context manager: install the rule on enter (or :meth:`install`), remove it on exit."""

    def __init__(self, *, ip_v: int, local: str, lport: int, remote: str, rport: int) -> None:
        self.table = table_name()
        self.script = ruleset(self.table, ip_v=ip_v, local=local, lport=lport, remote=remote,
                              rport=rport)
        self.installed = False

    def install(self) -> None:
        nft = shutil.which("nft")
        if nft is None:
            raise ToolUnavailableError(NFT_MISSING)
        # Registered before running: if nft half-applies, remove() still tries.
        self.installed = True
        proc = subprocess.run([nft, "-f", "-"], input=self.script, capture_output=True,
                              text=True, timeout=10)
        if proc.returncode != 0:
            self.remove()
            msg = (proc.stderr or proc.stdout).strip().splitlines()
            last = msg[-1] if msg else str(proc.returncode)
            if "not permitted" in last:
                raise PrivilegeError(f"could not install the probe's nft rule: {last} "
                                     "(needs CAP_NET_ADMIN; run it with sudo)")
            raise UsageError(f"could not install the probe's nft rule: {last}")

    def remove(self) -> None:
        """Delete the table (idempotent; never raises)."""
        if not self.installed:
            return
        nft = shutil.which("nft") or "nft"
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([nft, "delete", "table", "inet", self.table], capture_output=True,
                           timeout=10)
        self.installed = False

    def __enter__(self) -> RstGuard:
        self.install()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.remove()
