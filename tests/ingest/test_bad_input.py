"""Damaged and non-capture inputs: clear one-line errors, or the valid part plus a warning."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rstscope.errors import EXIT_DATAERR, EXIT_NOINPUT, CaptureError, InputMissingError
from rstscope.ingest import open_capture
from tests.conftest import make_capture
from tests.ingest.helpers import read_all
from tests.ingest.tshark_ref import compare, tshark_count, tshark_rows


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic pcap (2,000 packets) from the benchmark generator."""
    out = tmp_path_factory.mktemp("bad") / "good.pcap"
    return make_capture(out, 2000)


@pytest.fixture(scope="module")
def good_ng(good: Path) -> Path:
    out = good.with_suffix(".pcapng")
    subprocess.run(["editcap", "-F", "pcapng", str(good), str(out)], check=True,
                   capture_output=True)
    return out


def _offsets(path: Path) -> list[int]:
    """Record offsets of a little-endian pcap, by the test's own walk."""
    raw = path.read_bytes()
    p, out = 24, []
    while p + 16 <= len(raw):
        out.append(p)
        p += 16 + struct.unpack_from("<I", raw, p + 8)[0]
    return out


def test_missing_file(tmp_path):
    with pytest.raises(InputMissingError) as ei:
        open_capture(tmp_path / "nope.pcap")
    assert ei.value.exit_code == EXIT_NOINPUT == 66
    assert "nope.pcap" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(InputMissingError):
        open_capture([tmp_path / "nope.pcap"])
    with pytest.raises(InputMissingError):
        open_capture(tmp_path)  # a directory


@pytest.mark.parametrize("content", [b"", b"hello, this is text\n" * 10, b"\x00" * 100,
                                     b"\xd4\xc3\xb2\xa1\x02\x00", b"\x0a\x0d"],
                         ids=["zero-length", "text", "zeros", "cut-pcap-header", "3-bytes"])
def test_not_a_capture(tmp_path, content):
    f = tmp_path / "x.pcap"
    f.write_bytes(content)
    with pytest.raises(CaptureError) as ei:
        rd = open_capture(f)
        list(rd)
    assert ei.value.exit_code == EXIT_DATAERR == 65
    assert "\n" not in str(ei.value)


def test_wrong_magic_names_the_bytes(tmp_path, good):
    f = tmp_path / "x.pcap"
    f.write_bytes(b"\xde\xad\xbe\xef" + good.read_bytes()[4:])
    with pytest.raises(CaptureError, match="0xdeadbeef"):
        open_capture(f)


def test_truncated_last_record(tmp_path, good, tshark):
    raw = good.read_bytes()
    f = tmp_path / "cut.pcap"
    f.write_bytes(raw[:-37])
    batch, stats = read_all(f)
    n = len(_offsets(good))
    assert stats.frames == n - 1
    assert stats.damage["cut-short-record"] == 1
    assert any("cut short" in w for w in stats.warnings)
    # The valid part is decoded exactly as tshark decodes the uncut file.
    rows = [r for r in tshark_rows(tshark, good) if int(r["frame.number"]) < n]
    assert not compare(batch, rows)


def test_corrupt_record_length_resyncs(tmp_path, good, tshark):
    raw = bytearray(good.read_bytes())
    offs = _offsets(good)
    k = 700
    struct.pack_into("<I", raw, offs[k] + 8, 0x7FFFFFF0)  # caplen of frame k+1
    f = tmp_path / "corrupt.pcap"
    f.write_bytes(bytes(raw))
    batch, stats = read_all(f)
    assert stats.frames == len(offs) - 1  # only the damaged record is lost
    assert any("impossible" in w and "resynchronised" in w for w in stats.warnings)
    rows = tshark_rows(tshark, good)
    kept = [r for r in rows if int(r["frame.number"]) != k + 1]
    # Frames after the skipped record are numbered as read (one less).
    for r in kept:
        if int(r["frame.number"]) > k + 1:
            r["frame.number"] = str(int(r["frame.number"]) - 1)
    assert not compare(batch, kept)


def test_garbage_in_the_middle(tmp_path, good, tshark):
    raw = good.read_bytes()
    offs = _offsets(good)
    cut = offs[1234]
    junk = bytes((i * 37 + 11) & 0xFF for i in range(1500))
    f = tmp_path / "garbage.pcap"
    f.write_bytes(raw[:cut] + junk + raw[cut:])
    batch, stats = read_all(f)
    assert stats.frames == len(offs)
    assert stats.damage["garbage-bytes"] == 1500
    assert not compare(batch, tshark_rows(tshark, good))


def test_pcapng_garbage_resyncs(tmp_path, good_ng, tshark):
    raw = good_ng.read_bytes()
    # find the 500th EPB by walking blocks
    p, n = 0, 0
    while n < 500:
        p += struct.unpack_from("<I", raw, p + 4)[0]
        n += struct.unpack_from("<I", raw, p)[0] == 6
    f = tmp_path / "garbage.pcapng"
    f.write_bytes(raw[:p] + b"\xff" * 333 + raw[p:])
    batch, stats = read_all(f)
    assert stats.damage["garbage-bytes"] == 333
    assert not compare(batch, tshark_rows(tshark, good_ng))


def test_pcapng_truncated_block(tmp_path, good_ng):
    f = tmp_path / "cut.pcapng"
    f.write_bytes(good_ng.read_bytes()[:-37])  # inside the last packet block
    _, stats = read_all(f)
    assert stats.damage["cut-short-record"] == 1
    assert stats.frames == 1999


def test_unsupported_linktype_is_counted(tmp_path, good):
    raw = bytearray(good.read_bytes())
    struct.pack_into("<I", raw, 20, 147)  # LINKTYPE_USER0
    f = tmp_path / "user0.pcap"
    f.write_bytes(bytes(raw))
    batch, stats = read_all(f)
    assert len(batch) == 0
    assert stats.frames == 2000 == stats.non_tcp["linktype-147-unsupported"]
    assert stats.check()
    assert any("link type 147" in w for w in stats.warnings)


def test_cut_gzip_keeps_what_decompressed(tmp_path, good, tshark):
    data = gzip.compress(good.read_bytes())
    f = tmp_path / "cut.gz"
    f.write_bytes(data[: len(data) // 2])
    batch, stats = read_all(f)
    assert 0 < stats.frames < 2000
    assert stats.damage["compressed-stream-error"] == 1
    rows = [r for r in tshark_rows(tshark, good) if int(r["frame.number"]) <= stats.frames]
    assert not compare(batch, rows)


def test_counts_equal_tshark(good, tshark):
    _, stats = read_all(good)
    assert stats.tcp == tshark_count(tshark, good, "tcp") == 2000
    assert stats.rst == tshark_count(tshark, good, "tcp.flags.reset==1")


def test_cli_style_message_has_no_traceback(tmp_path):
    f = tmp_path / "empty.pcap"
    f.write_bytes(b"")
    code = ("import sys\nfrom rstscope.errors import RstscopeError\n"
            "from rstscope.ingest import open_capture\n"
            "try:\n    list(open_capture(sys.argv[1]))\n"
            "except RstscopeError as e:\n    print(e, file=sys.stderr); sys.exit(e.exit_code)\n")
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True)
    assert r.returncode == 65
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def _pcapng_epbs(raw: bytes) -> list[int]:
    """Offsets of the Enhanced Packet Blocks of a little-endian pcapng, by the test's own walk."""
    p, out = 0, []
    while p + 8 <= len(raw):
        if struct.unpack_from("<I", raw, p)[0] == 6:
            out.append(p)
        p += struct.unpack_from("<I", raw, p + 4)[0]
    return out


@pytest.mark.parametrize("bad_len", [0, 18, 12, (64 << 20) + 4, 0xFFFFFFF0])
def test_pcapng_impossible_block_length_inside_a_run(tmp_path, good_ng, tshark, bad_len):
    """The EPB walk checks block lengths after the fact, for a whole run of blocks: it
    must still stop exactly at the damaged block, resynchronise at the next one and
    lose only that frame (a zero length would otherwise make the walk stand still)."""
    raw = bytearray(good_ng.read_bytes())
    epbs = _pcapng_epbs(bytes(raw))
    k = 700
    at = epbs[k]
    block_len = struct.unpack_from("<I", raw, at + 4)[0]
    struct.pack_into("<I", raw, at + 4, bad_len)
    f = tmp_path / "badlen.pcapng"
    f.write_bytes(bytes(raw))
    batch, stats = read_all(f)
    assert stats.frames == len(epbs) - 1
    assert stats.damage["garbage-bytes"] == block_len
    assert any(f"block length {bad_len} is impossible at byte {at};" in w
               for w in stats.warnings), stats.warnings
    kept = [r for r in tshark_rows(tshark, good_ng) if int(r["frame.number"]) != k + 1]
    for r in kept:
        if int(r["frame.number"]) > k + 1:
            r["frame.number"] = str(int(r["frame.number"]) - 1)
    assert not compare(batch, kept)


@pytest.mark.parametrize("batch_size", [1, 3, 4097])
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_small_batches_read_the_same_frames(good, good_ng, tshark, fmt, batch_size):
    """Every record budget (batch size) ends the serial walk somewhere else; the
    frames and their fields must not depend on it."""
    path = good if fmt == "pcap" else good_ng
    with open_capture(path, batch_size=batch_size) as rd:
        parts = list(rd)
    assert max(len(b) for b in parts) <= batch_size
    batch = np.concatenate(parts)
    assert rd.stats.frames == 2000 and not rd.stats.warnings
    assert not compare(batch, tshark_rows(tshark, path))
