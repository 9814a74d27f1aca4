"""The live packet source: a scapy-opened packet socket read as raw frames.

scapy opens the ``AF_PACKET`` socket, compiles and attaches the kernel BPF
filter *before* binding and flushes what queued before the filter took
effect (so no unfiltered packet leaks in at start), and turns on
``SO_TIMESTAMPNS`` and ``PACKET_AUXDATA``.  We then read that socket
directly with ``recvmsg``: the hot path never builds scapy packets, it takes
the bytes (cut to the snap length by the kernel), the kernel's nanosecond
receive timestamp and the original length from the aux data, and hands
``(ts_ns, linktype, data, wirelen, iface)`` tuples to
:class:`rstscope.ingest.FrameDecoder` and the writer.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstscope.errors import CaptureError, UsageError
from rstscope.live.block import FrameBlock, frames_to_block
from rstscope.live.privileges import check_capture_privilege

# <linux/if_packet.h>, <asm-generic/socket.h>
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_STATISTICS = 6
SO_TIMESTAMPNS = 35
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
_AUXDATA = struct.Struct("=IIIHHHH")  # status, len, snaplen, mac, net, vlan_tci, vlan_tpid
_TIMESPEC = struct.Struct("=qq")

# ARPHRD_* (device hardware type) -> pcap LINKTYPE_* of what a SOCK_RAW packet socket returns.
ARPHRD_TO_LINKTYPE = {
    1: 1,  # ARPHRD_ETHER -> EN10MB
    772: 1,  # ARPHRD_LOOPBACK: Linux lo carries a zeroed Ethernet header
    65534: 101,  # ARPHRD_NONE (tun, wireguard): bare IP packets -> LINKTYPE_RAW
    776: 101,  # ARPHRD_SIT
    768: 101,  # ARPHRD_TUNNEL (ipip)
    769: 101,  # ARPHRD_TUNNEL6
}

DEFAULT_SNAPLEN = 256  # Ethernet + IPv6 + TCP with options + a TLS record header, with room
DEFAULT_BUFFER_KIB = 16384  # kernel socket buffer: ~16k small packets of slack when we lag


@dataclass(frozen=True, slots=True)
class CaptureCounters:
    """What tcpdump prints on exit, plus the interface's own drop counter."""

    captured: int  # frames handed to us
    received_by_filter: int  # frames that passed the BPF filter (kernel count)
    dropped_by_kernel: int  # passed the filter but the socket buffer was full
    dropped_by_interface: int | None  # rx_dropped delta of the interface; None if unknown


def _iface_rx_dropped(iface: str) -> int | None:
    try:
        return int(Path("/sys/class/net", iface, "statistics", "rx_dropped").read_text())
    except (OSError, ValueError):
        return None


def capture_counters(iface: str, rx_dropped_start: int | None, captured: int,
                     kernel_packets: int, kernel_drops: int) -> CaptureCounters:
    """The stop summary of either live source (ring or recvmsg): the kernel's counts
    plus the interface's own drops since the capture started (None if unreadable)."""
    now = _iface_rx_dropped(iface)
    iface_drops = (None if now is None or rx_dropped_start is None
                   else max(0, now - rx_dropped_start))
    return CaptureCounters(captured=captured, received_by_filter=kernel_packets,
                           dropped_by_kernel=kernel_drops, dropped_by_interface=iface_drops)


class LiveSource:
    """An open capture on one interface.  Use as a context manager.

    ``read(timeout_s)`` returns the frames available within ``timeout_s``
    (at most ``max_batch``), as tuples accepted by ``FrameDecoder.decode``.
    This is the fallback for kernels without a TPACKET_V3 ring
    (:class:`rstscope.live.ring.RingSource`): one system call and some
    Python per packet, so it drops packets well below the ring's rates.
    """

    mode = "recvmsg (per packet)"

    def __init__(self, iface: str, *, bpf: str | None, snaplen: int = DEFAULT_SNAPLEN,
                 promisc: bool = True, buffer_kib: int = DEFAULT_BUFFER_KIB,
                 max_batch: int = 4096) -> None:
        if snaplen < 64 or snaplen > 262144:
            raise UsageError(f"bad snaplen {snaplen}: use 64..262144")
        self.iface = iface
        self.bpf = bpf
        self.snaplen = snaplen
        self.max_batch = max_batch
        self.captured = 0
        self._kernel_packets = 0
        self._kernel_drops = 0
        self._sock: Any = None  # the scapy SuperSocket
        self._raw: socket.socket | None = None
        self.linktype = 1
        self.ifindex = 0
        self._loopback = False
        self._rx_dropped_start: int | None = None
        self._promisc = promisc
        self._buffer_kib = buffer_kib
        self._ancbuf = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size) + 64

    # -- opening -----------------------------------------------------------
    def open(self) -> LiveSource:
        check_capture_privilege()
        if self.iface == "any":
            raise UsageError("-i any is not supported yet; name an interface (see 'ip link')")
        try:
            self.ifindex = socket.if_nametoindex(self.iface)
        except OSError:
            raise UsageError(f"no such interface {self.iface!r} (see 'ip link')") from None
        # scapy warns that it cannot guess a dissector for lo; we never dissect.
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        # lazy: scapy takes seconds to import; only capture and the lab use it
        from scapy.arch.linux import L2ListenSocket
        from scapy.error import Scapy_Exception

        try:
            sock = L2ListenSocket(iface=self.iface, filter=self.bpf or None,
                                  promisc=self._promisc)
        except Scapy_Exception as exc:
            msg = str(exc).replace("Cannot set filter: ", "").strip().splitlines()
            raise UsageError(f"bad filter {self.bpf!r}: {msg[-1] if msg else exc}") from None
        except PermissionError:
            check_capture_privilege()
            raise
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise UsageError(f"no such interface {self.iface!r}") from None
            if exc.errno == errno.ENETDOWN:
                raise UsageError(f"interface {self.iface!r} is down") from None
            raise CaptureError(f"cannot capture on {self.iface}: {exc.strerror}") from None
        self._sock = sock
        raw: socket.socket = sock.ins
        self._raw = raw
        hatype = raw.getsockname()[3]
        linktype = ARPHRD_TO_LINKTYPE.get(hatype)
        if linktype is None:
            self.close()
            raise UsageError(f"interface {self.iface!r} has hardware type {hatype}, "
                             "which rstscope cannot capture on yet")
        self.linktype = linktype
        self._loopback = hatype == 772
        try:
            # Larger than scapy's default so bursts are absorbed; SO_RCVBUFFORCE works as root.
            raw.setsockopt(socket.SOL_SOCKET, 33, self._buffer_kib * 1024)  # SO_RCVBUFFORCE
        except OSError:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._buffer_kib * 1024)
        raw.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        raw.setblocking(False)
        self._read_kernel_stats()  # zero the kernel counters (they reset on read)
        self._kernel_packets = self._kernel_drops = 0
        self._rx_dropped_start = _iface_rx_dropped(self.iface)
        return self

    def __enter__(self) -> LiveSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        assert self._raw is not None
        return self._raw.fileno()

    # -- reading -----------------------------------------------------------
    def read(self, timeout_s: float,
             limit: int | None = None) -> list[tuple[int, int, bytes, int, int]]:
        """Frames available now, or after waiting up to ``timeout_s`` for the first one.

        At most ``limit`` (default ``max_batch``) frames; the rest stay queued.
        """
        cap = self.max_batch if limit is None else min(limit, self.max_batch)
        raw = self._raw
        assert raw is not None, "open() first"
        frames: list[tuple[int, int, bytes, int, int]] = []
        if timeout_s > 0:
            try:
                ready, _, _ = select.select([raw], [], [], timeout_s)
            except InterruptedError:  # pragma: no cover - PEP 475 retries; signal handler raised
                return frames
            if not ready:
                return frames
        linktype = self.linktype
        snaplen = self.snaplen
        ancbuf = self._ancbuf
        while len(frames) < cap:
            try:
                data, anc, _flags, addr = raw.recvmsg(snaplen, ancbuf)
            except (BlockingIOError, InterruptedError):
                break
            if addr[2] == socket.PACKET_OUTGOING and self._loopback:
                # On lo every packet is seen leaving and again arriving; keep one copy,
                # as libpcap does, so counts match tcpdump's.
                continue
            ts_ns = 0
            wirelen = len(data)
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    ts_ns = sec * 1_000_000_000 + nsec
                elif level == SOL_PACKET and kind == PACKET_AUXDATA:
                    status, tp_len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(value)
                    wirelen = tp_len
                    if status & TP_STATUS_VLAN_VALID and linktype == 1 and len(data) >= 12:
                        # The NIC/kernel stripped the 802.1Q tag into metadata; put it back
                        # (as libpcap does) so VLAN-tagged traffic decodes and is written whole.
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                        data = (data[:12] + struct.pack("!HH", tpid, tci) + data[12:])[:snaplen]
                        wirelen += 4
            if not ts_ns:
                ts_ns = time.time_ns()
            frames.append((ts_ns, linktype, data, wirelen, 0))
        self.captured += len(frames)
        return frames

    def read_block(self, timeout_s: float, limit: int | None = None) -> FrameBlock | None:
        """:meth:`read`'s frames as one block (the interface the ring source has)."""
        frames = self.read(timeout_s, limit)
        return frames_to_block(frames) if frames else None

    def release(self) -> None:
        """Nothing to give back: :meth:`read_block`'s buffers are copies."""

    # -- statistics ----------------------------------------------------------
    def poll_drops(self) -> tuple[int, int, int]:
        """``(new, total, 0)`` packets the kernel dropped because the socket buffer was
        full (the third value, ring-full events, exists only for the ring)."""
        before = self._kernel_drops
        self._read_kernel_stats()
        return self._kernel_drops - before, self._kernel_drops, 0

    def _read_kernel_stats(self) -> None:
        if self._raw is None:
            return
        try:
            packets, drops = struct.unpack(
                "=II", self._raw.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            return
        # The kernel zeroes these on every read; tp_packets already includes tp_drops.
        self._kernel_packets += packets
        self._kernel_drops += drops

    def counters(self) -> CaptureCounters:
        self._read_kernel_stats()
        return capture_counters(self.iface, self._rx_dropped_start, self.captured,
                                self._kernel_packets, self._kernel_drops)

    def close(self) -> None:
        if self._sock is not None:
            self._read_kernel_stats()
            with contextlib.suppress(OSError):  # closing a dead socket
                self._sock.close()
            self._sock = None
            self._raw = None


def linktype_name(linktype: int) -> str:
    return {1: "EN10MB (Ethernet)", 101: "RAW (raw IP)"}.get(linktype, str(linktype))

