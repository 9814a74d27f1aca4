"""``rstscope probe --plot FILE``: the path as two rows of hops, the resetting hop marked.

The top row is the fresh connection's path (harmless probes), the bottom row
the trigger's probes.  Each probe is one marker at its TTL, shaped by its reply
(time-exceeded, RST, ACK, nothing), labelled with the address that answered.
The hop where the reset is made is a red band; a silent drop shades every hop
from the first silent one on.
"""

from __future__ import annotations

from pathlib import Path

from rstscope.errors import OutputError
from rstscope.plot.backend import new_figure
from rstscope.plot.style import ORIGIN_COLORS
from rstscope.probe.model import Hop, ProbeResult

#: Marker and colour per reply kind.
MARKERS = {"time-exceeded": ("o", "#777777"), "rst": ("X", "#CC3311"),
           "ack": ("s", "#4A9D5B"), "unreachable": ("v", "#EE7733"), "none": ("x", "#BBBBBB")}


def plot_path(result: ProbeResult, path: str | Path) -> Path:
    """Draw ``result`` to ``path`` (format from the suffix: .png, .svg, .pdf)."""
    out = Path(path)
    a = result.answer
    last = max([h.ttl for h in (*result.path, *result.hops)] or [1])
    fig = new_figure(max(6.0, 1.3 * (last + 1)), 3.2)
    ax = fig.add_subplot()
    rows = ((1.0, "path (fresh)", result.path), (0.0, f"trigger: {result.trigger}", result.hops))
    for y, _label, hops in rows:
        ax.plot([0, last], [y, y], color="#DDDDDD", zorder=0, linewidth=1)
        ax.scatter([0], [y], marker="D", color="#3B6FB6", s=60, zorder=3)
        for h in hops:
            _hop(ax, h, y)
    if a.reset_hop is not None:
        color = ORIGIN_COLORS.get(a.box or "unknown", ORIGIN_COLORS["unknown"])
        ax.axvspan(a.reset_hop - 0.35, a.reset_hop + 0.35, color=color, alpha=0.18, zorder=0)
        what = "on-path " if a.on_path else ""
        ax.annotate(f"reset: {what}{a.box} (hop {a.reset_hop})", (a.reset_hop, 1.45),
                    ha="center", fontsize=9, color=color, annotation_clip=False)
    elif a.drop_after_hop is not None:
        ax.axvspan(a.drop_after_hop + 0.5, last + 0.5, color="#999999", alpha=0.15, zorder=0)
        ax.annotate(f"silent after hop {a.drop_after_hop}", (a.drop_after_hop + 0.6, 1.45),
                    fontsize=9, color="#555555", annotation_clip=False)
    ax.set_yticks([y for y, _, _ in rows], [label for _, label, _ in rows])
    ax.set_xticks(range(0, last + 1), ["client", *[str(i) for i in range(1, last + 1)]])
    ax.set_xlim(-0.6, last + 0.6)
    ax.set_ylim(-0.7, 1.7)
    ax.set_xlabel("hop (probe TTL)")
    ax.set_title(f"rstscope probe {result.target}", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    try:
        fig.savefig(out)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write plot {out}: {exc}") from None
    return out


def _hop(ax: object, h: Hop, y: float) -> None:
    marker, color = MARKERS.get(h.reply, MARKERS["none"])
    ax.scatter([h.ttl], [y], marker=marker, color=color, s=70, zorder=3)  # type: ignore[attr-defined]
    label = h.from_addr or "*"
    if h.reply == "rst":
        label = f"RST ttl {h.rst_ttl}\n{label}"
    ax.annotate(label, (h.ttl, y - 0.28), ha="center", va="top", fontsize=7,  # type: ignore[attr-defined]
                color=color, annotation_clip=False)
