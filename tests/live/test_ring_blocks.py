"""Block-at-a-time pieces of the TPACKET_V3 path, without root: the numpy record encoder
against the per-packet writer, block rotation against per-packet rotation, the ring
block's header chain, and the decoder's block entry point."""

from __future__ import annotations

import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from rstscope.ingest import FrameDecoder
from rstscope.ingest.frame_decoder import join_frames
from rstscope.live import encode
from rstscope.live.block import frames_to_block
from rstscope.live.encode import encode_block
from rstscope.live.ring import packet_offsets, ring_geometry, walk_offsets
from rstscope.live.writer import Interface, RotatingWriter, RotationPolicy
from tests.conftest import make_capture


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, int, bytes, int, int]]:
    """3,000 frames of the benchmark generator's port-443 traffic, cut to 256 bytes like a
    live capture, plus odd sizes (tiny, unpadded, 1-3 bytes past a multiple of 4)."""
    path = tmp_path_factory.mktemp("gen") / "g.pcap"
    make_capture(path, 3000)
    raw = path.read_bytes()
    out = []
    off = 24
    now_ns = time.time_ns()  # -G periods start at the writer's wall clock
    base_ns: int | None = None
    while off + 16 <= len(raw):
        sec, usec, caplen, wirelen = struct.unpack_from("<IIII", raw, off)
        data = raw[off + 16:off + 16 + caplen]
        ts = sec * 1_000_000_000 + usec * 1000 + 7
        base_ns = ts if base_ns is None else base_ns
        out.append((now_ns + ts - base_ns, 1, data[:256], wirelen, 0))
        off += 16 + caplen
    rnd = random.Random(5)
    for i, size in enumerate((1, 2, 3, 5, 14, 61, 62, 63, 64, 255, 256)):
        data = bytes(rnd.getrandbits(8) for _ in range(size))
        out.insert(rnd.randrange(len(out)), (out[i][0], 1, data, size + 100, 0))
    return out


def _writer(path: Path, fmt: str, policy: RotationPolicy, start_s: float) -> RotatingWriter:
    w = RotatingWriter(path, fmt=fmt, interfaces=[Interface("x", 1, 256)],  # type: ignore[arg-type]
                       policy=policy)
    # -G periods count from the writer's creation; both writers must share the start.
    w._period_start_s = start_s
    return w


def _per_packet(tmp: Path, name: str, fmt: str, frames: list, policy: RotationPolicy) -> tuple:
    w = _writer(tmp / name, fmt, policy, frames[0][0] / 1e9 - 3.0)
    where = [w.write(ts, i, d, wl) for ts, _lt, d, wl, i in frames]
    w.close()
    return [(p.name, p.read_bytes()) for p in dict.fromkeys(w.paths)], where


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("policy", [RotationPolicy(), RotationPolicy(file_size_bytes=100_000),
                                    RotationPolicy(file_size_bytes=50_000, ring_files=3),
                                    RotationPolicy(rotate_s=20.0),
                                    RotationPolicy(rotate_s=20.0, file_size_bytes=70_000)],
                         ids=["one", "C", "C-W", "G", "G-C"])
@pytest.mark.parametrize("max_groups", [0, 10_000], ids=["rows", "groups"])
def test_block_writer_matches_per_packet_writer(tmp_path: Path, frames: list, fmt: str,
                                                policy: RotationPolicy, max_groups: int,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Both layouts of the encoder: copies grouped by frame length, and masked rows.
    monkeypatch.setattr(encode, "_MAX_GROUPS", max_groups)
    ref_dir, blk_dir = tmp_path / "ref", tmp_path / "blk"
    ref_dir.mkdir()
    blk_dir.mkdir()
    ref_files, where = _per_packet(ref_dir, "f", fmt, frames, policy)
    w = _writer(blk_dir / "f", fmt, policy, frames[0][0] / 1e9 - 3.0)
    fids, fnos = [], []
    for start in range(0, len(frames), 777):  # blocks that cut across rotation points
        block = frames_to_block(frames[start:start + 777])
        fid, fno, n = w.write_block(block.buf, block.rec)
        assert n == len(block)
        fids += fid.tolist()
        fnos += fno.tolist()
    w.close()
    got = [(p.name, p.read_bytes()) for p in dict.fromkeys(w.paths)]
    assert [n for n, _ in got] == [n for n, _ in ref_files]
    assert got == ref_files  # byte for byte
    assert fids == [x.file_id for x in where] and fnos == [x.frame for x in where]
    if policy.file_size_bytes or policy.rotate_s:
        assert len(ref_files) >= 3


def test_block_writer_stops_at_the_file_budget(tmp_path: Path, frames: list) -> None:
    policy = RotationPolicy(rotate_s=5.0, ring_files=2)
    _, where = _per_packet(tmp_path, "ref", "pcapng", frames, policy)
    kept = sum(x is not None for x in where)
    assert 0 < kept < len(frames)
    w = _writer(tmp_path / "blk", "pcapng", policy, frames[0][0] / 1e9 - 3.0)
    block = frames_to_block(frames)
    _fid, _fno, n = w.write_block(block.buf, block.rec)
    assert n == kept and w.exhausted


def test_encoder_handles_empty_block() -> None:
    block = frames_to_block([(1, 1, b"abc", 3, 0)]).head(0)
    data, sizes = encode_block(block.buf, block.rec, "pcapng")
    assert data.size == 0 and sizes.size == 0


def test_decode_block_equals_decode(frames: list) -> None:
    a, b = FrameDecoder(), FrameDecoder()
    for start in range(0, len(frames), 1000):
        chunk = frames[start:start + 1000]
        buf, rec = join_frames(chunk)
        buf = buf.copy()
        got = b.decode_block(buf, rec)
        buf[:] = 0  # the batch must not be a view of the (ring) buffer
        assert got.tobytes() == a.decode(chunk).tobytes()
    assert a.stats.files[0].frames == b.stats.files[0].frames == len(frames)


def _fake_block(sizes: list[int], mac: int | list[int] = 82,
                payload: bytes | None = None) -> tuple:
    """A ring block laid out as the kernel lays out TPACKET_V3 packets."""
    blk = np.zeros(1 << 16, dtype=np.uint8)
    first = 48
    o = first
    offs = []
    macs = mac if isinstance(mac, list) else [mac] * len(sizes)
    for i, snap in enumerate(sizes):
        mac = macs[i]
        nxt = (mac + snap + 7) & ~7
        last = i == len(sizes) - 1
        struct.pack_into("=IIIIII HH", blk, o, 0 if last else nxt, 1, 2, snap, snap, 1, mac,
                         mac + 14)
        body = payload if payload is not None else bytes((o + k) & 0xFF for k in range(snap))
        blk[o + mac:o + mac + snap] = np.frombuffer(body[:snap].ljust(snap, b"\0"), np.uint8)
        offs.append(o)
        o += nxt
    return blk, first, o, offs


def test_packet_offsets_follow_the_chain() -> None:
    rnd = random.Random(1)
    for _ in range(50):
        sizes = [rnd.choice((54, 66, 74, 256, 200, 1, 7)) for _ in range(rnd.randint(1, 120))]
        blk, first, used, offs = _fake_block(sizes)
        assert packet_offsets(blk, first, used, len(sizes)).tolist() == offs
        assert walk_offsets(blk, first, len(sizes)).tolist() == offs
        # Link headers of different lengths in one block (the slower candidate scan).
        macs = [rnd.choice((82, 96, 78)) for _ in sizes]
        blk, first, used, offs = _fake_block(sizes, mac=macs)
        assert packet_offsets(blk, first, used, len(sizes)).tolist() == offs


def test_packet_offsets_not_fooled_by_payload_that_looks_like_a_header() -> None:
    # Payload words at an 8-byte slot that satisfy next == align8(mac + snap).
    fake = struct.pack("=IIIIII HH", 96, 0, 0, 14, 14, 0, 82, 96).ljust(200, b"\0")
    fake = b"\0" * 6 + fake  # data starts at mac 82 = 2 mod 8; this puts it on a slot
    blk, first, used, offs = _fake_block([256, 256, 256], payload=fake)
    assert packet_offsets(blk, first, used, 3).tolist() == offs


def test_ring_geometry() -> None:
    block, nr, frame = ring_geometry(16384, 256)
    assert block == 1 << 20 and nr == 16 and frame % 16 == 0 and block % frame < block
    block, nr, _ = ring_geometry(64, 256)
    assert nr >= 2 and block * nr >= 64 * 1024
