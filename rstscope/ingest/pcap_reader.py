"""Classic libpcap format: both byte orders, microsecond and nanosecond magic."""

from __future__ import annotations

import struct
import sys
from array import array

import numpy as np

from rstscope.errors import CaptureError
from rstscope.ingest.record_table import RecordTable, empty_records
from rstscope.ingest.source import Window
from rstscope.ingest.walk import Status, WalkResult, u32_views
from rstscope.wire.gather import gather, mv
from rstscope.wire.pcap import HEADER_LEN, MAX_CAPLEN, parse_header

# A resync candidate's timestamp must be within this of the last good record.
_RESYNC_TS_WINDOW_S = 7 * 86400
_RESYNC_SCAN = 8 << 20


class PcapFormat:
    """Walks the records of a classic pcap in a :class:`Window`."""

    def __init__(self, header: bytes, name: str) -> None:
        hdr = parse_header(header)
        assert hdr is not None  # the caller matched the magic
        endian = hdr.endian
        self.endian = endian
        self.ns_mult = hdr.frac_ns
        self.name = "pcap-ns" if hdr.nanos else "pcap"
        self.snaplen = hdr.snaplen
        self.linktype = hdr.linktype
        self.max_caplen = max(hdr.snaplen, MAX_CAPLEN)
        self.native = (endian == "<") == (sys.byteorder == "little")
        self.last_ts_s: int | None = None
        self._hdr_dtype = np.dtype(endian + "u4")

    def walk(self, w: Window, maxn: int) -> WalkResult:
        buf = w.buf
        p = w.start
        end = w.end
        offs = array("q")
        need = 0
        if self.native:
            # The serial part of reading a pcap: each record's length says where the
            # next one starts.  The loop body is the bare minimum (append, one
            # indexed uint32 read, one add); the checks that need not stop the
            # chain are done afterwards on whole arrays.  The views start at byte
            # 8 of a record header so the caplen of the record at p is
            # ``views[p & 3][p >> 2]``.
            views = u32_views(buf, 8)
            app = offs.append
            stop16 = end - 16
            for _ in range(maxn):
                if p > stop16:
                    break
                app(p)
                p += 16 + views[p & 3][p >> 2]
            if offs:
                # Only the last record can run past the window: every earlier one
                # was followed by a header that lies inside it.
                last = offs[-1]
                cl = views[last & 3][last >> 2]
                if last + 16 + cl > end:
                    offs.pop()
                    p = last
                    need = 16 + cl
            if not need and p > stop16:
                need = 16
            del views
        else:
            unpack = struct.Struct(self.endian + "I").unpack_from
            bufv = mv(buf)
            for _ in range(maxn):
                if p + 16 > end:
                    need = 16
                    break
                cl = unpack(bufv, p + 8)[0]
                q = p + 16 + cl
                if q > end:
                    need = 16 + cl
                    break
                offs.append(p)
                p = q
        status = Status.NEED if need else Status.MORE
        if not offs:
            if need > 16 and need - 16 > self.max_caplen:
                return WalkResult(empty_records(), p, Status.CORRUPT,
                                  problem=f"record length {need - 16} is impossible")
            return WalkResult(empty_records(), p, status, need)
        arr = np.frombuffer(offs, dtype=np.int64).copy()
        g = gather(buf, arr, 16).view(self._hdr_dtype).astype(np.int64)
        sec, frac, caplen, wirelen = g[:, 0], g[:, 1], g[:, 2], g[:, 3]
        bad = (caplen > self.max_caplen) | (frac >= 1_000_000_000 // self.ns_mult)
        problem = ""
        if bad.any():
            k = int(np.argmax(bad))
            problem = (f"record length {int(caplen[k])} is impossible" if caplen[k] >
                       self.max_caplen else "record timestamp fraction out of range")
            arr, sec, frac, caplen, wirelen = arr[:k], sec[:k], frac[:k], caplen[:k], wirelen[:k]
            p = int(offs[k])
            status = Status.CORRUPT
        elif need > 16 and need - 16 > self.max_caplen:
            problem = f"record length {need - 16} is impossible"
            status = Status.CORRUPT
        if sec.size:
            self.last_ts_s = int(sec[-1])
        ts_ns = sec * 1_000_000_000 + frac * self.ns_mult
        n = arr.size
        lt = np.full(n, self.linktype, dtype=np.int64)
        rec = RecordTable(arr + 16, caplen, wirelen, ts_ns, lt, np.zeros(n, dtype=np.int64))
        return WalkResult(rec, p, status, need, problem)

    def resync(self, w: Window, pos: int) -> int | None:
        """Find the next plausible record header after garbage at ``pos``.

        A candidate needs a sane header (fraction in range, caplen <= snaplen-ish,
        wirelen >= caplen, timestamp near the last good record) and the next two
        records chained from it must be sane too (or end exactly at the buffer
        end).  Returns the position, or None.
        """
        buf = w.buf
        lo = pos + 1
        hi = min(w.end - 16, pos + _RESYNC_SCAN)
        if hi <= lo:
            return None
        span = hi - lo
        dt = self._hdr_dtype

        def field(k: int) -> np.ndarray:
            return np.ndarray(shape=(span,), dtype=dt, buffer=buf, offset=lo + 4 * k,
                              strides=(1,)).astype(np.int64)

        sec, frac, cl, wl = field(0), field(1), field(2), field(3)
        ok = (frac < 1_000_000_000 // self.ns_mult) & (cl <= self.max_caplen) & (wl >= cl) & \
             (wl <= max(self.max_caplen, 65535 + 64))
        if self.last_ts_s is not None:
            ok &= np.abs(sec - self.last_ts_s) <= _RESYNC_TS_WINDOW_S
        for c in (np.nonzero(ok)[0] + lo).tolist()[:10000]:
            if self._chain_ok(buf, int(c), w.end, 3):
                return int(c)
        return None

    def _chain_ok(self, buf: np.ndarray, p: int, end: int, depth: int) -> bool:
        unpack = struct.Struct(self.endian + "IIII").unpack_from
        bufv = mv(buf)
        for _ in range(depth):
            if p == end:
                return True
            if p + 16 > end:
                return False
            sec, frac, cl, wl = unpack(bufv, p)
            if frac >= 1_000_000_000 // self.ns_mult or cl > self.max_caplen or wl < cl:
                return False
            if self.last_ts_s is not None and abs(sec - self.last_ts_s) > _RESYNC_TS_WINDOW_S:
                return False
            p += 16 + cl
            if p > end:
                return False
        return True


def read_header(w: Window) -> bytes:
    if w.end - w.start < HEADER_LEN:
        w.refill(HEADER_LEN)
    if w.end - w.start < HEADER_LEN:
        raise CaptureError(f"{w.name}: pcap file header is cut short "
                           f"({w.end - w.start} of {HEADER_LEN} bytes)")
    return bytes(w.buf[w.start:w.start + HEADER_LEN])
