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

from rstscope.core import Tracker
from rstscope.ingest import FrameDecoder
from rstscope.live.capture import DEFAULT_BUFFER_KIB, DEFAULT_SNAPLEN, CaptureCounters, LiveSource
from rstscope.live.privileges import Identity, drop_privileges, target_identity
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


EventSink = Callable[[Any], None]

_DRAIN_S = 2.0  # on stop, keep reading what the kernel queued for at most this long


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
                 config: Any = None) -> None:
        self.opts = opts
        self.analyze = analyze
        self.on_event = on_event
        self.on_listening = on_listening
        self.config = config
        self.tracker: Any = None
        self._origins: Counter[str] = Counter()
        self._stop_reason: str | None = None

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
            with LiveSource(opts.iface, bpf=opts.bpf, snaplen=opts.snaplen, promisc=opts.promisc,
                            buffer_kib=opts.buffer_kib) as src:
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
                            + (f", filter '{opts.bpf}'" if opts.bpf else ""))
                    self._loop(src, writer, decoder, tracker, started)
                    if tracker is not None:
                        self._emit(tracker.finish())
                finally:
                    if writer is not None:
                        writer.close()
                counters = src.counters()
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
        )

    def _analysis_parts(self) -> tuple[Any, Any]:
        if not self.analyze:
            return None, None
        # lazy: the api loads pandas; the command needs it only when it runs
        from rstscope.api import make_config

        config = self.config if self.config is not None else make_config()
        self.tracker = Tracker(dataclasses.replace(config, keep_records=False))
        return FrameDecoder(), self.tracker

    def _emit(self, events: list[Any]) -> None:
        for ev in events:
            rec = getattr(ev, "reset", None)
            if rec is not None:
                self._origins[rec.origin] += 1
        if self.on_event is not None:
            for ev in events:
                self.on_event(ev)

    def _loop(self, src: LiveSource, writer: RotatingWriter | None, decoder: Any, tracker: Any,
              started: float) -> None:
        opts = self.opts
        tick_ns = int(opts.tick_s * 1e9)
        next_tick = time.time_ns() + tick_ns
        deadline = None if opts.duration_s is None else started + opts.duration_s
        remaining = opts.count
        frame_no = 0  # captured frames so far; labels rows when nothing is written
        last_ts = 0
        drain_until: float | None = None
        drained_empty = False
        while True:
            now = time.time_ns()
            if self._stop_reason is not None or (deadline is not None
                                                 and time.monotonic() >= deadline):
                # Drain without waiting: packets the kernel already queued belong to the
                # capture (Ctrl-C right after a RST still reports it).  Bounded in time so
                # a flood cannot keep us from stopping.
                if drain_until is None:
                    drain_until = time.monotonic() + _DRAIN_S
                elif drained_empty or time.monotonic() >= drain_until:
                    break
                wait_s = 0.0
            else:
                wait_s = max(0.0, min((next_tick - now) / 1e9, opts.tick_s))
            if (remaining is not None and remaining <= 0) or (writer is not None
                                                              and writer.exhausted):
                break  # -c reached or -G/-W file budget spent: nothing more is wanted
            frames = src.read(wait_s, remaining)
            if drain_until is not None:
                drained_empty = len(frames) < src.max_batch
            if frames:
                file_ids = np.zeros(len(frames), dtype=np.uint16)
                frame_nos = np.arange(frame_no + 1, frame_no + 1 + len(frames), dtype=np.uint64)
                if writer is not None:
                    for i, (ts_ns, _lt, data, wirelen, iface) in enumerate(frames):
                        where = writer.write(ts_ns, iface, data, wirelen)
                        if where is None:  # -G/-W file budget used up
                            frames = frames[:i]
                            self.stop("file limit")
                            break
                        file_ids[i] = where.file_id
                        frame_nos[i] = where.frame
                if tracker is not None and frames:
                    batch = decoder.decode(frames)
                    if len(batch):
                        # The decoder numbers frames 1.. across calls; map each row back
                        # to its (file, frame-in-file) so live and offline records agree.
                        idx = batch["frame"].astype(np.int64) - (frame_no + 1)
                        batch["file_id"] = file_ids[idx]
                        batch["frame"] = frame_nos[idx]
                        last_ts = max(last_ts, int(batch["ts_ns"].max()))
                        self._emit(tracker.feed(batch))
                frame_no += len(frames)
                if remaining is not None:
                    remaining -= len(frames)
                    if remaining <= 0:
                        self.stop("count")
            now = time.time_ns()
            if now >= next_tick:
                next_tick = now + tick_ns
                if writer is not None:
                    writer.tick(now / 1e9)
                    if writer.exhausted:
                        self.stop("file limit")
                if tracker is not None:
                    self._emit(tracker.advance(max(now, last_ts)))
