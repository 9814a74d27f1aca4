"""A corpus of broken captures, made from real captures, through the whole analysis.

Every input: no exception other than an RstscopeError, bounded time and
memory, and the valid part analysed: the resets found are checked against
tshark's reading of the same damaged file (an independent reader).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest

from rstscope.api import analyze
from rstscope.errors import CaptureError, RstscopeError
from tests.robustness.corpus import (
    DAMAGE_KINDS,
    NG_DAMAGE_KINDS,
    can_capture,
    damage,
    damage_pcapng,
    ipv6_extension_capture,
    loopback_capture,
    shared_captures,
)

UNREADABLE = {"truncated-header", "zero-length", "wrong-magic", "text-file", "ng-no-section-header"}
# Damage after which tshark and rstscope must find exactly the same RSTs.
EXACT = {"truncated-last-record", "truncated-in-record-header", "out-of-order-timestamps",
         "duplicated-packets", "snaplen-65535-header", "ng-truncated-last-block",
         "ng-second-section", "caplen-gt-wirelen"}
TIME_LIMIT_S = 10.0  # per analysis; the largest input here is a few MB (clean: < 0.5 s)
MEMORY_LIMIT = 200 << 20  # bytes of Python/numpy heap at peak, for captures of a few KB


def tshark_rst_count(path: Path) -> int:
    """RSTs tshark decodes from (the readable part of) a file; tshark exits non-zero on damage."""
    res = subprocess.run(["tshark", "-r", str(path), "-n", "-Y", "tcp.flags.reset == 1",
                          "-T", "fields", "-e", "frame.number"], capture_output=True, text=True)
    return len(res.stdout.split())


def _run(source: Path | bytes) -> object:
    try:
        result = analyze(io.BytesIO(source) if isinstance(source, bytes) else source)
        result.reset_records()
        return result
    except RstscopeError as exc:
        return exc


def checked_analysis(source: Path | bytes, *, memory: bool = True):  # type: ignore[no-untyped-def]
    """analyze() under time and memory limits; returns the Analysis or the RstscopeError.

    ``bytes`` are read through a file object (the streaming path, no mmap).
    Time is measured on a plain run; memory on a second run under tracemalloc
    (which slows allocation-heavy code several times over).
    """
    t0 = time.monotonic()
    result = _run(source)
    elapsed = time.monotonic() - t0
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.1f} s"
    if memory:
        tracemalloc.start()
        try:
            _run(source)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < MEMORY_LIMIT, f"peak heap {peak >> 20} MiB"
    if not isinstance(result, RstscopeError):
        assert result.read_stats.check()  # type: ignore[attr-defined]
    return result


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    why = can_capture()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("real")
    out = {"pcap": loopback_capture(d / "lo.pcap")}
    if shutil.which("editcap"):
        subprocess.run(["editcap", "-F", "pcapng", str(out["pcap"]), str(d / "lo.pcapng")],
                       check=True)
        out["pcapng"] = d / "lo.pcapng"
    return out


def _check_damaged(kind: str, data: bytes, tmp_path: Path) -> None:
    broken = tmp_path / "broken.cap"
    broken.write_bytes(data)
    result = checked_analysis(broken)
    if kind in UNREADABLE:
        assert isinstance(result, CaptureError), f"{kind}: expected CaptureError, got {result!r}"
        return
    assert not isinstance(result, RstscopeError), f"{kind}: {result}"
    found = len(result.reset_records())
    if shutil.which("tshark"):
        expected = tshark_rst_count(broken)
        if kind in EXACT:
            assert found == expected, f"{kind}: {found} resets, tshark reads {expected} RSTs"
        elif "unsupported-linktype" in kind:
            assert found == 0
        else:
            # tshark stops at the first corrupt record; rstscope resynchronises.
            assert found >= expected, f"{kind}: {found} resets, tshark reads {expected}"
    # The same bytes from a file object (no mmap path) give the same answer.
    again = checked_analysis(data)
    assert not isinstance(again, RstscopeError)
    assert len(again.reset_records()) == found


@pytest.mark.parametrize("kind", DAMAGE_KINDS)
def test_damaged_pcap(kind: str, real: dict[str, Path], tmp_path: Path) -> None:
    _check_damaged(kind, damage(real["pcap"].read_bytes(), kind, seed=1), tmp_path)


@pytest.mark.parametrize("kind", NG_DAMAGE_KINDS)
def test_damaged_pcapng(kind: str, real: dict[str, Path], tmp_path: Path) -> None:
    if "pcapng" not in real:
        pytest.skip("editcap is not installed")
    _check_damaged(kind, damage_pcapng(real["pcapng"].read_bytes(), kind, seed=1), tmp_path)


def test_ipv6_extension_header_chain(tmp_path: Path) -> None:
    why = can_capture()
    if why:
        pytest.skip(why)
    cap = ipv6_extension_capture(tmp_path / "ext.pcap")
    result = checked_analysis(cap)
    assert not isinstance(result, RstscopeError)
    assert len(result.reset_records()) == tshark_rst_count(cap) >= 1
    # Every client packet (behind hop-by-hop and destination options) was decoded as TCP.
    res = subprocess.run(["tshark", "-r", str(cap), "-Y", "tcp && ipv6.nxt == 0", "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True)
    assert res.stdout.split(), "the capture should hold packets with extension headers"
    assert result.read_stats.tcp == int(subprocess.run(
        ["tshark", "-r", str(cap), "-Y", "tcp", "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True).stdout.count("\n"))


@pytest.mark.parametrize("snaplen", [65535, 96, 54, 40, 1])
def test_snaplen(snaplen: int, real: dict[str, Path], tmp_path: Path) -> None:
    if shutil.which("editcap") is None:
        pytest.skip("editcap is not installed")
    cut = tmp_path / "cut.pcap"
    subprocess.run(["editcap", "-s", str(snaplen), str(real["pcap"]), str(cut)], check=True)
    result = checked_analysis(cut)
    assert not isinstance(result, RstscopeError)
    if snaplen >= 54:  # Ethernet + IPv4 + TCP flags still captured (IPv6 needs 74)
        assert len(result.reset_records()) >= 1


def test_merged_client_and_server_views(real: dict[str, Path], tmp_path: Path) -> None:
    """Two real captures of the same flows (lo and any) merged by real mergecap."""
    if shutil.which("mergecap") is None:
        pytest.skip("mergecap is not installed")
    lo = real["pcap"]
    # The same traffic seen twice: a copy of the capture shifted by 1 µs, as a
    # second interface on the path would record it (mergecap interleaves by time).
    shifted = tmp_path / "shifted.pcap"
    subprocess.run(["editcap", "-t", "0.000001", str(lo), str(shifted)], check=True)
    merged = tmp_path / "merged.pcapng"
    subprocess.run(["mergecap", "-w", str(merged), str(lo), str(shifted)], check=True)
    appended = tmp_path / "appended.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(appended), str(lo), str(shifted)], check=True)
    single = checked_analysis(lo)
    assert not isinstance(single, RstscopeError)
    n_rst = len(single.reset_records())
    for path, anomaly in ((merged, "duplicate-packets"), (appended, "timestamp-backwards")):
        result = checked_analysis(path)
        assert not isinstance(result, RstscopeError)
        stats = result.read_stats
        assert stats.damage[anomaly] > 0, f"{path.name}: {anomaly} not counted"
        assert any(anomaly.split("-")[0] in w for w in stats.warnings)
        # Every RST packet still yields exactly one reset record.
        assert len(result.reset_records()) == 2 * n_rst == tshark_rst_count(path)
        assert {r["origin"] for r in result.reset_records()} == \
            {r["origin"] for r in single.reset_records()}
    assert checked_analysis(lo).read_stats.damage == {}  # type: ignore[union-attr]


SHARED = shared_captures()
SHARED_DAMAGE = ("truncated-last-record", "garbage-middle", "corrupt-ip-headers",
                 "random-bytes-everywhere", "zero-caplen", "out-of-order-timestamps")


@pytest.mark.skipif(not SHARED, reason="../shared/captures is not present")
def test_damaged_public_captures(tmp_path: Path) -> None:
    """Every public capture, damaged in several ways, never breaks the analysis."""
    checked = 0
    for cap in SHARED:
        data = cap.read_bytes()
        is_pcap = data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                               b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        kinds = SHARED_DAMAGE if is_pcap else ("ng-truncated-last-block",
                                                "ng-corrupt-block-length",
                                                "ng-garbage-between-blocks")
        for kind in kinds:
            try:
                broken = damage(data, kind, 3) if is_pcap else damage_pcapng(data, kind, 3)
            except (IndexError, ValueError, ZeroDivisionError):
                continue  # too few records for this kind of damage
            result = checked_analysis(broken, memory=False)
            assert not isinstance(result, RstscopeError) or isinstance(result, CaptureError), \
                f"{cap.name} {kind}: {result}"
            checked += 1
    assert checked > 300
