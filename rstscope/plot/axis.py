"""A time axis that compresses long idle gaps, so hour-long flows stay readable.

Theory of operation: the axis is a piecewise mapping from seconds since the
flow's first packet to display units.  Active stretches keep slope 1 (display
units are seconds there, so short flows plot on a plain linear axis).  Each
*compressed* gap is squeezed into a fixed width and mapped logarithmically
inside, ``x = xa + w * log1p(t - ta) / log1p(tb - ta)``: a timeout line at
60 s and one at 350 s after the last activity stay apart even when the gap
lasts three hours.  The mapping is monotonic, so it can be inverted for tick
labels.  Pure numpy; no matplotlib.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Segment:
    """One piece of the mapping: seconds ``[t_start_s, t_end_s]`` -> ``[x_start, x_end]``."""

    t_start_s: float
    t_end_s: float
    x_start: float
    x_end: float
    compressed: bool


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """Seconds-since-``t0_ns`` <-> display coordinate, with compressed gaps."""

    t0_ns: int
    segments: tuple[Segment, ...]

    @property
    def compressed_gaps(self) -> tuple[Segment, ...]:
        return tuple(s for s in self.segments if s.compressed)

    @property
    def _ext_slope(self) -> float:
        # Outside the known range, extend with the average slope, so a timeout
        # line beyond the last packet of a compressed axis stays near the data.
        if not self.segments:
            return 1.0
        dt = self.segments[-1].t_end_s - self.segments[0].t_start_s
        dx = self.segments[-1].x_end - self.segments[0].x_start
        return dx / dt if dt > 0 and dx > 0 else 1.0

    def seconds(self, ts_ns: npt.ArrayLike) -> FloatArray:
        """Seconds since ``t0_ns`` (float)."""
        return (np.asarray(ts_ns, dtype=np.int64) - self.t0_ns).astype(np.float64) / 1e9

    def to_x(self, ts_ns: npt.ArrayLike) -> FloatArray:
        """Display coordinate of absolute nanosecond timestamps."""
        return self.x_of_seconds(self.seconds(ts_ns))

    def x_of_seconds(self, t_s: npt.ArrayLike) -> FloatArray:
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        if not self.segments:
            return t.copy()
        out = np.empty_like(t)
        first, last = self.segments[0], self.segments[-1]
        slope = self._ext_slope
        before = t < first.t_start_s
        after = t > last.t_end_s
        out[before] = first.x_start + (t[before] - first.t_start_s) * slope
        out[after] = last.x_end + (t[after] - last.t_end_s) * slope
        inside = ~(before | after)
        starts = np.array([s.t_start_s for s in self.segments])
        out[inside] = _per_segment(self.segments, starts, t[inside], _forward)
        return out

    def seconds_of_x(self, x: npt.ArrayLike) -> FloatArray:
        """Inverse of :meth:`x_of_seconds` (for tick labels)."""
        xv = np.atleast_1d(np.asarray(x, dtype=np.float64))
        if not self.segments:
            return xv.copy()
        out = np.empty_like(xv)
        first, last = self.segments[0], self.segments[-1]
        slope = self._ext_slope
        before = xv < first.x_start
        after = xv > last.x_end
        out[before] = first.t_start_s + (xv[before] - first.x_start) / slope
        out[after] = last.t_end_s + (xv[after] - last.x_end) / slope
        inside = ~(before | after)
        starts = np.array([s.x_start for s in self.segments])
        out[inside] = _per_segment(self.segments, starts, xv[inside], _inverse)
        return out


def _per_segment(segments: Sequence[Segment], starts: FloatArray, values: FloatArray,
                 fn: Callable[[Segment, FloatArray], FloatArray]) -> FloatArray:
    """Apply ``fn(segment, values)`` to each value with the segment whose start
    (in ``starts``, one per segment, ascending) is the last one at or below it."""
    idx = np.clip(np.searchsorted(starts, values, side="right") - 1, 0, len(starts) - 1)
    res = np.empty_like(values)
    for k in np.unique(idx):
        sel = idx == k
        res[sel] = fn(segments[int(k)], values[sel])
    return res


def _forward(seg: Segment, t: FloatArray) -> FloatArray:
    dt = seg.t_end_s - seg.t_start_s
    dx = seg.x_end - seg.x_start
    if dt <= 0:
        return np.full_like(t, seg.x_start)
    out: FloatArray
    if seg.compressed:
        out = seg.x_start + dx * np.log1p(np.maximum(t - seg.t_start_s, 0.0)) / np.log1p(dt)
    else:
        out = seg.x_start + (t - seg.t_start_s) * (dx / dt)
    return out


def _inverse(seg: Segment, x: FloatArray) -> FloatArray:
    dt = seg.t_end_s - seg.t_start_s
    dx = seg.x_end - seg.x_start
    if dx <= 0:
        return np.full_like(x, seg.t_start_s)
    out: FloatArray
    if seg.compressed:
        out = seg.t_start_s + np.expm1((x - seg.x_start) / dx * np.log1p(dt))
    else:
        out = seg.t_start_s + (x - seg.x_start) * (dt / dx)
    return out


def build_time_axis(
    t0_ns: int,
    t_end_ns: int,
    gaps_ns: Sequence[tuple[int, int]] = (),
    *,
    gap_width_fraction: float = 0.12,
) -> TimeAxis:
    """An axis over ``[t0_ns, t_end_ns]`` with each ``(start_ns, end_ns)`` gap compressed.

    Each compressed gap gets ``gap_width_fraction`` of the active time as its
    width (at least 1 display unit when nearly all the time is idle), so the
    picture keeps the proportions of the *activity* and shows gaps as breaks.
    """
    span_s = max((t_end_ns - t0_ns) / 1e9, 0.0)
    gaps = sorted((max(a, t0_ns), min(b, t_end_ns)) for a, b in gaps_ns)
    gaps = [(a, b) for a, b in gaps if b > a]
    if not gaps:
        return TimeAxis(t0_ns, (Segment(0.0, span_s, 0.0, span_s, False),))
    gap_s = [((a - t0_ns) / 1e9, (b - t0_ns) / 1e9) for a, b in gaps]
    idle = sum(b - a for a, b in gap_s)
    active = max(span_s - idle, 0.0)
    width = max(active * gap_width_fraction, active / 40.0, 1e-3) if active > 0 else 1.0
    segs: list[Segment] = []
    t = x = 0.0
    for a, b in gap_s:
        if a > t:
            segs.append(Segment(t, a, x, x + (a - t), False))
            x += a - t
        segs.append(Segment(a, b, x, x + width, True))
        x += width
        t = b
    if span_s > t:
        segs.append(Segment(t, span_s, x, x + (span_s - t), False))
    return TimeAxis(t0_ns, tuple(segs))
