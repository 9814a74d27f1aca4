"""The live session: socket -> (writer, FrameDecoder -> Tracker) on a wall-clock tick.

The same pure core as offline analysis sees the same packet records; only
time is different: with no traffic, :meth:`Tracker.advance` is called with
the wall clock every ``tick_s`` so idle gaps grow, idle warnings fire and
pending RST verdicts settle (within the tracker's settle window, well under
a second).  Packet timestamps are the kernel's ``CLOCK_REALTIME`` receive
times, the same clock as :func:`time.time_ns`.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from rstscope.catalog import make_config
from rstscope.core import Tracker
from rstscope.ingest import FrameDecoder
from rstscope.live.block import FrameBlock
from rstscope.live.capture import DEFAULT_BUFFER_KIB, DEFAULT_SNAPLEN, CaptureCounters, LiveSource
from rstscope.live.privileges import Identity, drop_privileges, target_identity
from rstscope.live.ring import RingSource, RingUnavailable, ring_disabled_reason
from rstscope.live.writer import Format, Interface, RotatingWriter, RotationPolicy


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """Everything ``rstscope capture`` / ``watch`` take from the command line."""

    iface: str
    bpf: str | None = "tcp port 443"
    snaplen: int = DEFAULT_SNAPLEN
    out: str | None = None  # -w pattern
    fmt: Format = "pcapng"
    policy: RotationPolicy = field(default_factory=RotationPolicy)
    count: int | None = None  # -c: stop after this many packets
    duration_s: float | None = None  # --duration
    user: str | None = None  # -Z
    promisc: bool = True
    buffer_kib: int = DEFAULT_BUFFER_KIB
    tick_s: float = 0.25  # advance()/flush period; verdict latency <= settle_s + tick_s
    ring: bool = True  # TPACKET_V3 ring; False forces the per-packet recvmsg fallback


@dataclass(frozen=True, slots=True)
class LiveResult:
    """What a finished live session reports."""

    counters: CaptureCounters
    files: tuple[Path, ...]
    written: int
    resets_by_origin: dict[str, int]
    flows: int
    ran_as: Identity | None
    elapsed_s: float
    source: str = ""  # "TPACKET_V3 ring" or the recvmsg fallback


@dataclass(frozen=True, slots=True)
class DropReport:
    """Packets the kernel dropped since the last report (the capture could not keep up)."""

    new: int
    total: int
    captured: int
    ring_full: int = 0  # times the ring filled up so far (TPACKET_V3 only)


EventSink = Callable[[Any], None]

_DRAIN_S = 2.0  # on stop, keep reading what the kernel queued for at most this long
_DRAIN_WAIT_S = 0.2  # > the ring's block timeout
_DROP_REPORT_S = 1.0  # report new kernel drops at most this often


def open_source(opts: LiveOptions,
                on_status: Callable[[str], None] | None = None) -> RingSource | LiveSource:
    """The TPACKET_V3 ring, or the recvmsg socket (saying why) where there is none."""
    reason = None if opts.ring else "--no-ring"
    reason = reason or ring_disabled_reason()
    if reason is None:
        ring = RingSource(opts.iface, bpf=opts.bpf, snaplen=opts.snaplen, promisc=opts.promisc,
                          buffer_kib=opts.buffer_kib)
        try:
            return ring.open()
        except RingUnavailable as exc:
            reason = str(exc)
    if on_status is not None:
        on_status(f"no TPACKET_V3 ring ({reason}); using the per-packet recvmsg path, "
                  "which drops packets at high rates")
    src = LiveSource(opts.iface, bpf=opts.bpf, snaplen=opts.snaplen, promisc=opts.promisc,
                     buffer_kib=opts.buffer_kib)
    return src.open()


class LiveSession:
    """Run one capture until -c, --duration, -G/-W budget, SIGINT or SIGTERM.

    ``analyze=True`` decodes frames and feeds a :class:`rstscope.core.Tracker`,
    passing every event to ``on_event`` as it happens (``rstscope watch``).
    ``on_listening`` is called once capture is running and the first file is
    open (the start line scripts wait for).
    """

    def __init__(self, opts: LiveOptions, *, analyze: bool = False,
                 on_event: EventSink | None = None,
                 on_listening: Callable[[str], None] | None = None,
                 config: Any = None,
                 on_drops: Callable[[DropReport], None] | None = None,
                 packet_filter: Callable[[np.ndarray], np.ndarray | None] | None = None,
                 keep_event: Callable[[Any], bool] | None = None) -> None:
        self.opts = opts
        # watch --start: which decoded packets the tracker sees (all are written);
        # watch --flow: which events are reported and counted.
        self.packet_filter = packet_filter
        self.keep_event = keep_event
        self.analyze = analyze
        self.on_event = on_event
        self.on_listening = on_listening
        self.on_drops = on_drops
        self.config = config
        self.tracker: Any = None
        self._origins: Counter[str] = Counter()
        self._stop_reason: str | None = None
        self._next_drop_check = 0.0

    def stop(self, reason: str = "stopped") -> None:
        """Ask the loop to finish (safe from a signal handler)."""
        if self._stop_reason is None:
            self._stop_reason = reason

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop(signal.Signals(signum).name)

    def run(self) -> LiveResult:
        opts = self.opts
        started = time.monotonic()
        identity = target_identity(opts.user)
        old_handlers: dict[signal.Signals, Any] = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # not the main thread: the caller stops us via stop()
            old_handlers.clear()
        try:
            src = open_source(opts, self.on_listening)
            try:
                # The socket is open: nothing below needs root.  Files are created after
                # this, so they belong to the invoking (or -Z) user.
                drop_privileges(identity)
                writer = None
                if opts.out:
                    writer = RotatingWriter(
                        opts.out, fmt=opts.fmt, policy=opts.policy,
                        interfaces=[Interface(opts.iface, src.linktype, opts.snaplen)])
                try:
                    decoder, tracker = self._analysis_parts()
                    if self.on_listening:
                        self.on_listening(
                            f"listening on {opts.iface}, link-type {src.linktype}, "
                            f"snapshot length {opts.snaplen} bytes"
                            + (f", filter '{opts.bpf}'" if opts.bpf else "")
                            + f", {src.mode}")
                    self._loop(src, writer, decoder, tracker, started)
                    if tracker is not None:
                        self._emit(tracker.finish())
                finally:
                    if writer is not None:
                        writer.close()
                counters = src.counters()
            finally:
                src.close()
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        # Live trackers keep no records (memory stays bounded however long we run),
        # so the summary comes from the verdict events and the tracker's counters.
        by_origin: Counter[str] = Counter(self._origins)
        flows = self.tracker.stats.flows if self.tracker is not None else 0
        return LiveResult(
            counters=counters,
            files=tuple(writer.paths) if writer else (),
            written=writer.packets if writer else 0,
            resets_by_origin=dict(by_origin),
            flows=flows,
            ran_as=identity,
            elapsed_s=time.monotonic() - started,
            source=src.mode,
        )

    def _analysis_parts(self) -> tuple[Any, Any]:
        if not self.analyze:
            return None, None

        config = self.config if self.config is not None else make_config()
        self.tracker = Tracker(dataclasses.replace(config, keep_records=False))
        return FrameDecoder(), self.tracker

    def _emit(self, events: list[Any]) -> None:
        if self.keep_event is not None:
            events = [ev for ev in events if self.keep_event(ev)]
        for ev in events:
            rec = getattr(ev, "reset", None)
            if rec is not None:
                self._origins[rec.origin] += 1
        if self.on_event is not None:
            for ev in events:
                self.on_event(ev)

    def _report_drops(self, src: RingSource | LiveSource, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_drop_check:
            return
        self._next_drop_check = now + _DROP_REPORT_S
        new, total, ring_full = src.poll_drops()
        if new and self.on_drops is not None:
            self.on_drops(DropReport(new=new, total=total, captured=src.captured,
                                     ring_full=ring_full))

    def _loop(self, src: RingSource | LiveSource, writer: RotatingWriter | None, decoder: Any,
              tracker: Any, started: float) -> None:
        opts = self.opts
        tick_ns = int(opts.tick_s * 1e9)
        next_tick = time.time_ns() + tick_ns
        deadline = None if opts.duration_s is None else started + opts.duration_s
        remaining = opts.count
        frame_no = 0  # captured frames so far; labels rows when nothing is written
        last_ts = 0
        drain_until: float | None = None
        self._next_drop_check = time.monotonic() + _DROP_REPORT_S
        while True:
            now = time.time_ns()
            if self._stop_reason is not None or (deadline is not None
                                                 and time.monotonic() >= deadline):
                # Drain without waiting: packets the kernel already queued belong to the
                # capture (Ctrl-C right after a RST still reports it).  Bounded in time so
                # a flood cannot keep us from stopping.
                if drain_until is None:
                    drain_until = time.monotonic() + _DRAIN_S
                elif time.monotonic() >= drain_until:
                    break
                # The ring hands over a partly filled block only after its timeout.
                wait_s = _DRAIN_WAIT_S
            else:
                wait_s = max(0.0, min((next_tick - now) / 1e9, opts.tick_s))
            if (remaining is not None and remaining <= 0) or (writer is not None
                                                              and writer.exhausted):
                break  # -c reached or -G/-W file budget spent: nothing more is wanted
            block = src.read_block(wait_s, remaining)
            if block is None and drain_until is not None:
                break  # drained
            if block is not None and len(block):
                n = self._take(block, writer, decoder, tracker, frame_no)
                if n < len(block):
                    self.stop("file limit")
                if n and tracker is not None:
                    last_ts = max(last_ts, int(block.rec.ts_ns[:n].max()))
                frame_no += n
                if remaining is not None:
                    remaining -= n
                    if remaining <= 0:
                        self.stop("count")
            del block  # ring memory: no view may outlive the release in read_block
            now = time.time_ns()
            if now >= next_tick:
                next_tick = now + tick_ns
                self._report_drops(src)
                if writer is not None:
                    writer.tick(now / 1e9)
                    if writer.exhausted:
                        self.stop("file limit")
                if tracker is not None:
                    self._emit(tracker.advance(max(now, last_ts)))
        src.release()
        self._report_drops(src, force=True)

    def _take(self, block: FrameBlock, writer: RotatingWriter | None, decoder: Any,
              tracker: Any, frame_no: int) -> int:
        """Write and analyse one block; returns how many of its frames were taken."""
        n = len(block)
        file_ids = np.zeros(n, dtype=np.int64)
        frame_nos = np.arange(frame_no + 1, frame_no + 1 + n, dtype=np.int64)
        if writer is not None:
            file_ids, frame_nos, n = writer.write_block(block.buf, block.rec)
            block = block.head(n)
        if tracker is not None and n:
            batch = decoder.decode_block(block.buf, block.rec)
            if len(batch):
                # The decoder numbers frames 1.. across calls; map each row back to its
                # (file, frame-in-file) so live and offline records agree.
                idx = batch["frame"].astype(np.int64) - (frame_no + 1)
                batch["file_id"] = file_ids[idx]
                batch["frame"] = frame_nos[idx]
                keep = self.packet_filter(batch) if self.packet_filter is not None else None
                if keep is not None:
                    batch = batch[keep]
                if len(batch):
                    self._emit(tracker.feed(batch))
        return n
