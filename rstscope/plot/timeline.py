"""One flow over time: two lanes (orig, resp), idle gaps, RST verdicts, a TTL track.

Theory of operation:

* Packets are vertical ticks on their direction's lane; tick height grows with
  the payload (log scale; pure ACKs are short).  Above ``max_ticks`` packets
  the lane is binned in display space: one tick per bin, height by the bin's
  largest payload, so a 100k-packet flow draws a few hundred artists.
* Idle gaps (silence in both directions) are shaded and labelled with their
  duration.  Gaps that dominate the flow are *compressed* (see
  :mod:`rstscope.plot.axis`): the axis breaks there, with a log scale inside
  the gap, and the label says so.
* Each RST gets one marker (``gid="rst-marker"``) on its sender's lane,
  coloured by verdict origin, and a label with origin, confidence and its TTL
  against the direction's baseline.  Labels that would still collide at the
  drawn size (narrow figures) are pushed apart at draw time, and idle-gap labels
  are kept inside the Axes (``_label_spreader``).
* The known timeouts that match the gap before a RST (the reset's
  ``timeout_candidates``; else the nearest catalog values) are dashed lines
  drawn *from the last activity before the RST*.
* A TTL/hop track sits beneath the lanes in a second Axes.

Artists carry gids (``rst-marker``, ``rst-label``, ``idle-gap``, ``gap-label``,
``axis-break``, ``timeout-line``, ``timeout-label``, ``packets-orig``,
``packets-resp``, ``ttl-baseline``, ``rst-ttl``) so tests and users can find
them without comparing pixels.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rstscope.errors import UsageError
from rstscope.plot.axis import TimeAxis, build_time_axis
from rstscope.plot.gaps import IdleGap, find_idle_gaps
from rstscope.plot.select import FlowRows, flow_rows, resets_of_flow, resolve
from rstscope.plot.style import (
    GAP_COLOR,
    LANE_COLORS,
    TIMEOUT_COLOR,
    fmt_duration,
    legend_text,
    origin_color,
)
from rstscope.plot.timeout_lines import KnownTimeout, catalog_by_value, nearest, parse_candidates

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

    from rstscope.core.records import FlowRecord, ResetRecord
    from rstscope.results import RecordSource

TH_SYN, TH_FIN, TH_RST = 0x002, 0x001, 0x004
LANE_Y = {"orig": 1.0, "resp": 0.0}
TTL_AXES_LABEL = "rstscope-ttl"
AXIS_ATTR = "rstscope_time_axis"
# A gap is compressed (axis="auto") when it is this share of the flow or more.
COMPRESS_SHARE = 0.25
MAX_RST_LABELS = 6
# Share of the axis one RST label spans; nearer RSTs are labelled together.
LABEL_SHARE = 0.25
# Neighbouring x ticks closer than this share of the axis width are dropped.
MIN_TICK_SHARE = 0.07


def timeline(
    analysis: RecordSource,
    flow_or_reset: object,
    ax: Axes | None = None,
    *,
    ttl_ax: Axes | None = None,
    ttl_track: bool = True,
    axis: str = "auto",
    max_ticks: int = 3000,
    min_gap_s: float | None = None,
    packets: pd.DataFrame | npt.NDArray[Any] | None = None,
) -> Axes:
    """Plot one flow's timeline and return the lanes Axes.

    Args:
        analysis: an :class:`rstscope.api.Analysis` (any :class:`rstscope.results.RecordSource`).
        flow_or_reset: a ``flow_id``, a flow or reset record, or a row of
            ``analysis.flows`` / ``analysis.resets`` (a reset is highlighted).
        ax: Axes for the lanes.  When given and ``ttl_track`` is true, the TTL
            track is carved out of the bottom of ``ax``'s own space
            (``mpl_toolkits.axes_grid1`` divider), unless ``ttl_ax`` is given.
            When None, a new pyplot figure with both Axes is made.
        ttl_ax: Axes for the TTL/hop track (shares nothing else with ``ax``).
        ttl_track: draw the TTL track at all.
        axis: ``"auto"`` (compress gaps of >= 25 % of the flow), ``"broken"``
            (compress every shaded gap) or ``"linear"``.
        max_ticks: above this many packets, lanes are binned.
        min_gap_s: shade silences at least this long (default: 1 s, or 20x
            the median inter-packet time).
        packets: the capture's packet frame, to reuse one read for many plots, or
            packed rows (``rstscope.schema.PACKET_DTYPE``) that hold the flow's
            packets (the report's re-read, without pandas).

    Returns:
        The lanes Axes; the TTL Axes (if any) has label ``"rstscope-ttl"`` and
        is in ``ax.figure.axes``.
    """
    if axis not in ("auto", "broken", "linear"):
        raise UsageError(f"axis must be auto, broken or linear, not {axis!r}")
    flow, highlight = resolve(analysis, flow_or_reset)
    resets = resets_of_flow(analysis, flow.flow_id)
    pk = flow_rows(analysis, flow, packets)
    ax, ttl_ax = _make_axes(ax, ttl_ax, ttl_track)

    ts = pk.ts_ns
    rst_ts = [r.ts_ns for r in resets]
    t0 = int(min([flow.first_ts_ns, *ts[:1].tolist(), *rst_ts]))
    t_end = int(max([flow.last_ts_ns, *ts[-1:].tolist(), *rst_ts]))
    all_ts = np.sort(np.concatenate([ts, np.asarray(rst_ts, dtype=np.int64)]))
    gaps = find_idle_gaps(all_ts, min_gap_s, keep_ending_at=rst_ts)
    span_ns = max(t_end - t0, 1)
    if axis == "linear":
        squeeze: list[IdleGap] = []
    elif axis == "broken":
        squeeze = gaps
    else:
        # Longest first, each judged against the time left after the previous
        # compressions: a 400 s gap beside a 3 h one still dominates the rest.
        squeeze, left_ns = [], span_ns
        for g in sorted(gaps, key=lambda g: g.start_ns - g.end_ns):
            if g.end_ns - g.start_ns >= COMPRESS_SHARE * left_ns:
                squeeze.append(g)
                left_ns -= g.end_ns - g.start_ns
    # Timeout lines may fall after the last packet (the RST came before the timer
    # would have fired): extend the axis to them, inside the final compressed gap
    # when the flow ends with one, so they keep its log scale.
    lines_ns = [t for t in _timeout_line_times(resets, highlight) if t_end < t <= t_end + span_ns]
    spans = [(g.start_ns, g.end_ns) for g in squeeze]
    if lines_ns:
        new_end = max(lines_ns)
        if spans:
            last = max(spans)
            # The flow ends with (or just after) a compressed silence: the trigger
            # and the RST came right after it, so it continues up to the lines.
            if t_end - last[1] <= 0.02 * (last[1] - last[0]):
                spans[spans.index(last)] = (last[0], new_end)
        t_end = new_end
    taxis = build_time_axis(t0, t_end, spans)

    _draw_gaps(ax, taxis, gaps, {(g.start_ns, g.end_ns) for g in squeeze})
    for direction in ("orig", "resp"):
        _draw_lane(ax, taxis, pk.where(pk.sent_by(direction)), direction, max_ticks)
    _draw_resets(ax, taxis, resets, highlight)
    _draw_timeouts(ax, taxis, resets, highlight)
    _decorate(ax, taxis, flow, resets, len(pk), squeeze)
    _legend(ax, resets)
    if ttl_ax is not None:
        _draw_ttl(ttl_ax, taxis, pk, flow, resets, max_ticks)
        ttl_ax.set_xlim(ax.get_xlim())
        setattr(ttl_ax, AXIS_ATTR, taxis)  # noqa: B010
    setattr(ax, AXIS_ATTR, taxis)  # noqa: B010
    return ax


def time_axis_of(ax: Axes) -> TimeAxis | None:
    """The time mapping a :func:`timeline` drew with, to place your own marks::

        taxis = time_axis_of(ax)
        ax.axvline(taxis.to_x([ts_ns])[0])   # an absolute timestamp in ns
    """
    taxis = getattr(ax, AXIS_ATTR, None)
    return taxis if isinstance(taxis, TimeAxis) else None


# -- axes ------------------------------------------------------------------


def _make_axes(ax: Axes | None, ttl_ax: Axes | None, ttl_track: bool) -> tuple[Axes, Axes | None]:
    if ax is None:
        # lazy: matplotlib loads only when something is drawn
        from rstscope.plot.backend import pyplot

        if ttl_track and ttl_ax is None:
            _fig, (ax, ttl_ax) = pyplot().subplots(
                2, 1, figsize=(11, 5.5), height_ratios=(3, 1), sharex=True, layout="constrained")
        else:
            _fig, ax = pyplot().subplots(figsize=(11, 4), layout="constrained")
    elif ttl_track and ttl_ax is None:
        # lazy: matplotlib loads only when something is drawn
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        ttl_ax = make_axes_locatable(ax).append_axes("bottom", size="30%", pad=0.45, sharex=ax)
    if not ttl_track:
        ttl_ax = None
    if ttl_ax is not None:
        ttl_ax.set_label(TTL_AXES_LABEL)
    assert ax is not None
    return ax, ttl_ax


# -- lanes -----------------------------------------------------------------


def _tick_half_height(payload: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Pure ACKs 0.08, a full-size segment ~0.38 of the lane spacing.
    h: npt.NDArray[np.float64] = 0.08 + 0.30 * np.clip(np.log1p(payload) / np.log1p(1460.0), 0.0, 1.0)
    return h


def _draw_lane(ax: Axes, taxis: TimeAxis, pk: FlowRows, direction: str, max_ticks: int) -> None:
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.collections import LineCollection

    y = LANE_Y[direction]
    body = pk.where((pk.flags & TH_RST) == 0)  # RSTs get their own markers
    x = taxis.to_x(body.ts_ns) if len(body) else np.empty(0)
    payload = body.payload_len
    binned = len(body) > max_ticks
    if binned and len(x):
        lo, hi = float(x.min()), float(x.max())
        nbins = max(min(max_ticks // 4, 600), 1)
        idx = np.clip(((x - lo) / max(hi - lo, 1e-12) * nbins).astype(np.int64), 0, nbins - 1)
        biggest = np.full(nbins, -1.0)
        np.maximum.at(biggest, idx, payload)
        counts = np.bincount(idx, minlength=nbins)
        used = counts > 0
        x = lo + (np.flatnonzero(used) + 0.5) * (hi - lo) / nbins
        payload = biggest[used]
    h = _tick_half_height(payload)
    segs = np.stack([np.column_stack([x, y - h]), np.column_stack([x, y + h])], axis=1)
    label = f"{direction} packets ({len(body)}{', binned' if binned else ''})"
    lc = LineCollection(list(segs), colors=LANE_COLORS[direction], linewidths=1.0 if binned else 0.8,
                        gid=f"packets-{direction}", label=label)
    ax.add_collection(lc)
    # Handshake and close markers: few, and they anchor the reading of the lane.
    for bit, marker, gid in ((TH_SYN, ">", "syn-marker"), (TH_FIN, "s", "fin-marker")):
        sel = (body.flags & bit) != 0
        if sel.any():
            xs = taxis.to_x(body.ts_ns[sel][:50])
            ax.plot(xs, np.full(len(xs), y + 0.42), ls="none", marker=marker, ms=5,
                    color=LANE_COLORS[direction], gid=gid)


def _draw_gaps(ax: Axes, taxis: TimeAxis, gaps: Sequence[IdleGap],
               squeezed: set[tuple[int, int]]) -> None:
    # Several gaps (a stream in bursts) sit side by side: their labels take turns
    # above and below the middle, and the "//" marks alone say the axis is compressed.
    several = sum(1 for g in gaps if (g.start_ns, g.end_ns) in squeezed) > 1
    # The longest compressed gap keeps the words; the others show the marks only.
    longest = max((g for g in gaps if (g.start_ns, g.end_ns) in squeezed),
                  key=lambda g: g.duration_s, default=None)
    labels: list[Any] = []
    for i, g in enumerate(gaps):
        x0, x1 = taxis.to_x([g.start_ns, g.end_ns])
        compressed = (g.start_ns, g.end_ns) in squeezed
        ax.axvspan(x0, x1, color=GAP_COLOR, alpha=0.8, lw=0, zorder=0, gid="idle-gap")
        text = f"idle {fmt_duration(g.duration_s)}" + (
            " (axis compressed)" if compressed and (not several or g is longest) else "")
        y = (0.5, 0.75, 0.25)[i % 3] if several else 0.5
        labels.append(ax.text(
            (x0 + x1) / 2, y, text, ha="center", va="center", fontsize=8, zorder=3,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999", "lw": 0.5},
            gid="gap-label"))
        if compressed:
            # Side-by-side compressed gaps are narrow: one break mark each, centred.
            for xb in ((x0 + x1) / 2,) if several else (x0, x1):
                ax.text(xb, 0.0, "//", transform=ax.get_xaxis_transform(), ha="center",
                        va="center", fontsize=9, fontweight="bold", clip_on=False,
                        gid="axis-break")
    if labels:
        # A wide label on a gap near the axis end would reach into the legend.
        ax.add_artist(_label_spreader()([], inside=labels, zorder=2.99))


# -- resets ----------------------------------------------------------------


def _ttl_text(r: ResetRecord, with_position: bool = True) -> str:
    ttl, exp, hop = r.ttl, r.expected_ttl, r.hop_delta
    if exp is None:
        return f"TTL {ttl} (no baseline)"
    text = f"TTL {ttl} vs {exp}"
    if hop:
        text += f" ({int(hop):+d} hops)"
    if with_position and r.path_position:
        # Where a box's RST was made (records.ResetRecord.path_position).
        text += f"\n{r.path_position}"
    return text


def _draw_resets(ax: Axes, taxis: TimeAxis, resets: Sequence[ResetRecord],
                 highlight: ResetRecord | None) -> None:
    xs = taxis.to_x([r.ts_ns for r in resets]) if resets else np.empty(0)
    span = max(taxis.segments[-1].x_end - taxis.segments[0].x_start, 1e-12)
    groups: list[list[int]] = []
    for i, (r, x) in enumerate(zip(resets, xs, strict=True)):
        y = LANE_Y.get(r.direction, 0.5)
        is_hl = highlight is not None and r.frame == highlight.frame and (
            r.file_id == highlight.file_id)
        ax.plot([x], [y], ls="none", marker="X", ms=13 if is_hl else 10,
                color=origin_color(r.origin), markeredgecolor="black",
                markeredgewidth=1.6 if is_hl else 0.5, zorder=5, gid="rst-marker",
                label=f"RST frame {r.frame}")
        # RSTs closer than a label's width share one label (storms, bidirectional
        # resets): two-line labels are about a quarter of the axis wide.
        if groups and x - xs[groups[-1][0]] < LABEL_SHARE * span:
            groups[-1].append(i)
        else:
            groups.append([i])
    labels: list[Any] = []
    for g_no, group in enumerate(groups[:MAX_RST_LABELS]):
        first = resets[group[0]]
        chosen = next((resets[i] for i in group if highlight is not None
                       and resets[i].frame == highlight.frame), first)
        x, y = float(xs[group[0]]), LANE_Y.get(first.direction, 0.5)
        conf_s = f"{float(chosen.confidence):.0%}"
        head = f"RST #{chosen.frame}" if len(group) == 1 else f"{len(group)} RSTs (#{first.frame}…)"
        # A third line (where the box sits) fits only when one label has the lane to
        # itself; staggered labels of several groups would overprint each other.
        text = (f"{head}: {chosen.origin} ({conf_s})\n"
                f"{_ttl_text(chosen, with_position=len(groups) == 1)}")
        dy = 0.28 if y >= 0.5 else -0.28
        frac = (x - taxis.segments[0].x_start) / span
        ha = "right" if frac > 0.8 else "left" if frac < 0.2 else "center"
        # The leader starts on the label's edge at its anchor (relpos), so it needs no
        # clipping against the text's box: matplotlib clips by bisecting the path
        # against a rectangle, ~10 ms per label, more than drawing the text.
        relpos = ({"left": 0.0, "center": 0.5, "right": 1.0}[ha], 0.0 if dy > 0 else 1.0)
        labels.append(ax.annotate(text, (x, y), xytext=(x, y + dy + 0.30 * (g_no % 2) * np.sign(dy)),
                    ha=ha, va="bottom" if dy > 0 else "top", fontsize=7.5,
                    color=origin_color(chosen.origin), zorder=6, gid="rst-label", in_layout=False,
                    arrowprops={"arrowstyle": "-", "color": "#555555", "lw": 0.6,
                                "patchA": None, "relpos": relpos}))
    if len(labels) > 1:
        ax.add_artist(_label_spreader()(labels))
    if len(groups) > MAX_RST_LABELS:
        ax.text(0.99, 0.02, f"{len(resets)} RSTs; first {MAX_RST_LABELS} groups labelled",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, gid="rst-note")


LABEL_PAD_PX = 3.0


@functools.cache
def _label_spreader() -> type[Any]:
    """The class of an invisible artist that pushes overlapping RST labels apart.

    The stagger alone (0.30 data units) is less than a two-line label's height at
    the report's 5 in, so neighbouring groups' labels meet when their anchors are
    close and their alignments face each other (a centred one, then a right-aligned
    one near the axis end).  Their sizes in pixels are known only once the layout
    engine has placed the Axes, i.e. at draw time: this artist draws just before the
    labels (lower zorder) and moves the left one of each colliding pair leftwards,
    keeping it inside the Axes.  It is deterministic, so a recycled figure renders
    the same pixels as a fresh one.
    """
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.artist import Artist

    class _Spreader(Artist):
        def __init__(self, labels: list[Any], inside: Sequence[Any] = (),
                     zorder: float = 5.99) -> None:
            super().__init__()
            self._labels = labels  # pushed apart
            self._inside = list(inside)  # kept within the Axes' width
            self._home = [tuple(a.get_position()) for a in self._labels + self._inside]
            self.set_zorder(zorder)  # just before the texts it moves
            self.set_in_layout(False)

        def _shift(self, text: Any, dx_px: float) -> None:
            assert self.axes is not None
            x_px, y_px = self.axes.transData.transform(text.get_position())
            text.set_position(tuple(self.axes.transData.inverted().transform((x_px + dx_px, y_px))))

        def draw(self, renderer: Any) -> None:
            ax = self.axes
            if ax is None:
                return
            for label, home in zip(self._labels + self._inside, self._home, strict=True):
                label.set_position(home)  # idempotent: every draw starts from the plan
            for text in self._inside:
                box = text.get_window_extent(renderer)
                # The pad keeps the label's rounded frame inside too.
                lo, hi = ax.bbox.x0 + LABEL_PAD_PX, ax.bbox.x1 - LABEL_PAD_PX
                if box.x1 > hi:
                    self._shift(text, max(hi - box.x1, lo - box.x0))
                elif box.x0 < lo:
                    self._shift(text, lo - box.x0)
            # Right to left: a label moved left may then push its own left neighbour.
            for i in range(len(self._labels) - 2, -1, -1):
                label = self._labels[i]
                box = label.get_window_extent(renderer)
                push_px = 0.0
                for other in self._labels[i + 1:]:
                    ob = other.get_window_extent(renderer)
                    if min(box.y1, ob.y1) - max(box.y0, ob.y0) > 0 and box.x1 > ob.x0 - LABEL_PAD_PX:
                        push_px = max(push_px, box.x1 - ob.x0 + LABEL_PAD_PX)
                push_px = min(push_px, max(box.x0 - ax.bbox.x0, 0.0))
                if push_px > 0:
                    self._shift(label, -push_px)
            self.stale = False

    return _Spreader


def _gaps(r: ResetRecord) -> list[float]:
    out = []
    for v in (r.silence_s, r.idle_gap_s, r.idle_gap_orig_s, r.idle_gap_resp_s,
              r.idle_since_payload_s):
        if v is not None and math.isfinite(float(v)) and float(v) > 0:
            out.append(float(v))
    return out


def _timeouts_for(r: ResetRecord, catalog: list[KnownTimeout]
                  ) -> tuple[float | None, list[KnownTimeout], bool]:
    """(the silence the timeouts are measured from, the timeouts, matched by the core).

    A RST answering the first packet after a silence has a tiny ``idle_gap_s``
    (the trigger came just before it); the core then matched its candidates
    against another gap (per direction, or since the last payload).  Draw from
    whichever of the reset's gaps is nearest the first candidate.
    """
    gaps = _gaps(r)
    if not gaps:
        return None, [], False
    cands = parse_candidates(r.timeout_candidates)
    silence = r.silence_s
    if cands and silence is not None and float(silence) > 0:
        # The core matched its candidates against this silence (docs/schema.md).
        return float(silence), cands, True
    if cands:
        t = cands[0].timeout_s
        return min(gaps, key=lambda g: abs(math.log(g / t))), cands, True
    gap = max(gaps)
    if gap < 1.0:
        return None, [], False
    return gap, [k for k in nearest(catalog, gap, 2) if k.timeout_s <= 1.5 * gap], False


def _timeout_resets(resets: Sequence[ResetRecord],
                    highlight: ResetRecord | None) -> list[ResetRecord]:
    # The highlighted reset, else the first two that followed a real silence.
    if highlight is not None:
        return [highlight]
    return [r for r in resets if r.timeout_candidates or max(_gaps(r), default=0) >= 1.0][:2]


def _timeout_lines(resets: Sequence[ResetRecord], highlight: ResetRecord | None
                   ) -> list[tuple[ResetRecord, int, list[KnownTimeout], bool]]:
    """Per reset to annotate: (reset, last activity ns, timeouts, matched by the core)."""
    catalog: list[KnownTimeout] | None = None
    out = []
    for r in _timeout_resets(resets, highlight):
        if catalog is None:
            catalog = catalog_by_value()
        gap, known, matched = _timeouts_for(r, catalog)
        if gap is None or not known:
            continue
        if matched and r.silence_from_ns is not None:
            last_ns = r.silence_from_ns  # where the core's matched silence began
        else:
            last_ns = r.ts_ns - int(round(gap * 1e9))
        out.append((r, last_ns, known[:3], matched))
    return out


def _timeout_line_times(resets: Sequence[ResetRecord],
                        highlight: ResetRecord | None) -> list[int]:
    return [last + int(k.timeout_s * 1e9) for _r, last, known, _m in _timeout_lines(resets, highlight)
            for k in known]


def _draw_timeouts(ax: Axes, taxis: TimeAxis, resets: Sequence[ResetRecord],
                   highlight: ResetRecord | None) -> None:
    styles = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
    n = 0
    for _r, last_ns, known, matched in _timeout_lines(resets, highlight):
        for k in known:
            x = float(taxis.to_x([last_ns + int(k.timeout_s * 1e9)])[0])
            prefix = "timeout " if matched else "nearest known "
            # Named in the legend box, never as text on the plot (rotated labels
            # crossed the gap label, the RST label and the TTL panel).
            ax.axvline(x, color=TIMEOUT_COLOR, ls=styles[n % len(styles)], lw=1, zorder=2,
                       gid="timeout-line", label=legend_text(prefix + k.label(max_names=2)))
            n += 1
        x_last = float(taxis.to_x([last_ns])[0])
        ax.axvline(x_last, color="#555555", ls="-", lw=0.6, alpha=0.6, zorder=1,
                   gid="last-activity")


# -- decoration --------------------------------------------------------------


def _legend(ax: Axes, resets: Sequence[ResetRecord]) -> None:
    """One key outside the lanes: packet marks, RSTs by origin, then timeout lines."""
    # lazy: matplotlib
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [
        Line2D([], [], color="#555555", marker=">", ls="none", ms=5, label="SYN"),
        Line2D([], [], color="#555555", marker="s", ls="none", ms=5, label="FIN"),
        Line2D([], [], color="#555555", marker="|", ls="none", ms=9, mew=1.2,
               label="packet\n  (taller = more payload)"),
        Patch(color=GAP_COLOR, label="idle (no packets)"),
    ]
    for origin in dict.fromkeys(str(r.origin) for r in resets):
        handles.append(Line2D([], [], color=origin_color(origin), marker="X", ls="none",
                              ms=8, markeredgecolor="black", markeredgewidth=0.5,
                              label=f"RST: {origin}"))
    handles += [ln for ln in ax.get_lines() if ln.get_gid() == "timeout-line"]
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    borderaxespad=0.0, fontsize=7, title="key", title_fontsize=7,
                    frameon=True)
    leg.set_gid("legend")


def _decorate(ax: Axes, taxis: TimeAxis, flow: FlowRecord, resets: Sequence[ResetRecord],
              n_packets: int, squeezed: Sequence[IdleGap]) -> None:
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    ax.set_yticks([LANE_Y["resp"], LANE_Y["orig"]])
    ax.set_yticklabels([f"resp {_endpoint(flow.resp_h, flow.resp_p)}",
                        f"orig {_endpoint(flow.orig_h, flow.orig_p)}"])
    ax.set_ylim(-0.95, 1.95)
    segs = taxis.segments
    lo, hi = segs[0].x_start, segs[-1].x_end
    pad = max((hi - lo) * 0.03, 1e-3)
    x_min, x_max = lo, hi
    if ax.lines or ax.patches:  # RST markers, timeout lines, gap shading
        ax.relim()
        ax.autoscale_view(scalex=True, scaley=False)
        x_min, x_max = ax.get_xlim()
    ax.set_xlim(min(lo, x_min) - pad, max(hi, x_max) + pad)
    labels: dict[float, str] = {}

    def time_label(x: float) -> str:
        # matplotlib asks for every tick label again at each layout and draw pass
        # (~20 times per tick with constrained layout and a shared axis); the
        # label is a pure function of x, so each is computed once (the inverse
        # mapping was ~10 % of a report's timeline CPU).
        label = labels.get(x)
        if label is None:
            # Nothing happens before the first packet: a negative tick in the left pad
            # says nothing and collides with the TTL panel's labels in the corner.
            seconds = float(taxis.seconds_of_x([x])[0])
            label = labels[x] = "" if seconds < 0 else _tick_label(seconds)
        return label

    if squeezed:
        ticks = _segment_ticks(taxis)

        def squeezed_label(x: float, _pos: object) -> str:
            known = ticks.get(round(float(x), 9))
            return known if known is not None else time_label(x)

        ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
        ax.xaxis.set_major_formatter(FuncFormatter(squeezed_label))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=8))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: time_label(x)))
    ax.set_xlabel("time since first packet" + ("; // = idle gap compressed (log scale inside)"
                                               if squeezed else ""))
    state = flow.conn_state
    title = (f"flow {flow.flow_id}: {_endpoint(flow.orig_h, flow.orig_p)} \u2192 "
             f"{_endpoint(flow.resp_h, flow.resp_p)}  \u00b7  {state}  \u00b7  "
             f"{n_packets} packets  \u00b7  {len(resets)} RST")
    ax.set_title(title, fontsize=10).set_gid("title")
    ax.grid(axis="x", color="#EEEEEE", lw=0.5)


def _endpoint(host: object, port: object) -> str:
    h = str(host)
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def _tick_label(t_s: float, step_s: float | None = None) -> str:
    """Tick text for ``t_s`` seconds since the first packet; ``step_s`` (spacing of
    neighbouring ticks) sets the decimals so neighbours never print alike."""
    if abs(t_s) < 1e-9:
        return "0"
    if step_s is None and abs(t_s) < 1:
        return f"{t_s * 1000:.0f} ms"
    if step_s is None and abs(t_s) < 120:
        return f"{t_s:.3g} s" if abs(t_s) < 10 else f"{t_s:.0f} s"
    # Clock style keeps ticks readable on hour-long flows.
    dec = 1 if step_s is None else min(max(0, -math.floor(math.log10(max(step_s, 1e-6)))), 6)
    sign = "-" if t_s < 0 else ""
    m, s = divmod(abs(t_s), 60.0)
    h, m = divmod(int(m), 60)
    sec = f"{s:0{3 + dec if dec else 2}.{dec}f}"
    return f"{sign}{h}:{m:02d}:{sec}" if h else f"{sign}{m}:{sec}"


def _segment_ticks(taxis: TimeAxis, n_total: int = 8) -> dict[float, str]:
    """Tick positions and labels for a compressed axis: nice values inside each active
    stretch only (ticks inside a log-compressed gap would read as unevenly spaced)."""
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.ticker import MaxNLocator

    segs = taxis.segments
    width = max(segs[-1].x_end - segs[0].x_start, 1e-12)
    ticks: dict[float, str] = {}
    for seg in segs:
        if seg.compressed:
            # Mark where the silence ends, so the far side of a break is dated.
            ticks.setdefault(round(seg.x_end, 9), _tick_label(seg.t_end_s, 0.1))
            continue
        n = max(1, round(n_total * (seg.x_end - seg.x_start) / width))
        vals = MaxNLocator(nbins=n).tick_values(seg.t_start_s, seg.t_end_s)
        inside = [float(v) for v in vals if seg.t_start_s - 1e-9 <= v <= seg.t_end_s + 1e-9]
        if not inside:
            inside = [seg.t_start_s]
        step = min(np.diff(inside)) if len(inside) > 1 else None
        for t, x in zip(inside, taxis.x_of_seconds(inside).tolist(), strict=True):
            ticks.setdefault(round(x, 9), _tick_label(t, step if seg.t_start_s >= 120 else None))
    # Neighbouring stretches may still print alike (a short stretch after a gap):
    # drop later duplicates rather than show two equal labels.
    # Ticks closer than MIN_TICK_SHARE of the axis would overprint each other's
    # labels (the end of a compressed gap and the stretch after it).
    seen: set[str] = set()
    out: dict[float, str] = {}
    last_x: float | None = None
    for x in sorted(ticks):
        if ticks[x] in seen or (last_x is not None and x - last_x < MIN_TICK_SHARE * width):
            continue
        seen.add(ticks[x])
        out[x] = ticks[x]
        last_x = x
    return out


# -- TTL track ---------------------------------------------------------------


def _draw_ttl(ax: Axes, taxis: TimeAxis, pk: FlowRows, flow: FlowRecord,
              resets: Sequence[ResetRecord], max_ticks: int) -> None:
    not_rst = (pk.flags & TH_RST) == 0
    for direction in ("orig", "resp"):
        sel = pk.sent_by(direction) & not_rst
        x = taxis.to_x(pk.ts_ns[sel])
        ttl = pk.ttl[sel]
        if len(x) > max_ticks:
            # One point per (display bin, TTL value): a TTL change still shows.
            lo, hi = float(x.min()), float(x.max())
            b = ((x - lo) / max(hi - lo, 1e-12) * 600).astype(np.int64)
            _u, first = np.unique(b * 256 + ttl, return_index=True)
            x, ttl = x[first], ttl[first]
        ax.plot(x, ttl, ls="none", marker=".", ms=3, color=LANE_COLORS[direction],
                gid=f"ttl-{direction}", label=f"{direction} TTL")
        mode, hops = ((flow.orig_ttl_mode, flow.orig_hops) if direction == "orig"
                      else (flow.resp_ttl_mode, flow.resp_hops))
        if mode is not None:
            ax.axhline(float(mode), color=LANE_COLORS[direction], lw=0.8, ls="-", alpha=0.6,
                       gid="ttl-baseline")
            ax.text(0.002, float(mode), f" {direction} baseline {mode}"
                    + (f" ({hops} hops)" if hops is not None else ""),
                    # orig above its line, resp below: equal baselines stay legible.
                    transform=ax.get_yaxis_transform(), fontsize=7,
                    va="bottom" if direction == "orig" else "top",
                    color=LANE_COLORS[direction])
    for r in resets:
        xr = float(taxis.to_x([r.ts_ns])[0])
        ax.plot([xr], [r.ttl], ls="none", marker="X", ms=8,
                color=origin_color(r.origin), markeredgecolor="black",
                markeredgewidth=0.5, gid="rst-ttl")
    ttls = pk.ttl
    if len(ttls):
        lo_t, hi_t = int(ttls.min()), int(ttls.max())
        ax.set_ylim(lo_t - 3 - 0.1 * (hi_t - lo_t), hi_t + 3 + 0.1 * (hi_t - lo_t))
    ax.set_ylabel("TTL")
    ax.grid(axis="y", color="#EEEEEE", lw=0.5)
    ax.tick_params(labelsize=8)
