"""pcapng: sections of either byte order, interfaces with their own link type,
``if_tsresol`` (powers of 10 and of 2) and ``if_tsoffset``; EPB, SPB and the
obsolete Packet Block are read, every other block is skipped.
"""

from __future__ import annotations

import struct
import sys
from array import array

import numpy as np

from rstscope.ingest.record_table import RecordTable, empty_records
from rstscope.ingest.source import Window
from rstscope.ingest.walk import Status, WalkResult, u32_views
from rstscope.wire.gather import gather, mv
from rstscope.wire.pcapng import (
    BOM,
    DSB,
    EPB,
    EPB_DATA_OFF,
    IDB,
    ISB,
    KNOWN_BLOCKS,
    MAX_BLOCK,
    MIN_SHB_LEN,
    NRB,
    PACKET_BLOCKS,
    PB_OBSOLETE,
    SHB,
    SPB,
    SPB_DATA_OFF,
    Interface,
    parse_idb,
    section_endian,
)

_RESYNC_SCAN = 8 << 20
# Block types a resync may land on: ones that follow packets in real files.
_RESYNC_BLOCKS = (EPB, SPB, IDB, ISB, NRB, DSB)


class PcapngFormat:
    name = "pcapng"

    def __init__(self) -> None:
        self.endian = "<"
        self.ifaces: list[Interface] = []
        self.n_ifaces_total = 0
        self.sections = 0
        self.warnings: list[str] = []

    @property
    def native(self) -> bool:
        return (self.endian == "<") == (sys.byteorder == "little")

    # ---------------------------------------------------------------- walking
    def walk(self, w: Window, maxn: int) -> WalkResult:
        buf = w.buf
        p = w.start
        end = w.end
        parts: list[RecordTable] = []
        total = 0
        while True:
            if total >= maxn:
                return WalkResult(_concat(parts), p, Status.MORE)
            offs, p, stop = self._fast(buf, p, end, maxn - total)
            if offs:
                rec, bad_at, problem = self._records(buf, offs)
                if len(rec):
                    parts.append(rec)
                    total += len(rec)
                if bad_at is not None:
                    return WalkResult(_concat(parts), bad_at, Status.CORRUPT, problem=problem)
            if stop == "budget":
                continue
            if stop == "need":
                return WalkResult(_concat(parts), p, Status.NEED,
                                  need=self._need_at(buf, p, end))
            if stop == "corrupt":
                return WalkResult(_concat(parts), p, Status.CORRUPT,
                                  problem=self._why_bad(buf, p, end))
            # A non-packet block at p.
            res = self._other_block(buf, p, end)
            if isinstance(res, WalkResult):
                return WalkResult(_concat(parts + [res.rec]), res.pos, res.status, res.need,
                                  res.problem)
            p = res

    def _u32(self, buf: np.ndarray, p: int) -> int:
        v: int = struct.unpack_from(self.endian + "I", mv(buf), p)[0]
        return v

    def _fast(self, buf: np.ndarray, p: int, end: int, budget: int
              ) -> tuple[array[int], int, str]:
        """Collect packet-block offsets (SPB as ``-p``) until another block type."""
        offs = array("q")  # a buffer numpy takes without a per-item conversion
        app = offs.append
        if not self.ifaces:
            # Packets before any interface description cannot be decoded; let the
            # slow path report it.
            return offs, p, "other" if p + 8 <= end else "need"
        if self.native:
            return self._fast_native(buf, p, end, budget)
        unpack = struct.Struct(self.endian + "II").unpack_from
        bufv = mv(buf)
        for _ in range(budget):
            if p + 8 > end:
                return offs, p, "need"
            bt, bl = unpack(bufv, p)
            if bt != EPB and bt != SPB and bt != PB_OBSOLETE:
                return offs, p, "other"
            if bl < 16 or bl & 3 or bl > MAX_BLOCK:
                return offs, p, "corrupt"
            if p + bl > end:
                return offs, p, "need"
            app(-p if bt == SPB else p)
            p += bl
        return offs, p, "budget"

    def _fast_native(self, buf: np.ndarray, p: int, end: int, budget: int
                     ) -> tuple[array[int], int, str]:
        """:meth:`_fast` for a section in the machine's byte order.

        Enhanced Packet Blocks are walked by a minimal loop (one type compare, one
        length read, one add per block); their lengths are checked afterwards on
        the whole run, which cuts the run at the first impossible block exactly
        where a per-block check would have stopped.  Simple and obsolete Packet
        Blocks take the careful per-block path.
        """
        offs = array("q")  # a buffer numpy takes without a per-item conversion
        app = offs.append
        views = u32_views(buf)
        stop = end - 8
        left = budget
        why = "budget"
        while left > 0:
            n0 = len(offs)
            for _ in range(left):
                if p > stop:
                    break
                v = views[p & 3]
                i = p >> 2
                if v[i] != EPB:
                    break
                app(p)
                p += v[i + 1]
            left -= len(offs) - n0
            if len(offs) > n0:
                # Validate the run just walked: find its first impossible or
                # overrunning block.
                run = np.frombuffer(offs, dtype=np.int64)[n0:].copy()  # no export: offs grows
                run_bl = gather(buf, run + 4, 4).view(np.uint32).ravel().astype(np.int64)
                bad = (run_bl < 16) | ((run_bl & 3) != 0) | (run_bl > MAX_BLOCK)
                over = run + run_bl > end
                cut = bad | over
                if cut.any():
                    k = int(np.argmax(cut))
                    p = int(run[k])
                    del offs[n0 + k:]
                    del views
                    return offs, p, "corrupt" if bad[k] else "need"
            if p > stop:
                why = "need"
                break
            if left <= 0:
                break
            v = views[p & 3]
            i = p >> 2
            bt = v[i]
            if bt == EPB:
                continue
            if bt != SPB and bt != PB_OBSOLETE:
                why = "other"
                break
            bl = v[i + 1]
            if bl < 16 or bl & 3 or bl > MAX_BLOCK:
                why = "corrupt"
                break
            if p + bl > end:
                why = "need"
                break
            app(-p if bt == SPB else p)
            p += bl
            left -= 1
        del views
        return offs, p, why

    def _need_at(self, buf: np.ndarray, p: int, end: int) -> int:
        if p + 8 > end:
            return 12
        bl = self._u32(buf, p + 4)
        if struct.unpack_from("<I", mv(buf), p)[0] == SHB and p + 12 <= end:
            bom = struct.unpack_from("<I", mv(buf), p + 8)[0]
            bl = struct.unpack_from(("<" if bom == BOM else ">") + "I", mv(buf), p + 4)[0]
        return max(12, bl) if bl <= MAX_BLOCK else 12

    def _why_bad(self, buf: np.ndarray, p: int, end: int) -> str:
        if p + 8 > end:
            return "block header cut short"
        return f"block length {self._u32(buf, p + 4)} is impossible"

    def _records(self, buf: np.ndarray, offs: array[int]
                 ) -> tuple[RecordTable, int | None, str]:
        arr = np.frombuffer(offs, dtype=np.int64).copy()
        spb = arr < 0
        any_spb = bool(spb.any())
        pos = np.abs(arr) if any_spb else arr
        dt = np.dtype(self.endian + "u4")
        g = gather(buf, pos, 28)
        h = g.view(dt).astype(np.int64)  # btype, blen, w2..w6 as uint32 words
        btype, blen = h[:, 0], h[:, 1]
        n = pos.size
        trail = gather(buf, pos + blen - 4, 4).view(dt).ravel().astype(np.int64)
        obsolete = btype == PB_OBSOLETE
        if not any_spb and not obsolete.any():
            # Only Enhanced Packet Blocks: the common case, without the selects.
            iface, caplen, wirelen = h[:, 2], h[:, 5], h[:, 6]
            data = pos + EPB_DATA_OFF
        else:
            iface = np.where(spb, 0, h[:, 2])
            if obsolete.any():  # interface id is a 16-bit field there
                iface = np.where(obsolete, g[:, 8:10].copy().view(self.endian + "u2").ravel(),
                                 iface)
            caplen = np.where(spb, 0, h[:, 5])
            wirelen = np.where(spb, h[:, 2], h[:, 6])
            data = pos + np.where(spb, SPB_DATA_OFF, EPB_DATA_OFF)
        room = pos + blen - 4 - data
        if any_spb:
            snap = self.ifaces[0].snaplen
            c = np.minimum(wirelen, room)
            if snap:
                c = np.minimum(c, snap)
            caplen = np.where(spb, c, caplen)
        bad = (trail != blen) | (caplen > room) | (iface >= len(self.ifaces)) | (caplen < 0)
        bad_at: int | None = None
        problem = ""
        if bad.any():
            k = int(np.argmax(bad))
            bad_at = int(pos[k])
            if trail[k] != blen[k]:
                problem = "block trailer length does not match"
            elif iface[k] >= len(self.ifaces):
                problem = f"packet for undeclared interface {int(iface[k])}"
            else:
                problem = f"captured length {int(caplen[k])} exceeds its block"
            n = k
            pos, iface, caplen, wirelen, data, spb = (pos[:k], iface[:k], caplen[:k],
                                                      wirelen[:k], data[:k], spb[:k])
            h = h[:k]
        ts_raw = (h[:, 3].astype(np.uint64) << np.uint64(32)) | h[:, 4].astype(np.uint64)
        i0 = int(iface[0]) if n else 0
        if n and not (iface != i0).any():
            # One interface in this run (the usual case): no per-interface masks.
            itf = self.ifaces[i0]
            ts_ns = itf.to_ns(ts_raw)
            lt = np.full(n, itf.linktype, dtype=np.int64)
            gid = iface.copy()
        else:
            ts_ns = np.zeros(n, dtype=np.int64)
            lt = np.zeros(n, dtype=np.int64)
            gid = np.zeros(n, dtype=np.int64)
            for i in np.unique(iface).tolist() if n else []:
                m = iface == i
                itf = self.ifaces[int(i)]
                ts_ns[m] = itf.to_ns(ts_raw[m])
                lt[m] = itf.linktype
                # The id as written in the block (per section), as Wireshark shows it.
                gid[m] = i
        if any_spb:  # Simple Packet Blocks carry no timestamp.
            ts_ns[spb] = 0
        return RecordTable(data, caplen, wirelen, ts_ns, lt, gid), bad_at, problem

    # --------------------------------------------------------- other blocks
    def _other_block(self, buf: np.ndarray, p: int, end: int) -> int | WalkResult:
        if p + 12 > end:
            return WalkResult(empty_records(), p, Status.NEED, need=12)
        raw_type = struct.unpack_from("<I", mv(buf), p)[0]
        if raw_type == SHB:
            endian = section_endian(bytes(buf[p:p + 12]))
            if endian is None:
                return WalkResult(empty_records(), p, Status.CORRUPT,
                                  problem="section header with a bad byte-order magic")
            bl = struct.unpack_from(endian + "I", mv(buf), p + 4)[0]
            if bl < MIN_SHB_LEN or bl & 3 or bl > MAX_BLOCK:
                return WalkResult(empty_records(), p, Status.CORRUPT,
                                  problem=f"section header length {bl} is impossible")
            if p + bl > end:
                return WalkResult(empty_records(), p, Status.NEED, need=bl)
            major = struct.unpack_from(endian + "H", mv(buf), p + 12)[0]
            if major != 1:
                self.warnings.append(f"pcapng section version {major} (expected 1)")
            self.endian = endian
            self.ifaces = []
            self.sections += 1
            return int(p + bl)
        btype = self._u32(buf, p)
        bl = self._u32(buf, p + 4)
        if bl < 12 or bl & 3 or bl > MAX_BLOCK:
            return WalkResult(empty_records(), p, Status.CORRUPT,
                              problem=f"block length {bl} is impossible")
        if p + bl > end:
            return WalkResult(empty_records(), p, Status.NEED, need=bl)
        if self._u32(buf, p + bl - 4) != bl:
            return WalkResult(empty_records(), p, Status.CORRUPT,
                              problem="block trailer length does not match")
        if self.sections == 0:
            return WalkResult(empty_records(), p, Status.CORRUPT,
                              problem="block before any section header")
        if btype == IDB:
            self._idb(buf, p, bl)
        elif btype in PACKET_BLOCKS:
            return WalkResult(empty_records(), p, Status.CORRUPT,
                              problem="packet block before any interface description")
        elif btype not in KNOWN_BLOCKS and not (btype & 0x80000000):
            # Unknown but well-formed: skip it as the spec says readers should.
            pass
        return p + bl

    def _idb(self, buf: np.ndarray, p: int, bl: int) -> None:
        self.ifaces.append(parse_idb(bytes(buf[p + 8:p + bl - 4]), self.endian))
        self.n_ifaces_total += 1

    # ---------------------------------------------------------------- resync
    def resync(self, w: Window, pos: int) -> int | None:
        """Next offset after ``pos`` that starts a well-formed known block followed by
        another well-formed block (or the end of the data)."""
        buf = w.buf
        lo = pos + 1
        hi = min(w.end - 12, pos + _RESYNC_SCAN)
        if hi <= lo:
            return None
        span = hi - lo
        dt = np.dtype(self.endian + "u4")
        bt = np.ndarray(shape=(span,), dtype=dt, buffer=buf, offset=lo, strides=(1,))
        bl = np.ndarray(shape=(span,), dtype=dt, buffer=buf, offset=lo + 4, strides=(1,))
        ok = np.isin(bt, np.array(_RESYNC_BLOCKS, dtype=dt)) & (bl >= 16) & \
             ((bl & 3) == 0) & (bl <= MAX_BLOCK)
        shb = np.ndarray(shape=(span,), dtype="<u4", buffer=buf, offset=lo, strides=(1,)) == SHB
        ok |= shb
        for c in (np.nonzero(ok)[0] + lo).tolist()[:10000]:
            if self._block_ok(buf, c, w.end) and self._after_ok(buf, c, w.end):
                return int(c)
        return None

    def _block_ok(self, buf: np.ndarray, p: int, end: int) -> bool:
        if p + 12 > end:
            return False
        if struct.unpack_from("<I", mv(buf), p)[0] == SHB:
            return True
        bl = self._u32(buf, p + 4)
        if bl < 12 or bl & 3 or bl > MAX_BLOCK or p + bl > end:
            return False
        return self._u32(buf, p + bl - 4) == bl

    def _after_ok(self, buf: np.ndarray, p: int, end: int) -> bool:
        if struct.unpack_from("<I", mv(buf), p)[0] == SHB:
            return True
        q = p + self._u32(buf, p + 4)
        return q == end or self._block_ok(buf, q, end)


def _concat(parts: list[RecordTable]) -> RecordTable:
    parts = [x for x in parts if len(x)]
    if not parts:
        return empty_records()
    if len(parts) == 1:
        return parts[0]
    return RecordTable(*(np.concatenate([getattr(x, f) for x in parts])
                         for f in ("off", "caplen", "wirelen", "ts_ns", "linktype", "iface")))
