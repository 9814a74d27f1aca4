"""A TPACKET_V3 memory-mapped receive ring: the kernel fills blocks, we take them whole.

Set up as libpcap does it: a packet socket opened for no protocol (so it
receives nothing yet), the BPF filter attached, the ring configured and
mapped, and only then bound to the interface, so no packet that the filter
would reject can ever reach the ring.  scapy resolves the link type and
compiles the filter (through libpcap); its ``ret`` values are cut to the
snap length, so the kernel copies only the bytes we keep.

The kernel writes packets into the current block and hands the block over
when it is full or after ``block_timeout_ms``.  A handed-over block becomes
one :class:`FrameBlock`: the packet headers are found and read with numpy
(see :func:`packet_offsets`), the frames stay where the kernel put them, and
the writer and the decoder read them straight from the ring.  The block goes
back to the kernel only when both are done with it.

When the ring is full the kernel drops packets and counts them
(``PACKET_STATISTICS``); :meth:`RingSource.poll_drops` reads that counter
while the capture runs so drops are reported as they happen.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import mmap
import os
import select
import socket
import struct
import time
from pathlib import Path

import numpy as np

from rstscope.errors import CaptureError, UsageError
from rstscope.ingest.record_table import RecordTable
from rstscope.live.block import FrameBlock
from rstscope.live.capture import (
    ARPHRD_TO_LINKTYPE,
    DEFAULT_BUFFER_KIB,
    DEFAULT_SNAPLEN,
    SOL_PACKET,
    CaptureCounters,
    _iface_rx_dropped,
    capture_counters,
)
from rstscope.live.privileges import check_capture_privilege
from rstscope.wire.gather import gather

# <linux/if_packet.h>, <linux/if_ether.h>, <asm-generic/socket.h>
ETH_P_ALL = 0x0003
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_LOSING = 1 << 2
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
PACKET_OUTGOING = 4
BPF_RET_K = 0x06

# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1:
# block_status, num_pkts, offset_to_first_pkt, blk_len, seq_num, ...
_BLOCK_DESC = struct.Struct("=IIIIII")
# struct tpacket3_hdr (48 bytes, padded) followed by struct sockaddr_ll; we read up to
# sll_pkttype (byte 58).  Native byte order: the kernel writes it.
_HDR3 = np.dtype({
    "names": ["next", "sec", "nsec", "snap", "len", "status", "mac", "tci", "tpid", "pkttype"],
    "formats": ["=u4", "=u4", "=u4", "=u4", "=u4", "=u4", "=u2", "=u4", "=u2", "u1"],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 32, 36, 58],
    "itemsize": 60,
})
_HDR3_SIZE = 48 + 20  # TPACKET3_HDRLEN: aligned header + sockaddr_ll

DEFAULT_BLOCK_TIMEOUT_MS = 50  # a block with few packets is handed over after this


class RingUnavailable(Exception):
    """This kernel (or socket) cannot give a TPACKET_V3 ring; use the recvmsg path."""


def ring_geometry(buffer_kib: int, snaplen: int) -> tuple[int, int, int]:
    """``(block_size, block_nr, frame_size)`` for a ring of about ``buffer_kib`` KiB.

    Blocks of up to 1 MiB keep the per-block Python cost (a few dozen numpy
    calls) small next to the thousands of packets in a block; at least 8
    blocks let the kernel fill some while we work on another.
    """
    page = mmap.PAGESIZE
    total = max(buffer_kib * 1024, 8 * page)
    frame = (_HDR3_SIZE + 16 + snaplen + 15) & ~15  # one full-size packet
    block = page
    while block < frame:
        block <<= 1
    while block < (1 << 20) and block * 2 * 8 <= total:
        block <<= 1
    nr = max(2, total // block)
    return block, nr, frame


def packet_offsets(blk: np.ndarray, first: int, used: int, n: int) -> np.ndarray:
    """Offsets of the ``n`` packet headers of one ring block, without a per-packet loop.

    The kernel chains a block's packets: each header's ``tp_next_offset`` is
    ``align8(tp_mac + tp_snaplen)``, and every header starts on an 8-byte
    boundary.  So every 8-byte slot whose words satisfy that equation is a
    candidate; the candidates are the true chain exactly when they link up
    from ``first`` (each one is its predecessor plus its predecessor's
    ``tp_next_offset``), which is checked.  The last header (whose next
    offset the kernel zeroes) follows from the one before it.

    First try: only slots whose ``tp_mac`` equals the first packet's (one
    link header length per socket, so usually all of them), which reads one
    16-bit word per slot.  Then every slot.  If payload bytes happen to look
    like a header both checks fail and the chain is walked header by header.
    """
    if n <= 1:
        return np.full(n, first, dtype=np.int64)
    w32 = blk.view("=u4")
    w16 = blk.view("=u2")
    slots = (used - first) // 8
    base32 = first >> 2
    mac_all = w16[(first >> 1) + 12::4][:slots]
    same = np.flatnonzero(mac_all == mac_all[0])
    pos = _chain(w32, base32, same, mac_all[same], n)
    if pos is None:
        pos = _chain(w32, base32, np.arange(mac_all.size), mac_all, n)
    if pos is None:
        return walk_offsets(blk, first, n)
    return first + 8 * pos


def _chain(w32: np.ndarray, base32: int, slots: np.ndarray, mac: np.ndarray,
           n: int) -> np.ndarray | None:
    """Slot numbers of the ``n`` headers if the candidate ``slots`` are the chain, else None."""
    words = base32 + 2 * slots
    words = words[words + 3 < w32.size]
    nxt = w32[words]
    want = (mac[:words.size].astype(np.uint32) + w32[words + 3] + 7) & ~np.uint32(7)
    ok = (nxt == want) & (want != 0)
    cand = slots[:words.size][ok]
    if cand.size < n - 1 or cand[0] != 0:
        return None
    c = cand[: n - 1].astype(np.int64)
    step = nxt[ok][: n - 1].astype(np.int64) // 8
    if n > 2 and not np.array_equal(c[1:], c[:-1] + step[:-1]):
        return None
    pos = np.empty(n, dtype=np.int64)
    pos[: n - 1] = c
    pos[n - 1] = c[-1] + step[-1]
    return pos


def walk_offsets(blk: np.ndarray, first: int, n: int) -> np.ndarray:
    """The same offsets by following the chain (the reference for :func:`packet_offsets`)."""
    words = memoryview(blk).cast("I")  # type: ignore[arg-type]
    out = [0] * n
    o = first
    for i in range(n):
        out[i] = o
        o += words[o >> 2]
    return np.array(out, dtype=np.int64)


def _compile_filter(expr: str | None, iface: str, linktype: int, snaplen: int) -> bytes:
    """The classic-BPF program for ``expr``, with every accepting ``ret`` cut to snaplen.

    Compiled by libpcap (through scapy's bindings) for the live interface, as
    tcpdump does: on Linux that lets ``vlan`` match the tags the kernel has
    already moved into packet metadata.  If no live handle can be opened,
    scapy compiles it for the link type alone.
    """
    if not expr:
        return struct.pack("=HBBI", BPF_RET_K, 0, 0, snaplen)
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        raw = _compile_live(expr, iface)
    except OSError:
        raw = None
    if raw is None:
        # lazy: scapy loads only when a ring is opened
        from scapy.arch.common import compile_filter, free_filter
        from scapy.error import Scapy_Exception

        try:
            prog = compile_filter(expr, linktype=linktype)
        except (Scapy_Exception, OSError, ImportError) as exc:
            text = str(exc)
            detail = text[text.rfind("(") + 1:text.rfind(")")] if "(" in text else text
            raise UsageError(f"bad filter {expr!r}: {detail.strip() or text}") from None
        try:
            raw = ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        finally:
            free_filter(prog)
    insns = np.frombuffer(raw, dtype=np.dtype([("code", "=u2"), ("jt", "u1"), ("jf", "u1"),
                                               ("k", "=u4")])).copy()
    ret = (insns["code"] == BPF_RET_K) & (insns["k"] != 0)
    insns["k"][ret] = np.minimum(insns["k"][ret], snaplen)
    return insns.tobytes()


def _compile_live(expr: str, iface: str) -> bytes | None:
    """libpcap's program for ``expr`` on a live handle of ``iface``; None if none opens."""
    # lazy: scapy loads only when a ring is opened
    from scapy.libs.structures import bpf_program
    from scapy.libs.winpcapy import (
        PCAP_ERRBUF_SIZE,
        pcap_close,
        pcap_compile,
        pcap_freecode,
        pcap_geterr,
        pcap_open_live,
    )

    err = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
    handle = pcap_open_live(iface.encode(), 65535, 0, 0, err)
    if not handle:
        return None
    try:
        prog = bpf_program()
        if pcap_compile(handle, ctypes.byref(prog), expr.encode(), 1, 0xFFFFFFFF) == -1:
            msg = pcap_geterr(handle)
            detail = msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)
            raise UsageError(f"bad filter {expr!r}: {detail}")
        try:
            return ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        finally:
            pcap_freecode(ctypes.byref(prog))
    finally:
        pcap_close(handle)


class RingSource:
    """A TPACKET_V3 capture on one interface.  Use as a context manager.

    ``read_block(timeout_s)`` returns the next handed-over block (or None),
    ``release()`` gives it back to the kernel.
    """

    mode = "TPACKET_V3 ring"

    def __init__(self, iface: str, *, bpf: str | None, snaplen: int = DEFAULT_SNAPLEN,
                 promisc: bool = True, buffer_kib: int = DEFAULT_BUFFER_KIB,
                 block_timeout_ms: int = DEFAULT_BLOCK_TIMEOUT_MS) -> None:
        if snaplen < 64 or snaplen > 262144:
            raise UsageError(f"bad snaplen {snaplen}: use 64..262144")
        self.iface = iface
        self.bpf = bpf
        self.snaplen = snaplen
        self.linktype = 1
        self.captured = 0
        self.ring_blocks = 0
        self.block_size = 0
        self.slow_walks = 0  # blocks whose chain had to be walked header by header
        self._promisc = promisc
        self._buffer_kib = buffer_kib
        self._timeout_ms = block_timeout_ms
        self._sock: socket.socket | None = None
        self._mm: mmap.mmap | None = None
        self._ring: np.ndarray | None = None
        self._next = 0  # the block we expect the kernel to hand over next
        self._held: int | None = None  # the block handed to the caller, not yet released
        self._loopback = False
        self._kernel_packets = 0
        self._kernel_drops = 0
        self._freezes = 0
        self._reported_drops = 0
        self._rx_dropped_start: int | None = None

    # -- opening -----------------------------------------------------------
    def open(self) -> RingSource:
        check_capture_privilege()
        if self.iface == "any":
            raise UsageError("-i any is not supported yet; name an interface (see 'ip link')")
        try:
            socket.if_nametoindex(self.iface)
        except OSError:
            raise UsageError(f"no such interface {self.iface!r} (see 'ip link')") from None
        try:
            hatype = int(Path("/sys/class/net", self.iface, "type").read_text())
        except (OSError, ValueError):
            raise UsageError(f"no such interface {self.iface!r} (see 'ip link')") from None
        linktype = ARPHRD_TO_LINKTYPE.get(hatype)
        if linktype is None:
            raise UsageError(f"interface {self.iface!r} has hardware type {hatype}, "
                             "which rstscope cannot capture on yet")
        self.linktype = linktype
        self._loopback = hatype == 772
        prog = _compile_filter(self.bpf, self.iface, linktype, self.snaplen)
        # Protocol 0: the socket receives nothing until bind() names ETH_P_ALL below.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._sock = sock
        try:
            self._setup(sock, prog)
        except BaseException:
            self.close()
            raise
        self._read_kernel_stats()
        self._kernel_packets = self._kernel_drops = self._freezes = 0
        self._rx_dropped_start = _iface_rx_dropped(self.iface)
        return self

    def _setup(self, sock: socket.socket, prog: bytes) -> None:
        insns = ctypes.create_string_buffer(prog, len(prog))
        fprog = struct.pack("HL", len(prog) // 8, ctypes.addressof(insns))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # before bind
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        except OSError as exc:
            raise RingUnavailable(f"PACKET_VERSION TPACKET_V3: {exc.strerror}") from None
        block, nr, frame = ring_geometry(self._buffer_kib, self.snaplen)
        req = struct.pack("=IIIIIII", block, nr, frame, (block // frame) * nr,
                          self._timeout_ms, 0, 0)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as exc:
            raise RingUnavailable(f"PACKET_RX_RING ({nr} x {block} B): {exc.strerror}") \
                from None
        try:
            self._mm = mmap.mmap(sock.fileno(), block * nr, mmap.MAP_SHARED,
                                 mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise RingUnavailable(f"mmap of the ring: {exc.strerror}") from None
        self._ring = np.frombuffer(self._mm, dtype=np.uint8)  # type: ignore[call-overload]
        self.block_size = block
        self.ring_blocks = nr
        if self._promisc:
            mreq = struct.pack("iHH8s", socket.if_nametoindex(self.iface), PACKET_MR_PROMISC,
                               0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        try:
            sock.bind((self.iface, ETH_P_ALL))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise UsageError(f"no such interface {self.iface!r}") from None
            if exc.errno == errno.ENETDOWN:
                raise UsageError(f"interface {self.iface!r} is down") from None
            raise CaptureError(f"cannot capture on {self.iface}: {exc.strerror}") from None

    def __enter__(self) -> RingSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        assert self._sock is not None
        return self._sock.fileno()

    # -- reading -----------------------------------------------------------
    def _status(self, i: int) -> int:
        assert self._ring is not None
        return int(self._ring[i * self.block_size + 8: i * self.block_size + 12]
                   .view("=u4")[0])

    def read_block(self, timeout_s: float, limit: int | None = None) -> FrameBlock | None:
        """The next block the kernel handed over, waiting up to ``timeout_s`` for it.

        Releases the previous block first.  ``limit`` caps the frames taken
        (``-c``); the rest of that block is discarded, as tcpdump -c does.
        """
        self.release()
        assert self._ring is not None and self._sock is not None, "open() first"
        i = self._next
        if not self._status(i) & TP_STATUS_USER:
            if timeout_s <= 0:
                return None
            deadline = time.monotonic() + timeout_s
            poller = select.poll()
            poller.register(self._sock.fileno(), select.POLLIN | select.POLLERR)
            while not self._status(i) & TP_STATUS_USER:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                with contextlib.suppress(InterruptedError):
                    poller.poll(max(1, int(left * 1000)))
        self._held = i
        self._next = (i + 1) % self.ring_blocks
        bs = self.block_size
        blk = self._ring[i * bs:(i + 1) * bs]
        _ver, _priv, status, n, first, used = _BLOCK_DESC.unpack_from(self._mm, i * bs)  # type: ignore[arg-type]
        if status & TP_STATUS_LOSING:
            self._read_kernel_stats()
        offs = packet_offsets(blk, first, used, n)
        if limit is not None and limit < n:
            offs = offs[:limit]
        h = gather(blk, offs, _HDR3.itemsize).view(_HDR3).ravel()
        if self._loopback:
            # On lo every packet is seen leaving and again arriving; keep one copy, as
            # libpcap does, so counts match tcpdump's.
            keep = h["pkttype"] != PACKET_OUTGOING
            if not keep.all():
                offs, h = offs[keep], h[keep]
        data = offs + h["mac"]
        caplen = np.minimum(h["snap"], self.snaplen).astype(np.int64)
        wirelen = h["len"].astype(np.int64)
        vlan = (h["status"] & TP_STATUS_VLAN_VALID) != 0
        if self.linktype == 1 and vlan.any():
            data, caplen, wirelen = self._put_back_vlan_tags(blk, h, data, caplen, wirelen,
                                                             vlan & (caplen >= 12))
        m = offs.size
        ts_ns = h["sec"].astype(np.int64) * 1_000_000_000 + h["nsec"]
        rec = RecordTable(off=data.astype(np.int64), caplen=caplen, wirelen=wirelen, ts_ns=ts_ns,
                          linktype=np.full(m, self.linktype, dtype=np.int64),
                          iface=np.zeros(m, dtype=np.int64))
        self.captured += m
        return FrameBlock(blk, rec)

    def _put_back_vlan_tags(self, blk: np.ndarray, h: np.ndarray, data: np.ndarray,
                            caplen: np.ndarray, wirelen: np.ndarray,
                            vlan: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The kernel stripped 802.1Q tags into metadata; put them back (as libpcap does),
        in place: the MAC addresses move 4 bytes into the header padding before them."""
        idx = np.flatnonzero(vlan)
        if not idx.size:
            return data, caplen, wirelen
        start = data[idx].astype(np.int64)
        macs = gather(blk, start, 12)
        tpid = np.where(h["status"][idx] & TP_STATUS_VLAN_TPID_VALID, h["tpid"][idx], 0x8100)
        tag = np.empty((idx.size, 4), dtype=np.uint8)
        tag[:, 0] = tpid >> 8
        tag[:, 1] = tpid & 0xFF
        tag[:, 2] = (h["tci"][idx] >> 8) & 0xFF
        tag[:, 3] = h["tci"][idx] & 0xFF
        cols = np.arange(12)
        blk[(start - 4)[:, None] + cols] = macs
        blk[(start + 8)[:, None] + np.arange(4)] = tag
        data = data.astype(np.int64)
        data[idx] -= 4
        caplen = caplen.copy()
        caplen[idx] = np.minimum(caplen[idx] + 4, self.snaplen)
        wirelen = wirelen.copy()
        wirelen[idx] += 4
        return data, caplen, wirelen

    def release(self) -> None:
        """Give the block handed over last back to the kernel."""
        if self._held is not None and self._ring is not None:
            off = self._held * self.block_size + 8
            self._ring[off:off + 4].view("=u4")[0] = TP_STATUS_KERNEL
        self._held = None

    # -- statistics ----------------------------------------------------------
    def _read_kernel_stats(self) -> None:
        if self._sock is None:
            return
        try:
            packets, drops, freezes = struct.unpack(
                "=III", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12))
        except OSError:
            return
        # The kernel zeroes these on every read; tp_packets already includes tp_drops.
        self._kernel_packets += packets
        self._kernel_drops += drops
        self._freezes += freezes

    def poll_drops(self) -> tuple[int, int, int]:
        """``(new, total, ring_full)``: packets the kernel dropped because the ring was
        full, new since the last call and in all, and how often the ring filled up."""
        self._read_kernel_stats()
        new = self._kernel_drops - self._reported_drops
        self._reported_drops = self._kernel_drops
        return new, self._kernel_drops, self._freezes

    def counters(self) -> CaptureCounters:
        self._read_kernel_stats()
        return capture_counters(self.iface, self._rx_dropped_start, self.captured,
                                self._kernel_packets, self._kernel_drops)

    def close(self) -> None:
        if self._sock is not None:
            self._read_kernel_stats()
        self._ring = None
        if self._mm is not None:
            # BufferError: a caller still holds a view of a block; unmapped when it goes.
            with contextlib.suppress(BufferError):
                self._mm.close()
            self._mm = None
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None


def ring_disabled_reason() -> str | None:
    """Why the ring is not to be used even if the kernel has it (an explicit opt-out)."""
    if os.environ.get("RSTSCOPE_LIVE_RING", "1") == "0":
        return "RSTSCOPE_LIVE_RING=0"
    return None
