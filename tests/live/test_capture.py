"""``rstscope capture`` on real interfaces in namespaces, checked against real tcpdump and tshark."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.live.conftest import NOBODY, LiveProc, child_env, live_argv, needs_root, start_tcpdump
from tests.live.netlab import Net

pytestmark = [pytest.mark.root, needs_root]

FIELDS = ("tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len",
          "frame.len")


def tshark_rows(path: Path) -> list[tuple[str, ...]]:
    """Per-packet header fields as tshark dissects them (fails on an invalid file)."""
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for f in FIELDS:
        argv += ["-e", f]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"tshark cannot read {path}: {r.stderr}"
    return [tuple(line.split("|")) for line in r.stdout.splitlines()]


def capinfos_count(path: Path) -> int:
    r = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, f"capinfos cannot read {path}: {r.stderr}"
    return int(r.stdout.split("\t")[1])


def rotated_files(directory: Path, stem: str) -> list[Path]:
    """tcpdump -C naming: stem, stem1, stem2, ... in rotation order."""
    def order(p: Path) -> int:
        tail = p.name[len(stem):]
        return int(tail) if tail else 0
    return sorted((p for p in directory.iterdir() if p.name.startswith(stem)), key=order)


def run_chatter(net: Net, n: int) -> None:
    cli = net.client(f"chatter {n}")
    out, err = cli.communicate(timeout=30)
    assert "EOF" in out, err


@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_rotation_keeps_every_packet(net: Net, open_dir: Path, fmt: str) -> None:
    net.start_server()
    ref = open_dir / "ref.pcap"
    dump, _ = start_tcpdump(net, ref)
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", f"rot.{fmt}", "--format", fmt,
                          "-C", "8k"], cwd=open_dir)
    live.wait_listening()
    run_chatter(net, 120)
    run_chatter(net, 60)
    time.sleep(0.5)  # let the last ACKs reach both sockets
    assert live.interrupt() == 0, live.err.text
    dump.send_signal(2)
    dump.wait(timeout=20)

    files = rotated_files(open_dir, f"rot.{fmt}")
    for f in files:  # every part is a valid capture on its own
        assert capinfos_count(f) > 0, f
    assert len(files) >= 3, files
    for f in files:
        assert f.stat().st_size <= 8 * 1024, f  # -C 8k = 8 KiB, checked before each write
        assert f.stat().st_uid == 0  # plain root (no sudo): files stay root's, like tcpdump
    # mergecap -a concatenates in the given order: one tshark run for all files.
    joined = open_dir / f"joined.{fmt}"
    r = subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", str(joined), *map(str, files)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ours = tshark_rows(joined)
    theirs = tshark_rows(ref)
    assert len(theirs) > 300
    # Same packets, same order, nothing lost at any of the rotations.
    assert ours == theirs
    m = re.search(r"(\d+) packets captured", live.err.text)
    assert m and int(m.group(1)) == len(theirs), live.err.text
    assert re.search(r"\d+ packets dropped by kernel", live.err.text)
    assert re.search(r"\d+ packets dropped by interface", live.err.text)


def test_ring_buffer_keeps_n_files(net: Net, open_dir: Path) -> None:
    net.start_server()
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "ring.pcapng", "-C", "4k", "-W", "3"],
                    cwd=open_dir)
    live.wait_listening()
    run_chatter(net, 150)
    time.sleep(0.3)
    assert live.interrupt() == 0, live.err.text
    names = sorted(p.name for p in open_dir.iterdir())
    assert names == ["ring.pcapng0", "ring.pcapng1", "ring.pcapng2"]
    for p in open_dir.iterdir():
        assert capinfos_count(p) > 0 and p.stat().st_size <= 4096


def test_time_rotation_and_count(net: Net, open_dir: Path) -> None:
    net.start_server()
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "t-%H%M%S.pcapng", "-G", "1",
                          "-c", "200"], cwd=open_dir)
    live.wait_listening()
    for _ in range(3):
        run_chatter(net, 40)
        time.sleep(0.7)
    # -c 200: it stops by itself once 200 packets are written.
    assert live.proc.wait(timeout=20) == 0, live.err.text
    live.out.join()
    live.err.join()
    files = sorted(open_dir.iterdir())
    assert len(files) >= 2, files
    assert sum(capinfos_count(p) for p in files) == 200
    assert all(re.fullmatch(r"t-\d{6}\.pcapng(\.\d+)?", p.name) for p in files), files


def test_ctrl_c_mid_traffic_leaves_valid_file(net: Net, open_dir: Path) -> None:
    net.start_server()
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "cut.pcapng"], cwd=open_dir)
    live.wait_listening()
    cli = net.client("chatter 300")  # ~3 s of traffic; interrupt in the middle
    time.sleep(1.0)
    assert live.interrupt() == 0
    cli.communicate(timeout=30)
    rows = tshark_rows(open_dir / "cut.pcapng")
    m = re.search(r"(\d+) packets written", live.err.text)
    assert m and int(m.group(1)) == len(rows) > 50, live.err.text


def test_drop_to_nobody_with_Z(net: Net, open_dir: Path) -> None:
    net.start_server()
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "z.pcapng", "-Z", "nobody", "-c", "4"],
                    cwd=open_dir)
    live.wait_listening()
    run_chatter(net, 3)
    assert live.proc.wait(timeout=20) == 0, live.err.text
    st = (open_dir / "z.pcapng").stat()
    assert (st.st_uid, st.st_gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert len(tshark_rows(open_dir / "z.pcapng")) == 4


def test_sudo_invoker_owns_output(net: Net, open_dir: Path) -> None:
    # As under `sudo`: the files belong to the invoking user, never to root.
    live = LiveProc(net, ["capture", "-i", "eth0", "-w", "s.pcapng", "--duration", "0.5"],
                    cwd=open_dir,
                    env=child_env(SUDO_UID=str(NOBODY.pw_uid), SUDO_GID=str(NOBODY.pw_gid)))
    assert live.proc.wait(timeout=20) == 0, live.err.text
    live.err.join()
    assert (open_dir / "s.pcapng").stat().st_uid == NOBODY.pw_uid


def test_drop_then_unwritable_output_exits_74(net: Net, open_dir: Path) -> None:
    private = open_dir / "private"
    private.mkdir(mode=0o700)
    r = net.run("client", live_argv("capture", "-i", "eth0", "-Z", "nobody",
                                    "-w", str(private / "x.pcapng"), "-c", "1"),
                env=child_env())
    assert r.returncode == 74, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in r.stderr
    assert not list(private.iterdir())


@pytest.mark.parametrize(("args", "needle"), [
    (["-i", "nosuch0"], "no such interface"),
    (["-i", "eth0", "-f", "tcp port banana"], "bad filter"),
    (["-i", "eth0", "-C", "lots"], "bad file size"),
    (["-i", "eth0", "-W", "3"], "-W needs -C or -G"),
])
def test_usage_errors_exit_2(net: Net, open_dir: Path, args: list[str], needle: str) -> None:
    r = net.run("client", live_argv("capture", *args, "-w", str(open_dir / "u.pcapng")),
                env=child_env())
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_missing_output_dir_exits_74(net: Net, open_dir: Path) -> None:
    r = net.run("client", live_argv("capture", "-i", "eth0", "-c", "1",
                                    "-w", str(open_dir / "no" / "such" / "x.pcapng")),
                env=child_env())
    assert r.returncode == 74, r.stderr
    assert "cannot write" in r.stderr and "Traceback" not in r.stderr
    assert os.listdir(open_dir) == []
