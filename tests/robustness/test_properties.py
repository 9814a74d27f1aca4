"""Property tests (hypothesis): readers on arbitrary bytes, the tracker on arbitrary records.

Bounded example counts keep the whole file well under a minute.  Each
property: no exception other than rstscope's own errors, the read counters
balance, every RST yields exactly one reset record, and the tracker's answer
does not depend on how the packets were cut into batches.
"""

from __future__ import annotations

import contextlib
import io
import struct
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rstscope.core import Tracker
from rstscope.errors import CaptureError, RstscopeError
from rstscope.ingest import FrameDecoder, open_capture
from rstscope.schema import TH_ACK, TH_FIN, TH_PUSH, TH_RST, TH_SYN, addr_bytes, empty_batch
from rstscope.wire import pcap, pcapng

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def read_all(data: bytes) -> tuple[int, object]:
    """Read ``data`` as a capture; returns (records, stats) or raises an RstscopeError."""
    with open_capture(io.BytesIO(data), batch_size=64) as reader:
        n = 0
        for batch in reader:
            n += len(batch)
        stats = reader.stats
    assert stats.check(), "frames == tcp + non-TCP kinds must hold"
    assert n == stats.tcp
    return n, stats


def pcap_bytes(linktype: int, frames: list[tuple[int, bytes, int]], *, nanos: bool = False,
               endian: str = "<", snaplen: int = 262144) -> bytes:
    out = [pcap.file_header(linktype, snaplen, nanos=nanos, endian=endian)]
    for ts, data, wirelen in frames:
        out.append(pcap.record_header(ts, 0, len(data), wirelen, endian=endian) + data)
    return b"".join(out)


def ipv4_tcp(flags: int, *, ttl: int = 64, payload: bytes = b"", opts: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 443, 1000, 2000, (5 + len(opts) // 4) << 4, flags,
                      512, 0, 0) + opts
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0x4000, ttl, 6, 0,
                     bytes([192, 0, 2, 1]), bytes([198, 51, 100, 2]))
    return ip + tcp + payload


# -- readers ------------------------------------------------------------------------


@SETTINGS
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(RstscopeError):
        read_all(data)


@SETTINGS
@given(st.sampled_from([*pcap.MAGICS, pcapng.SHB_BYTES]), st.binary(max_size=800))
def test_valid_magic_then_garbage(magic: bytes, rest: bytes) -> None:
    t0 = time.monotonic()
    with contextlib.suppress(RstscopeError):
        read_all(magic + rest)
    assert time.monotonic() - t0 < 5


LINKTYPES = st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 147, 105, 9999])


@SETTINGS
@given(LINKTYPES, st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(max_size=120),
                                     st.integers(0, 70000)), max_size=12),
       st.booleans(), st.sampled_from(["<", ">"]))
def test_pcap_records_of_random_frames(linktype: int, frames: list[tuple[int, bytes, int]],
                                       nanos: bool, endian: str) -> None:
    data = pcap_bytes(linktype, frames, nanos=nanos, endian=endian)
    try:
        n, stats = read_all(data)
    except CaptureError:
        assert not frames, "a well-formed pcap with records is readable"
        return
    assert stats.frames == len(frames)  # type: ignore[attr-defined]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from([1, 101, 228]), st.integers(0, 63),
                          st.integers(1, 255), st.binary(max_size=30)), min_size=1, max_size=10),
       st.data())
def test_valid_tcp_frames_with_mutations(spec: list[tuple[int, int, int, bytes]],
                                         data: st.DataObject) -> None:
    """Real-shaped IPv4/TCP frames, some of them bit-flipped or cut: never a crash."""
    eth = b"\x00" * 12 + b"\x08\x00"
    frames = []
    for i, (lt, flags, ttl, payload) in enumerate(spec):
        pkt = ipv4_tcp(flags, ttl=ttl, payload=payload)
        if lt == 1:
            pkt = eth + pkt
        frames.append((1_700_000_000 + i, lt, bytearray(pkt)))
    for _ in range(data.draw(st.integers(0, 6))):
        j = data.draw(st.integers(0, len(frames) - 1))
        buf = frames[j][2]
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(frames)))
    if cut < len(frames):
        buf = frames[cut][2]
        del buf[data.draw(st.integers(0, len(buf))):]
    # One link type per pcap file: feed each frame through the live decoder instead,
    # which takes a link type per frame (mixed link types in one stream).
    dec = FrameDecoder()
    batch = dec.decode((ts * 1_000_000_000, lt, bytes(b), len(b) + 4, 0) for ts, lt, b in frames)
    assert len(batch) <= len(frames)
    stats = dec.stats
    assert stats.check()
    t = Tracker()
    t.feed(batch)
    t.finish()
    rst = int(np.count_nonzero(batch["flags"] & TH_RST))
    assert len(t.resets()) == rst


# -- tracker ---------------------------------------------------------------------------

HOSTS = [addr_bytes(a) for a in ("192.0.2.1", "198.51.100.2", "203.0.113.9", "2001:db8::5")]
FLAG_CHOICES = [TH_SYN, TH_SYN | TH_ACK, TH_ACK, TH_ACK | TH_PUSH, TH_FIN | TH_ACK, TH_RST,
                TH_RST | TH_ACK, TH_RST | TH_ACK | TH_PUSH, 0, TH_SYN | TH_RST | TH_FIN, 0x1FF]

record = st.fixed_dictionaries({
    "dt_ns": st.integers(0, 5_000_000_000),
    "pair": st.integers(0, 3),
    "swap": st.booleans(),
    "sport": st.sampled_from([443, 40000, 40001]),
    "flags": st.sampled_from(FLAG_CHOICES),
    "seq": st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1000, 1001, 2000, 2**32 - 1])),
    "ack": st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1001, 2001])),
    "ttl": st.sampled_from([0, 1, 63, 64, 128, 255, 37]),
    "ip_id": st.sampled_from([0, 1, 2, 65535, -1]),
    "payload_len": st.sampled_from([0, 0, 1, 100, 1460, 65535]),
    "opt": st.booleans(),
    "backwards": st.booleans(),
})


def build_batch(recs: list[dict[str, int]]) -> np.ndarray:
    b = empty_batch(len(recs))
    ts = 1_700_000_000 * 10**9
    for i, r in enumerate(recs):
        # Mostly increasing time; sometimes backwards, as in merged captures.
        ts = ts - r["dt_ns"] // 10 if r["backwards"] and r["dt_ns"] % 7 == 0 else ts + r["dt_ns"]
        a, z = HOSTS[r["pair"] % 2], HOSTS[2 + r["pair"] // 2]
        v6 = z == HOSTS[3]
        if v6:
            a = addr_bytes("2001:db8::1")
        sport, dport = r["sport"], 443 if r["sport"] != 443 else 40000
        if r["swap"]:
            a, z, sport, dport = z, a, dport, sport
        b[i]["frame"] = i + 1
        b[i]["ts_ns"] = ts
        b[i]["ip_v"] = 6 if v6 else 4
        b[i]["src"], b[i]["dst"] = a, z
        b[i]["sport"], b[i]["dport"] = sport, dport
        b[i]["flags"] = r["flags"]
        b[i]["seq"], b[i]["ack"] = r["seq"], r["ack"]
        b[i]["ttl"] = r["ttl"]
        b[i]["ip_id"] = -1 if v6 else max(r["ip_id"], 0)
        b[i]["df"] = r["ip_id"] == 0
        b[i]["payload_len"] = r["payload_len"]
        b[i]["ip_len"] = 40 + r["payload_len"]
        b[i]["win"] = 512
        if r["opt"]:
            b[i]["mss"], b[i]["wscale"], b[i]["tsval"], b[i]["tsecr"] = 1460, 7, i * 10, i
    return b


def run_tracker(batch: np.ndarray, cuts: list[int]) -> list[dict[str, object]]:
    t = Tracker()
    start = 0
    for c in sorted(set(cuts)) + [len(batch)]:
        if c > start:
            t.feed(batch[start:c])
            start = c
    t.finish()
    # The order of resets() is not a contract; the content of each record is.
    return sorted((r.to_dict() for r in t.resets()), key=lambda r: int(r["frame"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=40), st.lists(st.integers(0, 40), max_size=4))
def test_tracker_every_rst_one_record_and_batch_independent(recs: list[dict[str, int]],
                                                             cuts: list[int]) -> None:
    batch = build_batch(recs)
    whole = run_tracker(batch, [])
    rst_frames = [int(f) for f in batch["frame"][(batch["flags"] & TH_RST) != 0]]
    assert sorted(r["frame"] for r in whole) == rst_frames  # type: ignore[type-var]
    for r in whole:
        assert 0.0 <= r["confidence"] <= 1.0  # type: ignore[operator]
        assert r["origin"] in ("client", "server", "load-balancer", "firewall", "unknown")
    split = run_tracker(batch, [c for c in cuts if c < len(batch)])
    assert split == whole, "the verdicts must not depend on where batches are cut"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record, min_size=1, max_size=30), st.integers(0, 10**12))
def test_tracker_advance_is_harmless(recs: list[dict[str, int]], extra_ns: int) -> None:
    """Advancing time (live capture) between batches never loses or duplicates a reset."""
    batch = build_batch(recs)
    t = Tracker()
    half = len(batch) // 2
    t.feed(batch[:half])
    t.advance(int(batch["ts_ns"][:half].max(initial=0)) + extra_ns)
    t.feed(batch[half:])
    t.finish()
    assert len(t.resets()) == int(np.count_nonzero(batch["flags"] & TH_RST))
