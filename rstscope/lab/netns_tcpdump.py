"""tcpdump inside a namespace: started before traffic, flushed and stopped after."""

from __future__ import annotations

import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rstscope.errors import LabError
from rstscope.lab.session import Session, wait_for

#: Enough for Ethernet/SLL2 + IPv6 + TCP with options + a TLS record header.
SNAPLEN = 128


@dataclass(frozen=True, slots=True)
class Capture:
    """A running tcpdump: which namespace, which interface, where it writes."""

    name: str
    ns: str
    iface: str
    path: Path
    log: Path
    proc: subprocess.Popen[bytes]


def start(session: Session, *, name: str, ns: str, iface: str, out: Path,
          linktype: str | None = None, snaplen: int = SNAPLEN) -> Capture:
    """Start tcpdump and return once it has printed "listening on" (it is capturing)."""
    log = session.tmp / f"tcpdump-{name}.log"
    # -Z root: keep the files owned by the caller instead of the tcpdump user.
    # --immediate-mode: without it packets still in the TPACKET_V3 ring block are
    # lost when tcpdump is stopped, i.e. exactly the final RSTs.
    argv = ["tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-i", iface, "-s", str(snaplen),
            "--time-stamp-precision=nano", "-w", str(out)]
    if linktype:
        argv += ["-y", linktype]
    # libpcap 1.10 compiles filters for "any" with SLL2 wrongly (nothing matches), so
    # SLL2 captures go unfiltered; the lab namespaces carry little besides the test flow.
    if linktype != "LINUX_SLL2":
        argv += ["tcp"]
    proc = session.spawn(argv, ns=ns, log=log)

    def listening() -> bool:
        if proc.poll() is not None:
            raise LabError(f"tcpdump ({name}) exited: {_tail(log)}")
        return "listening on" in log.read_text(errors="replace")

    wait_for(listening, timeout_s=10, what=f"tcpdump ({name}) to start")
    return Capture(name=name, ns=ns, iface=iface, path=out, log=log, proc=proc)


def stop(cap: Capture, timeout_s: float = 5.0) -> None:
    """SIGINT makes tcpdump flush its buffer and close the file cleanly."""
    if cap.proc.poll() is None:
        cap.proc.send_signal(signal.SIGINT)
        # ip netns exec execs tcpdump in place, so the signal reaches tcpdump itself.
        try:
            cap.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"tcpdump ({cap.name}) did not stop") from exc


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
