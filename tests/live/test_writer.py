"""The streaming writer: files real tools read back identically, tcpdump rotation rules."""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from rstscope.errors import OutputError, UsageError
from rstscope.live.writer import Interface, RotatingWriter, RotationPolicy, parse_size
from tests.conftest import shared_path

needs_tshark = pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed")

SHARED = shared_path()


def read_classic_pcap(path: Path) -> tuple[int, int, list[tuple[int, bytes, int]]]:
    """(linktype, snaplen, [(ts_ns, data, wirelen)]) — a test-local reader, not rstscope's."""
    raw = path.read_bytes()
    magic = raw[:4]
    for endian in ("<", ">"):
        (m,) = struct.unpack(endian + "I", magic)
        if m in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise ValueError("not a classic pcap")
    scale = 1000 if m == 0xA1B2C3D4 else 1
    snaplen, linktype = struct.unpack_from(endian + "II", raw, 16)
    out = []
    off = 24
    while off + 16 <= len(raw):
        sec, frac, caplen, wirelen = struct.unpack_from(endian + "IIII", raw, off)
        data = raw[off + 16:off + 16 + caplen]
        if len(data) < caplen:
            break
        out.append((sec * 1_000_000_000 + frac * scale, data, wirelen))
        off += 16 + caplen
    return linktype & 0xFFFF, snaplen, out


@functools.lru_cache(maxsize=16)
def tshark_fields(path: Path) -> list[str]:
    r = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "tcp.analyze_sequence_numbers:FALSE", "-T", "fields",
         "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.protocols",
         "-e", "tcp.seq_raw", "-e", "tcp.flags", "-e", "tcp.len"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def shared_pcaps() -> list[Path]:
    if not SHARED.is_dir():
        return []
    found = sorted(p for p in SHARED.rglob("*.pcap") if p.stat().st_size < 200_000)
    return [p for p in found if p.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                                                       b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")][:3]


@needs_tshark
@pytest.mark.skipif(not shared_pcaps(), reason="../shared captures not present")
@pytest.mark.parametrize("fmt", ["pcapng", "pcap"])
def test_rewritten_real_captures_dissect_identically(tmp_path: Path, fmt: str) -> None:
    # tshark is slow to start; pcap output is checked on one capture, pcapng on three.
    for src in shared_pcaps()[:1] if fmt == "pcap" else shared_pcaps():
        linktype, snaplen, frames = read_classic_pcap(src)
        out = tmp_path / f"{src.stem}.{fmt}"
        with RotatingWriter(out, fmt=fmt,  # type: ignore[arg-type]
                            interfaces=[Interface("x", linktype, snaplen or 262144)]) as w:
            for ts_ns, data, wirelen in frames:
                w.write(ts_ns, 0, data, wirelen)
        assert tshark_fields(out) == tshark_fields(src), src.name


def capinfos_counts(paths: list[Path]) -> list[int]:
    """Packets per file as capinfos counts them (one fast call for all files)."""
    r = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", *map(str, paths)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [int(line.split("\t")[1]) for line in r.stdout.splitlines()]


def _frame(i: int, size: int = 100) -> bytes:
    return i.to_bytes(4, "big") * (size // 4)


@needs_tshark
def test_size_rotation_names_and_keeps_every_packet(tmp_path: Path) -> None:
    pol = RotationPolicy(file_size_bytes=1000)
    with RotatingWriter(tmp_path / "c.pcapng", interfaces=[Interface("eth0", 1, 256)],
                        policy=pol) as w:
        where = [w.write(1_700_000_000_000_000_000 + i, 0, _frame(i), 1500) for i in range(50)]
    names = [p.name for p in w.paths]
    assert names[:3] == ["c.pcapng", "c.pcapng1", "c.pcapng2"] and len(names) > 5
    counts = capinfos_counts(w.paths)
    assert sum(counts) == 50
    assert all(p.stat().st_size <= 1000 for p in w.paths)
    # Written() labels agree with where tshark finds each packet.
    assert [x.file_id for x in where if x] == [i for i, n in enumerate(counts) for _ in range(n)]
    assert [x.frame for x in where if x] == [f for n in counts for f in range(1, n + 1)]


def test_ring_buffer_names_wrap(tmp_path: Path) -> None:
    pol = RotationPolicy(file_size_bytes=600, ring_files=12)
    with RotatingWriter(tmp_path / "r", interfaces=[Interface("eth0", 1, 256)], policy=pol,
                        fmt="pcap") as w:
        for i in range(100):
            w.write(i, 0, _frame(i), 100)
    assert len(w.paths) > 12
    assert w.paths[0].name == "r00" and w.paths[11].name == "r11" and w.paths[12].name == "r00"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"r{i:02d}" for i in range(12)]


def test_time_rotation_strftime_and_file_budget(tmp_path: Path) -> None:
    pattern = str(tmp_path / "g-%Y%m%d-%H%M%S.pcapng")
    pol = RotationPolicy(rotate_s=10, ring_files=3)
    w = RotatingWriter(pattern, interfaces=[Interface("eth0", 1, 256)], policy=pol)
    t0 = w._period_start_s  # the first file's period start (wall clock at open)
    for k in range(5):
        w.write(int((t0 + k * 10 + 1) * 1e9), 0, _frame(k), 100)
    w.close()
    # -G with -W 3: three files, then the budget is spent and capture must stop.
    assert len(w.paths) == 3 and w.exhausted
    assert [p.name for p in w.paths] == [
        time.strftime("g-%Y%m%d-%H%M%S.pcapng", time.localtime(t0 + k * 10)) for k in range(3)]


def test_time_rotation_without_strftime_never_overwrites(tmp_path: Path) -> None:
    w = RotatingWriter(tmp_path / "same.pcap", fmt="pcap", interfaces=[Interface("e", 1, 256)],
                       policy=RotationPolicy(rotate_s=1))
    t0 = w._period_start_s
    for k in range(3):
        w.write(int((t0 + k + 0.5) * 1e9), 0, _frame(k), 100)
    w.close()
    assert [p.name for p in w.paths] == ["same.pcap", "same.pcap.1", "same.pcap.2"]


def test_parse_size_like_tcpdump() -> None:
    assert parse_size("1") == 1_000_000  # bare number: millions of bytes
    assert parse_size("0.5") == 500_000
    assert parse_size("100k") == 102_400
    assert parse_size("2M") == 2 * 1024**2
    assert parse_size("1g") == 1024**3
    for bad in ("", "lots", "-1", "0", "1t"):
        with pytest.raises(UsageError):
            parse_size(bad)


def test_unwritable_and_mixed_linktypes(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write"):
        RotatingWriter(tmp_path / "missing" / "x.pcapng", interfaces=[Interface("e", 1, 256)])
    with pytest.raises(UsageError, match="one link type"):
        RotatingWriter(tmp_path / "x.pcap", fmt="pcap",
                       interfaces=[Interface("e", 1, 256), Interface("t", 101, 256)])
    with pytest.raises(UsageError, match="-W needs"):
        RotationPolicy(ring_files=2)
