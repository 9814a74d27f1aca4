"""FrameDecoder: frames handed over one by one decode exactly like the file path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rstscope.ingest import FrameDecoder
from tests.conftest import make_capture
from tests.ingest.helpers import read_all
from tests.ingest.tshark_ref import compare, tshark_rows


@pytest.fixture(scope="module")
def cap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("frames") / "f.pcap"
    return make_capture(out, 1500, seed=7)


def _frames_via_scapy(path: Path):
    scapy_utils = pytest.importorskip("scapy.utils")
    out = []
    with scapy_utils.RawPcapReader(str(path)) as rd:
        lt = rd.linktype
        for data, meta in rd:
            ts_ns = (meta.sec * 1_000_000 + meta.usec) * 1000
            out.append((ts_ns, lt, data, meta.wirelen, 0))
    return out


def test_frame_decoder_equals_tshark(cap, tshark):
    frames = _frames_via_scapy(cap)
    dec = FrameDecoder()
    parts = [dec.decode(frames[i:i + 400]) for i in range(0, len(frames), 400)]
    batch = np.concatenate(parts)
    assert not compare(batch, tshark_rows(tshark, cap))
    assert dec.stats.frames == len(frames) and dec.stats.check()
    file_batch, file_stats = read_all(cap)
    assert dec.stats.tcp == file_stats.tcp and dec.stats.rst == file_stats.rst


def test_frame_decoder_counts_non_tcp_and_unsupported():
    dec = FrameDecoder()
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    udp = (bytes(12) + b"\x08\x00" + bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0])
           + bytes(8) + bytes(8))
    batch = dec.decode([(1, 1, arp, 42, 0), (2, 1, udp, 42, 0), (3, 147, b"xx", 2, 0),
                        (4, 1, b"\x00" * 5, 5, 0)])
    assert len(batch) == 0
    assert dict(dec.stats.non_tcp) == {"arp": 1, "udp": 1, "linktype-147-unsupported": 1,
                                       "truncated": 1}
    assert dec.stats.check()
    assert any("147" in w for w in dec.stats.warnings)
    assert len(dec.decode([])) == 0
