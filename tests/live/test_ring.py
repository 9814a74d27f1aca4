"""The TPACKET_V3 ring on real interfaces: bursts of real frames, checked against tcpdump.

A burst of frames from the benchmark generator (port-443 flows with resets) is
sent through the fw's veth into the client's, as fast as a packet socket in
another process can send them; tcpdump and rstscope listen on the client side
at the same time.  Nothing may be lost, the written file must hold exactly
tcpdump's packets, and it must analyse exactly like tcpdump's file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import make_capture

from .conftest import LiveProc, child_env, needs_root, start_tcpdump
from .netlab import Net
from .test_capture import tshark_rows

pytestmark = [pytest.mark.root, needs_root]

BURST = 20_000

# Sends every frame of a classic pcap out of one interface through a packet socket;
# with a VLAN id, each frame gets an 802.1Q tag first.
SENDER = textwrap.dedent("""
    import socket, struct, sys
    iface, path, vlan = sys.argv[1], sys.argv[2], int(sys.argv[3])
    raw = open(path, "rb").read()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    off, sent = 24, 0
    tag = struct.pack("!HH", 0x8100, vlan)
    while off + 16 <= len(raw):
        caplen = struct.unpack_from("<I", raw, off + 8)[0]
        frame = raw[off + 16:off + 16 + caplen]
        if vlan:
            frame = frame[:12] + tag + frame[12:]
        while True:
            try:
                s.send(frame)
                break
            except BlockingIOError:
                pass
            except OSError as exc:  # ENOBUFS: the qdisc is full for a moment
                if exc.errno != 105:
                    raise
        sent += 1
        off += 16 + caplen
    print("SENT", sent, flush=True)
""")


@pytest.fixture(scope="module")
def burst(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("burst") / "burst.pcap"
    make_capture(path, BURST)
    os.chmod(path.parent, 0o755)
    return path


def send_burst(net: Net, burst: Path, vlan: int = 0) -> int:
    r = net.run("fw", [sys.executable, "-c", SENDER, "c0", str(burst), str(vlan)], timeout=120)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[1])


def summary(text: str, what: str) -> int:
    m = re.search(rf"(\d+) packets {what}", text)
    assert m, text
    return int(m.group(1))


def stop_tcpdump(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=30)


def _analysed(path: Path) -> tuple[list, list]:
    """Every reset and flow record of an offline analysis, as JSON values."""
    from rstscope.api import analyze

    a = analyze(path)
    def norm(recs: list) -> list:
        return [json.loads(json.dumps(r.to_dict(), default=str)) for r in recs]
    return norm(a.tracker.resets()), norm(a.tracker.flows())


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_capture_burst_keeps_every_packet(net: Net, open_dir: Path, burst: Path,
                                          fmt: str) -> None:
    ref = open_dir / "ref.pcap"
    dump, dump_err = start_tcpdump(net, ref)
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", f"ring.{fmt}", "--format", fmt],
                    cwd=open_dir)
    live.wait_listening()
    assert "TPACKET_V3 ring" in live.err.text
    sent = send_burst(net, burst)
    assert sent == BURST
    time.sleep(0.5)
    assert live.interrupt() == 0, live.err.text
    stop_tcpdump(dump)
    dump_err.join()
    assert summary(dump_err.text, "captured") == sent, dump_err.text
    assert summary(live.err.text, "captured") == sent, live.err.text
    assert summary(live.err.text, "dropped by kernel") == 0
    assert summary(live.err.text, "received by filter") == sent
    ours = open_dir / f"ring.{fmt}"
    # Same packets, bytes and order as tcpdump's, as tshark dissects them ...
    assert tshark_rows(ours) == tshark_rows(ref)
    # ... with the kernel's timestamps to the nanosecond (tcpdump -nano: same clock, same
    # packets, stamped once by the kernel for both sockets) ...
    from rstscope.ingest import open_capture

    ts_ours = [int(t) for b in open_capture(ours) for t in b["ts_ns"]]
    ts_ref = [int(t) for b in open_capture(ref) for t in b["ts_ns"]]
    assert len(ts_ours) == sent and ts_ours == ts_ref
    # ... and the file analyses exactly like tcpdump's.
    assert _analysed(ours) == _analysed(ref)


def test_watch_burst_keeps_every_packet_and_reports_like_offline(net: Net, open_dir: Path,
                                                                 burst: Path) -> None:
    from rstscope.api import analyze

    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "-w", "w.pcapng"], cwd=open_dir)
    live.wait_listening()
    sent = send_burst(net, burst)
    live.wait_out(lambda s: json.loads(s)["event"] == "reset", 10)
    time.sleep(0.5)
    assert live.interrupt() == 0, live.err.text
    docs = [json.loads(line) for _, line in live.out.items]
    final = [d for d in docs if d["event"] == "summary"][0]
    assert final["captured"] == final["written"] == sent
    assert final["dropped_by_kernel"] == 0 and final["source"] == "TPACKET_V3 ring"
    printed = [{k: v for k, v in d.items() if k not in ("event", "reported_ts")}
               for d in docs if d["event"] == "reset"]
    offline = [json.loads(json.dumps(r.to_dict(), default=str))
               for r in analyze(open_dir / "w.pcapng").tracker.resets()]
    assert len(printed) >= 2  # the burst holds 100 flows, 2 of them end in resets
    assert sorted(printed, key=lambda d: d["frame"]) == sorted(offline, key=lambda d: d["frame"])


def test_vlan_tags_put_back_like_tcpdump(net: Net, open_dir: Path, burst: Path) -> None:
    # The receiving kernel strips 802.1Q tags into metadata before packet sockets see
    # them; both tools must write the tag back into the frame.
    ref = open_dir / "ref.pcap"
    dump, dump_err = start_tcpdump(net, ref, bpf="vlan and tcp port 443")
    live = LiveProc(net, ["capture", "-i", "eth0", "-f", "vlan and tcp port 443",
                          "-w", "v.pcapng", "-c", "2000"], cwd=open_dir)
    live.wait_listening()
    send_burst(net, burst, vlan=42)
    assert live.proc.wait(timeout=30) == 0, live.err.text
    live.err.join()
    time.sleep(0.3)
    stop_tcpdump(dump)
    dump_err.join()
    rows = subprocess.run(["tshark", "-n", "-r", str(open_dir / "v.pcapng"), "-T", "fields",
                           "-e", "vlan.id", "-e", "tcp.seq_raw", "-e", "frame.len"],
                          capture_output=True, text=True, timeout=60).stdout.splitlines()
    ref_rows = subprocess.run(["tshark", "-n", "-r", str(ref), "-c", "2000", "-T", "fields",
                               "-e", "vlan.id", "-e", "tcp.seq_raw", "-e", "frame.len"],
                              capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert len(rows) == 2000 and rows == ref_rows
    assert all(r.startswith("42\t") for r in rows)


def test_drops_are_reported_while_running(net: Net, open_dir: Path, burst: Path) -> None:
    # A small ring and a stalled reader (SIGSTOP): the kernel must drop, and rstscope must
    # say so as soon as it runs again, not only in the final summary, and account for
    # every packet: captured + dropped = sent.
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "d.pcapng", "-B", "256"],
                    cwd=open_dir)
    live.wait_listening()
    os.killpg(live.proc.pid, signal.SIGSTOP)
    try:
        sent = send_burst(net, burst)
    finally:
        os.killpg(live.proc.pid, signal.SIGCONT)
    _, line = live.err.wait(lambda s: "dropped by kernel since the last report" in s, 10)
    assert live.proc.poll() is None  # reported while still capturing
    assert "ring full" in line, line  # the kernel's freeze counter, as well as its drops
    assert live.interrupt() == 0, live.err.text
    captured = summary(live.err.text, "captured")
    dropped = summary(live.err.text, "dropped by kernel")
    assert dropped > 0 and captured + dropped == sent, live.err.text
    assert summary(live.err.text, "written to") == captured


def test_fallback_without_ring_says_so(net: Net, open_dir: Path, burst: Path) -> None:
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "f.pcapng", "-c", "500"], cwd=open_dir,
                    env=child_env(RSTSCOPE_LIVE_RING="0"))
    live.wait_listening()
    assert "no TPACKET_V3 ring (RSTSCOPE_LIVE_RING=0); using the per-packet recvmsg path" \
        in live.err.text
    assert "recvmsg (per packet)" in live.err.text
    send_burst(net, burst)
    assert live.proc.wait(timeout=30) == 0, live.err.text
    live.err.join()
    assert len(tshark_rows(open_dir / "f.pcapng")) == 500
