"""Captures written by real tools (tcpdump, dumpcap, editcap, mergecap, gzip) of real
loopback traffic, read by rstscope and compared field by field with tshark."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rstscope.ingest import open_capture
from tests.ingest.helpers import (
    custom_block,
    epb,
    ether_to,
    idb,
    pcap_records,
    read_all,
    shb,
    spb,
    write_pcap,
)
from tests.ingest.tshark_ref import compare, tshark_count, tshark_rows
from tests.loopback import Tcpdump, in_private_netns

TLS_HELLO = bytes([22, 3, 1, 0, 200, 1]) + b"\x00" * 199


def _free_port(family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return int(s.getsockname()[1])


def _traffic(port: int, closed_port: int) -> None:
    """Normal exchanges (v4 and v6), an abortive close (RST) and a refused connect."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host, port))
        srv.listen(4)
        try:
            for abort in (False, True):
                cli = socket.create_connection((host, port))
                conn, _ = srv.accept()
                msg = TLS_HELLO + os.urandom(3000)
                cli.sendall(msg)
                conn.settimeout(5)
                got = 0
                while got < len(msg):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    got += len(chunk)
                conn.sendall(b"\x17\x03\x03\x00\x20" + b"r" * 5000)
                time.sleep(0.05)
                if abort:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                time.sleep(0.05)
                cli.close()
        finally:
            srv.close()
        with contextlib.suppress(OSError):
            socket.create_connection((host, closed_port), timeout=1).close()


def _live_captures(d: Path) -> dict[str, Path]:
    """Five captures of the same traffic at once, each by another tool or link type."""
    dumpcap = shutil.which("dumpcap")
    port, closed = _free_port(), _free_port()
    flt = f"tcp port {port} or tcp port {closed}"
    specs: dict[str, tuple[str, ...]] = {
        "lo.pcap": ("-s", "0"),
        "lo-nano.pcap": ("--time-stamp-precision", "nano"),
        "any-sll.pcap": ("-i", "any", "-y", "LINUX_SLL"),
        "any-sll2.pcap": ("-i", "any", "-y", "LINUX_SLL2"),
    }
    dumps: list[Tcpdump] = []
    dc: subprocess.Popen[bytes] | None = None
    try:
        for name, extra in specs.items():
            dumps.append(Tcpdump(d / name, flt, extra_args=extra))
        if dumpcap:
            dc = subprocess.Popen([dumpcap, "-q", "-i", "lo", "-f", flt, "-w",
                                   str(d / "dumpcap.pcapng")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # dumpcap is live once its file holds the section and interface blocks.
            deadline = time.monotonic() + 10
            out = d / "dumpcap.pcapng"
            while time.monotonic() < deadline and not (out.exists() and out.stat().st_size >= 24):
                time.sleep(0.05)
            time.sleep(0.5)
        _traffic(port, closed)
        time.sleep(0.5)
    finally:
        for dump in dumps:
            dump.stop(settle_s=0)
        if dc is not None:
            dc.send_signal(2)
            try:
                dc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                dc.kill()
                dc.wait()
    names = [*specs, *(["dumpcap.pcapng"] if dumpcap else [])]
    return {n: d / n for n in names}


@pytest.fixture(scope="module")
def live_caps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real loopback captures by real tools, in a private network namespace (no root)."""
    caps: dict[str, Path] = in_private_netns(_live_captures, tmp_path_factory.mktemp("live"))
    return caps


LIVE = ["lo.pcap", "lo-nano.pcap", "any-sll.pcap", "any-sll2.pcap", "dumpcap.pcapng"]


def _check_against_tshark(tshark: str, path, src=None, *, min_rst: int = 1) -> None:
    batch, stats = read_all(path if src is None else src)
    rows = tshark_rows(tshark, path)
    assert stats.check()
    assert stats.tcp == len(rows) > 0
    problems = compare(batch, rows)
    assert not problems, "\n".join(problems)
    assert stats.rst >= min_rst
    container_damage = {"cut-short-record", "garbage-bytes", "unreadable-tail",
                        "compressed-stream-error"}
    assert not container_damage & set(stats.damage), stats.warnings


@pytest.mark.parametrize("name", LIVE)
def test_live_capture_equals_tshark(live_caps, tshark, name):
    if name not in live_caps:
        pytest.skip("dumpcap not installed")
    path = live_caps[name]
    _check_against_tshark(tshark, path, min_rst=3)
    batch, _ = read_all(path)
    # The traffic above sent TLS-looking records; the reader must have spotted them.
    assert (batch["tls_ct"] == 22).any() and (batch["tls_hs"] == 1).any()
    assert (batch["tls_ct"] == 23).any()
    assert set(batch["ip_v"].tolist()) == {4, 6}
    assert (batch["mss"] > 0).any() and (batch["wscale"] >= 0).any() and batch["sack_ok"].any()


def test_linktypes_seen(live_caps):
    expect = {"lo.pcap": 1, "lo-nano.pcap": 1, "any-sll.pcap": 113, "any-sll2.pcap": 276}
    for name, lt in expect.items():
        _, stats = read_all(live_caps[name])
        assert set(stats.linktypes) == {lt}
    _, stats = read_all(live_caps["lo-nano.pcap"])
    assert stats.files[0].format.startswith("pcap-ns")


@pytest.mark.parametrize("args", [["-F", "pcapng"], ["-F", "pcapng", "-s", "60"],
                                  ["-s", "54"], ["-s", "40"], ["-s", "70"], ["-s", "90"]],
                         ids=["pcapng", "pcapng-snap60", "snap54", "snap40", "snap70",
                              "snap90"])
def test_editcap_variants(live_caps, tshark, tmp_path, args):
    src = live_caps["lo.pcap"]
    out = tmp_path / "out"
    subprocess.run(["editcap", *args, str(src), str(out)], check=True, capture_output=True)
    snap = int(args[args.index("-s") + 1]) if "-s" in args else 0
    # At snaplen 40 the TCP flags byte of every segment is cut: no RST is visible.
    _check_against_tshark(tshark, out, min_rst=0 if snap and snap < 54 else 1)
    if snap:
        batch, _ = read_all(out)
        # Headers (with options) cut by the snaplen are flagged; payload cuts are not.
        # Expected from tshark's header lengths on the uncut capture.
        full = {int(r["frame.number"]): r for r in tshark_rows(tshark, src)}
        want = [14 + int(full[f].get("ip.hdr_len") or 40) + int(full[f]["tcp.hdr_len"]) > snap
                for f in batch["frame"].tolist()]
        assert batch["truncated"].tolist() == want
        assert any(want) or snap >= 90


def test_gzip_path_fileobj_and_stdin(live_caps, tshark, tmp_path):
    src = live_caps["dumpcap.pcapng"] if "dumpcap.pcapng" in live_caps else live_caps["lo.pcap"]
    gz = tmp_path / "cap.bin"  # no .gz extension: detection is by magic
    gz.write_bytes(gzip.compress(src.read_bytes()))
    want, _ = read_all(src)
    rows = tshark_rows(tshark, src)
    for source in (gz, io.BytesIO(gz.read_bytes()), io.BytesIO(src.read_bytes())):
        batch, stats = read_all(source)
        assert not compare(batch, rows)
    # stdin, through a real pipe into a child process
    code = ("import sys; from rstscope.ingest import open_capture\n"
            "rd = open_capture('-'); n = sum(len(b) for b in rd)\n"
            "print(n, rd.stats.rst)")
    for data in (src.read_bytes(), gz.read_bytes()):
        r = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                           check=True)
        assert r.stdout.split() == [str(len(rows)).encode(),
                                    str(tshark_count(tshark, src, "tcp.flags.reset==1")).encode()]


def test_small_stream_chunks_cross_record_boundaries(live_caps, tshark):
    src = live_caps["lo.pcap"]
    rows = tshark_rows(tshark, src)
    from rstscope.ingest.reader import CaptureReader

    with CaptureReader([io.BytesIO(src.read_bytes())], batch_size=7, chunk=300) as rd:
        parts = list(rd)
    assert all(len(p) <= 7 for p in parts)
    assert not compare(np.concatenate(parts), rows)


def test_rotated_file_list(live_caps, tshark, tmp_path):
    src = live_caps["lo.pcap"]
    subprocess.run(["editcap", "-c", "9", str(src), str(tmp_path / "rot.pcap")], check=True,
                   capture_output=True)
    files = sorted(tmp_path.glob("rot*.pcap"))
    assert len(files) >= 3
    batch, stats = read_all(files)
    assert len(stats.files) == len(files)
    for fid, f in enumerate(files):
        part = batch[batch["file_id"] == fid]
        assert not compare(part, tshark_rows(tshark, f))
        assert stats.files[fid].frames == int(subprocess.run(
            ["capinfos", "-T", "-r", "-c", str(f)], capture_output=True, text=True,
            check=True).stdout.split()[-1])
    assert stats.tcp == tshark_count(tshark, src, "tcp")
    # Frame numbers restart in each file.
    assert (batch[batch["file_id"] == 1]["frame"][:1] == 1).all()


def test_mergecap_multi_interface(live_caps, tshark, tmp_path):
    out = tmp_path / "m.pcapng"
    ins = [str(live_caps[n]) for n in ("lo.pcap", "any-sll.pcap", "any-sll2.pcap")]
    subprocess.run(["mergecap", "-w", str(out), *ins], check=True, capture_output=True)
    _check_against_tshark(tshark, out)
    _, stats = read_all(out)
    assert set(stats.linktypes) == {1, 113, 276}


def test_multiple_sections(live_caps, tshark, tmp_path):
    a = tmp_path / "a.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(live_caps["lo.pcap"]), str(a)], check=True)
    b = tmp_path / "b.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(live_caps["any-sll2.pcap"]), str(b)],
                   check=True)
    cat = tmp_path / "two-sections.pcapng"
    cat.write_bytes(a.read_bytes() + b.read_bytes())
    _check_against_tshark(tshark, cat)


@pytest.mark.parametrize("lt,endian", [(101, "<"), (12, "<"), (14, "<"), (228, "<"),
                                       (229, "<"), (0, "<"), (0, ">"), (108, "<"),
                                       (276, "<"), (1, ">")],
                         ids=["raw101", "raw12", "raw14", "ipv4", "ipv6", "null-le", "null-be",
                              "loop", "sll2", "ether-bigendian-pcap"])
def test_rewritten_linktypes(live_caps, tshark, tmp_path, lt, endian):
    hdr, recs = pcap_records(live_caps["lo.pcap"])
    out = tmp_path / f"lt{lt}.pcap"
    if lt == 1:
        write_pcap(out, 1, recs, endian=">")
    elif lt == 0:
        write_pcap(out, 0, ether_to(recs, 0, af_endian=endian))
    else:
        write_pcap(out, lt, ether_to(recs, lt))
    if lt in (12, 14):
        # tshark maps pcap link types 12/14 to raw IP only on some builds; compare
        # against the same frames written as LINKTYPE_RAW instead.
        ref = tmp_path / "ref101.pcap"
        write_pcap(ref, 101, ether_to(recs, 101))
        batch, stats = read_all(out)
        assert not compare(batch, tshark_rows(tshark, ref))
        return
    _check_against_tshark(tshark, out)


def _pcapng_bytes(recs, e: str) -> bytes:
    """Two interfaces of different link types and clocks, EPBs and SPBs, a skipped block."""
    raw = ether_to(recs, 101)
    blob = shb(e) + idb(1, e, tsresol=0x80 | 20, tsoffset=-3600) + custom_block(e)
    blob += idb(101, e, tsresol=9)
    for i, ((sec, usec, wl, data), (_s, _u, wl2, ip)) in enumerate(zip(recs, raw, strict=False)):
        if i % 2:
            units = ((sec + 3600) << 20) + (usec << 20) // 1_000_000
            blob += epb(0, units, data, wl, e)
        else:
            blob += epb(1, (sec * 1_000_000 + usec) * 1000, ip, wl2, e)
    return blob


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_crafted_interfaces(live_caps, tshark, tmp_path, endian):
    _, recs = pcap_records(live_caps["lo.pcap"])
    recs = [r for r in recs if r[3][12:14] in (b"\x08\x00", b"\x86\xdd")]
    out = tmp_path / "crafted.pcapng"
    out.write_bytes(_pcapng_bytes(recs, endian))
    _check_against_tshark(tshark, out)
    _, stats = read_all(out)
    assert set(stats.linktypes) == {1, 101}


def test_pcapng_simple_packet_blocks(live_caps, tshark, tmp_path):
    _, recs = pcap_records(live_caps["lo.pcap"])
    blob = shb() + idb(1, snaplen=0)
    for _sec, _usec, wl, data in recs:
        blob += spb(data, wl)
    out = tmp_path / "spb.pcapng"
    out.write_bytes(blob)
    batch, stats = read_all(out)
    rows = tshark_rows(tshark, out)
    # SPBs carry no timestamp: tshark shows none, rstscope stores 0.
    assert not any("frame.time_epoch" in r for r in rows)
    assert not compare(batch, rows)
    assert (batch["ts_ns"] == 0).all()


def test_open_capture_accepts_pathlike_and_str(live_caps):
    p = live_caps["lo.pcap"]
    a, _ = read_all(p)
    b, _ = read_all(str(p))
    assert (a == b).all()
    with open_capture(p) as rd:
        first = next(iter(rd))
    assert len(first)
