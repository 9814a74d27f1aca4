"""Place a column of Axes from a few measured texts, without a layout engine.

Theory of operation: constrained layout asks every Axes for its tight bounding
box (all tick labels, spines, titles and text children) several times per draw;
on the report's timelines that was about a quarter of each figure's CPU.  The
report's figures are one column of Axes (``Figure.subplots``) whose outer text
is known: tick labels and axis labels, a legend placed outside on the right, a
title on top, and a few texts that hang over the Axes' edges (the timeline's
``//`` gap marks).  Only those are measured (matplotlib caches text metrics
per string and font), the subplot parameters are set from them, and the
measurement is repeated once, because the tick locators choose their ticks
from the Axes' new size.

Texts drawn with ``in_layout=False`` (the timeline's RST labels) are left out,
as constrained layout leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Space kept between the outermost text and the figure edge, and between what
# hangs under one Axes and over the next, in points (constrained layout pads
# each side by 3 points).
EDGE_PAD_PT = 4.0
GAP_PT = 6.0
# matplotlib's default subplot parameters: where the measuring starts.
START = {"left": 0.125, "right": 0.9, "bottom": 0.11, "top": 0.88, "hspace": 0.2}


@dataclass(frozen=True, slots=True)
class Overhang:
    """How far an Axes' texts reach past each edge of the Axes, in pixels."""

    left_px: float
    right_px: float
    above_px: float
    below_px: float


def can_fit(fig: Any) -> bool:
    """True when ``fig``'s Axes are one column of one grid (what :func:`fit_axes` places)."""
    specs = [ax.get_subplotspec() for ax in fig.axes]
    if not specs or any(s is None for s in specs):
        return False
    grid = specs[0].get_gridspec()
    return bool(grid.ncols == 1 and len(specs) == grid.nrows
                and all(s.get_gridspec() is grid for s in specs))


def fit_axes(fig: Any, renderer: Any) -> None:
    """Set ``fig``'s subplot parameters so its outer texts fit inside the figure.

    ``renderer`` is the Agg renderer the figure will be drawn with (its dpi
    must be final).  The Axes must satisfy :func:`can_fit`.
    """
    # Start from the same place every time, so the result depends only on what
    # is drawn, not on where a reused figure's Axes were for the previous plot.
    fig.subplots_adjust(**START)
    for _pass in range(2):
        _place(fig, renderer)


def _place(fig: Any, renderer: Any) -> None:
    axes = sorted(fig.axes, key=lambda ax: ax.get_subplotspec().rowspan.start)
    width_px, height_px = float(fig.bbox.width), float(fig.bbox.height)
    pt = float(renderer.points_to_pixels(1.0))
    edge, gap = EDGE_PAD_PT * pt, GAP_PT * pt
    over = [overhang(ax, renderer) for ax in axes]
    left = max(o.left_px for o in over) + edge
    right = max(o.right_px for o in over) + edge
    top = over[0].above_px + edge
    bottom = over[-1].below_px + edge
    # Between two Axes: what hangs under the upper one and over the lower one.
    between = max((a.below_px + b.above_px + gap for a, b in zip(over, over[1:], strict=False)),
                  default=0.0)
    n = len(axes)
    cell = max((height_px - top - bottom - (n - 1) * between) / n, 1.0)
    fig.subplots_adjust(left=min(left / width_px, 0.45), right=max(1.0 - right / width_px, 0.55),
                        bottom=min(bottom / height_px, 0.45), top=max(1.0 - top / height_px, 0.55),
                        hspace=between / cell if n > 1 else 0.0)


def _shown(texts: Any) -> list[Any]:
    return [t for t in texts if t.get_visible() and t.get_text() and t.get_in_layout()]


def overhang(ax: Any, renderer: Any) -> Overhang:
    """What of ``ax`` lies outside its own box: tick labels (as placed now), axis
    labels (placed beside the tick labels at draw time), title, legend, texts."""
    box = ax.bbox
    x0, x1, y0, y1 = float(box.x0), float(box.x1), float(box.y0), float(box.y1)
    left = right = above = below = 0.0
    # Tick labels are positioned when asked for (with their pad): use their boxes.
    ylabels = [t.get_window_extent(renderer) for t in _shown(ax.get_yticklabels())]
    xlabels = [t.get_window_extent(renderer) for t in _shown(ax.get_xticklabels())]
    # Only labels of ticks inside the view are drawn.
    ylabels = [b for b in ylabels if y0 - 1.0 <= (b.y0 + b.y1) / 2 <= y1 + 1.0]
    xlabels = [b for b in xlabels if x0 - 1.0 <= (b.x0 + b.x1) / 2 <= x1 + 1.0]
    left = max([left, *(x0 - b.x0 for b in ylabels)])
    below = max([below, *(y0 - b.y0 for b in xlabels)])
    # The last tick label may be centred on the right edge.
    right = max([right, *(b.x1 - x1 for b in xlabels)])
    above = max([above, *(b.y1 - y1 for b in ylabels)])
    pt = float(renderer.points_to_pixels(1.0))
    tick_room = _tick_room(ax.yaxis, pt)
    for label, axis in ((ax.yaxis.label, ax.yaxis), (ax.xaxis.label, ax.xaxis)):
        if not (label.get_visible() and label.get_text()):
            continue
        ext = label.get_window_extent(renderer)
        if axis is ax.yaxis:
            left = max(left, tick_room) + axis.labelpad * pt + float(ext.width)
        else:
            below = max(below, _tick_room(ax.xaxis, pt)) + axis.labelpad * pt + float(ext.height)
    title = ax.title
    if title.get_visible() and title.get_text():
        # The title sits axes.titlepad above the Axes (its offset transform).
        above = max(above, float(title.get_window_extent(renderer).y1) - y1)
    leg = ax.get_legend()
    if leg is not None and leg.get_visible():
        b = leg.get_window_extent(renderer)
        left, right = max(left, x0 - b.x0), max(right, b.x1 - x1)
        above, below = max(above, b.y1 - y1), max(below, y0 - b.y0)
    for t in _shown(ax.texts):
        b = t.get_window_extent(renderer)
        left, right = max(left, x0 - b.x0), max(right, b.x1 - x1)
        above, below = max(above, b.y1 - y1), max(below, y0 - b.y0)
    return Overhang(float(left), float(right), float(above), float(below))


def _tick_room(axis: Any, pt: float) -> float:
    """Tick length plus the pad to its label, in pixels (0 without ticks)."""
    ticks = axis.get_major_ticks()
    if not ticks:
        return 0.0
    return float((ticks[0].get_tick_padding() + ticks[0].get_pad()) * pt)


def recycle_axes(axes: Sequence[Any]) -> None:
    """Empty ``axes`` (all the Axes of one figure) so the same kind of plot can be
    drawn into them again.

    Creating Axes and their ticks is a fifth of a report timeline's CPU
    (~1 ms per tick); a report draws up to twenty timelines of one shape, so
    it draws them into the same two Axes.  Everything a fresh Axes would not
    have is undone here: artists, legend, title and axis labels, data and view
    limits, locators and formatters, autoscaling.  Tick objects, grid and tick
    parameters stay (the next drawing sets the same ones);
    tests/report/test_reuse.py checks that a recycled figure renders the very
    pixels of a fresh one.
    """
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.ticker import AutoLocator, ScalarFormatter

    for ax in axes:
        for group in (ax.lines, ax.collections, ax.patches, ax.texts, ax.images, ax.artists):
            for artist in list(group):
                artist.remove()
        leg = ax.get_legend()
        if leg is not None:
            leg.remove()
        ax.set_title("")
        ax.set_xlabel("")
        ax.set_ylabel("")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(AutoLocator())
            axis.set_major_formatter(ScalarFormatter())
        ax.relim()
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.0)
    # Only after every set_*lim: a shared axis turns its siblings' autoscaling off.
    for ax in axes:
        ax.set_autoscale_on(True)
