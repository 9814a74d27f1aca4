"""Idle gaps: find them in a flow's packet times, and histogram the gaps before RSTs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rstscope.plot.select import all_resets
from rstscope.plot.style import ORIGIN_COLORS, TIMEOUT_COLOR, fmt_duration, legend_text
from rstscope.plot.timeout_lines import KnownTimeout, catalog_by_value

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from rstscope.results import RecordSource


@dataclass(frozen=True, slots=True)
class IdleGap:
    """Silence on a flow (both directions) between two consecutive packets."""

    start_ns: int  # last packet before the silence
    end_ns: int  # first packet after it

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


def default_min_gap_s(ts_ns: npt.ArrayLike) -> float:
    """Smallest silence worth showing: 1 s, or 20x the median inter-packet time if larger."""
    ts = np.sort(np.asarray(ts_ns, dtype=np.int64))
    if len(ts) < 3:
        return 1.0
    median = float(np.median(np.diff(ts))) / 1e9
    return max(1.0, 20.0 * median)


def find_idle_gaps(
    ts_ns: npt.ArrayLike, min_gap_s: float | None = None, *, max_gaps: int = 8,
    keep_ending_at: Sequence[int] = (),
) -> list[IdleGap]:
    """The longest silences of at least ``min_gap_s``, in time order.

    At most ``max_gaps`` are returned (the longest), plus any qualifying gap that
    ends at one of ``keep_ending_at`` (the RSTs' timestamps: the gap before a RST
    is the evidence and is always kept).
    """
    ts = np.sort(np.asarray(ts_ns, dtype=np.int64))
    if len(ts) < 2:
        return []
    threshold = default_min_gap_s(ts) if min_gap_s is None else float(min_gap_s)
    d = np.diff(ts)
    idx = np.flatnonzero(d >= int(threshold * 1e9))
    if len(idx) == 0:
        return []
    keep = set(idx[np.argsort(d[idx])[::-1][:max_gaps]].tolist())
    if len(keep_ending_at):
        ends = set(int(v) for v in keep_ending_at)
        keep |= {int(i) for i in idx if int(ts[i + 1]) in ends}
    return [IdleGap(int(ts[i]), int(ts[i + 1])) for i in sorted(keep)]


def idle_gap_histogram(
    analysis: RecordSource,
    ax: Axes | None = None,
    *,
    known: Sequence[KnownTimeout] | None = None,
    max_timeout_lines: int = 10,
) -> Axes:
    """Histogram of the idle gap before each RST, stacked by verdict origin.

    The catalog's timeouts near the observed gaps are drawn as vertical lines
    named after their products (``gid="timeout-line"`` / ``"timeout-label"``).
    A log x axis is used when the gaps span more than two decades.

    Args:
        analysis: an :class:`rstscope.api.Analysis` (any :class:`rstscope.results.RecordSource`).
        ax: Axes to draw into; a new figure is made when None.
        known: timeout values to mark (default: the packaged catalog).
        max_timeout_lines: mark at most this many (the ones nearest the data).

    Returns:
        The Axes.
    """
    if ax is None:
        # lazy: matplotlib loads only when something is drawn
        from rstscope.plot.backend import pyplot

        _fig, ax = pyplot().subplots(figsize=(9, 4), layout="constrained")
    assert ax is not None
    records = all_resets(analysis)
    by_origin: dict[str, list[float]] = {}
    for r in records:
        # The silence the verdict is about (before the trigger or the sender's own
        # close), which is what a product timeout explains.
        gap = r.silence_s
        if gap is None or not np.isfinite(gap):
            continue
        by_origin.setdefault(str(r.origin), []).append(max(float(gap), 1e-6))
    ax.set_title(f"Idle gap before each RST ({sum(map(len, by_origin.values()))} of "
                 f"{len(records)} RSTs)").set_gid("title")
    ax.set_ylabel("RSTs")
    if not by_origin:
        ax.text(0.5, 0.5, "no idle gaps before resets", transform=ax.transAxes,
                ha="center", va="center", gid="empty-note")
        ax.set_xlabel("idle gap before RST (s)")
        return ax
    values = np.concatenate([np.asarray(v) for v in by_origin.values()])
    lo, hi = float(values.min()), float(values.max())
    use_log = hi / lo > 100.0
    if use_log:
        bins: Any = np.geomspace(lo / 1.2, hi * 1.2, 40)
        ax.set_xscale("log")
    else:
        pad = max((hi - lo) * 0.05, 0.5)
        bins = np.linspace(max(lo - pad, 0.0), hi + pad, 31)
    order = [o for o in ORIGIN_COLORS if o in by_origin] + [o for o in by_origin if o not in ORIGIN_COLORS]
    _n, _b, patches_any = ax.hist([by_origin[o] for o in order], bins=bins, stacked=True,
                              label=order, color=[ORIGIN_COLORS.get(o, "#7F7F7F") for o in order])
    patches: Any = patches_any
    for group in patches if len(order) > 1 else [patches]:
        for p in group:
            p.set_gid("gap-hist")
    table = catalog_by_value() if known is None else list(known)
    lo_lim, hi_lim = (lo / 1.5, hi * 1.5) if use_log else (bins[0], bins[-1])
    in_range = [k for k in table if lo_lim <= k.timeout_s <= hi_lim]
    # Prefer the timeouts nearest to some observed gap: those are the explanations.
    in_range.sort(key=lambda k: float(np.min(np.abs(np.log(values / k.timeout_s)))))
    styles = ("--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
    for i, k in enumerate(sorted(in_range[:max_timeout_lines], key=lambda k: k.timeout_s)):
        # Named in the legend, not as text on the plot: rotated labels crossed the bars.
        ax.axvline(k.timeout_s, color=TIMEOUT_COLOR, ls=styles[i % len(styles)], lw=1,
                   gid="timeout-line", label=legend_text(k.label(max_names=1), 28))
    ax.set_xlabel("idle gap before RST (s, log scale)" if use_log else "idle gap before RST (s)")
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of RSTs are whole
    ax.legend(title="origin / known timeout", fontsize=7, loc="upper left",
              bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0).set_gid("legend")
    ax.xaxis.set_major_formatter(_duration_formatter())
    return ax


def _duration_formatter() -> Any:
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.ticker import Formatter

    class DurationFormatter(Formatter):  # type: ignore[misc]
        """Human durations; plain seconds with enough decimals when a narrow axis
        (gaps around one timeout, say 59.6-60.4 s) would print equal labels."""

        def __call__(self, x: float, pos: int | None = None) -> str:
            return fmt_duration(x) if x > 0 else "0"

        def format_ticks(self, values: Any) -> list[str]:
            labels = [self(v) for v in values]
            if len(set(labels)) == len(labels):
                return labels
            for decimals in range(0, 7):
                labels = [f"{v:.{decimals}f} s" if v > 0 else "0" for v in values]
                if len(set(labels)) == len(labels):
                    break
            return labels

    return DurationFormatter()
