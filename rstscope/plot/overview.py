"""Many flows at once: one Gantt lane per flow, RSTs coloured by origin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rstscope.core.records import FlowRecord, FlowSpan
from rstscope.plot.select import all_resets
from rstscope.plot.style import ORIGIN_COLORS, fmt_duration, origin_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from rstscope.results import RecordSource


def _death_ns(flow: FlowRecord | FlowSpan, first_rst: dict[Any, int]) -> int:
    # A flow "dies" at its first RST; flows without one end at their last packet.
    return first_rst.get(str(flow.flow_id), flow.last_ts_ns)


def overview(
    analysis: RecordSource,
    ax: Axes | None = None,
    *,
    max_flows: int = 40,
    reset_flows_only: bool = False,
) -> Axes:
    """Gantt chart of flows sorted by time of death (first RST, else last packet).

    Each flow is a lane (``gid="flow-lane"``) from its first to its last packet;
    its RSTs are markers coloured by verdict origin (one collection per origin,
    ``gid="rst-marker"``, labelled with the origin).  Flows with resets are
    preferred when there are more than ``max_flows``; the title says how many
    are shown.  Lanes are labelled ``flow_id orig -> resp`` on the y axis.

    Args:
        analysis: an :class:`rstscope.api.Analysis` (any :class:`rstscope.results.RecordSource`).
        ax: Axes to draw into; a new figure is made when None.
        max_flows: at most this many lanes.
        reset_flows_only: show only flows with at least one RST.

    Returns:
        The Axes.
    """
    # Lanes are chosen by id and times alone; only the chosen flows' records are
    # built (a capture has thousands of flows, the chart shows max_flows).
    flows = analysis.flow_spans()
    resets = all_resets(analysis)
    first_rst: dict[Any, int] = {}
    for r in resets:
        key = str(r.flow_id)
        first_rst[key] = min(first_rst.get(key, r.ts_ns), r.ts_ns)
    with_rst = [f for f in flows if str(f.flow_id) in first_rst]
    without = [] if reset_flows_only else [f for f in flows if str(f.flow_id) not in first_rst]
    pool = with_rst + without
    # Keep reset flows first, then the latest-dying others; then order by death.
    spans = sorted(with_rst, key=lambda f: _death_ns(f, first_rst))[:max_flows]
    room = max_flows - len(spans)
    if room > 0:
        spans += sorted(without, key=lambda f: -f.last_ts_ns)[:room]
    spans.sort(key=lambda f: (_death_ns(f, first_rst), f.first_ts_ns))
    record_of = {f.flow_id: f for f in analysis.flows_by_id([s.flow_id for s in spans])}
    chosen = [record_of[s.flow_id] for s in spans]

    if ax is None:
        # lazy: matplotlib loads only when something is drawn
        from rstscope.plot.backend import pyplot

        height = min(2.0 + 0.28 * max(len(chosen), 1), 16.0)
        _fig, ax = pyplot().subplots(figsize=(11, height), layout="constrained")
    assert ax is not None

    t_all = [f.first_ts_ns for f in chosen] + [r.ts_ns for r in resets]
    t0 = min(t_all) if t_all else 0
    t1 = max([f.last_ts_ns for f in chosen] + [r.ts_ns for r in resets] + [t0])
    span_s = (t1 - t0) / 1e9
    unit, scale = ("h", 3600.0) if span_s > 3 * 3600 else ("min", 60.0) if span_s > 600 else ("s", 1.0)

    lane_of = {str(f.flow_id): i for i, f in enumerate(chosen)}
    for i, f in enumerate(chosen):
        start = (f.first_ts_ns - t0) / 1e9 / scale
        width = max((f.last_ts_ns - f.first_ts_ns) / 1e9 / scale, span_s / scale / 500)
        ax.broken_barh([(start, width)], (i - 0.3, 0.6), facecolors="#C9D6E8",
                       edgecolors="#6A86B0", linewidth=0.5, gid="flow-lane")
    by_origin: dict[str, list[tuple[float, int]]] = {}
    for r in resets:
        lane = lane_of.get(str(r.flow_id))
        if lane is None:
            continue
        by_origin.setdefault(str(r.origin), []).append(((r.ts_ns - t0) / 1e9 / scale, lane))
    for origin in [o for o in ORIGIN_COLORS if o in by_origin] + [
            o for o in by_origin if o not in ORIGIN_COLORS]:
        pts = np.asarray(by_origin[origin], dtype=np.float64)
        ax.scatter(pts[:, 0], pts[:, 1], marker="X", s=70, color=origin_color(origin),
                   edgecolors="black", linewidths=0.5, zorder=5, label=origin, gid="rst-marker")
    ax.set_yticks(range(len(chosen)))
    ax.set_yticklabels([f"{f.flow_id} {f.orig_h}:{f.orig_p} \u2192 {f.resp_h}:{f.resp_p}"
                        for f in chosen], fontsize=7)
    ax.set_ylim(len(chosen) - 0.5, -0.5)  # first death on top
    ax.set_xlabel(f"time since first shown packet ({unit}); span {fmt_duration(span_s)}")
    shown = f"{len(chosen)} of {len(pool)} flows" if len(chosen) < len(pool) else f"{len(chosen)} flows"
    ax.set_title(f"{shown}, {len(resets)} RSTs \u2014 sorted by time of death",
                 fontsize=10).set_gid("title")
    if by_origin:
        ax.legend(title="RST origin", fontsize=8, loc="lower right")
    if not chosen:
        ax.text(0.5, 0.5, "no TCP flows", transform=ax.transAxes, ha="center", gid="empty-note")
    ax.grid(axis="x", color="#EEEEEE", lw=0.5)
    return ax
