"""Both timelines of a joined connection, one above the other (plot and report)."""

from __future__ import annotations

import html
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rstscope.errors import OutputError

if TYPE_CHECKING:
    from rstscope.join import JoinResult
from rstscope.join import PairStory


def draw_pair(fig: Any, j: JoinResult, story: PairStory) -> None:
    """Capture A's flow on top, B's below (each on its own time axis: the clock
    offset and the path delay are in the titles and the story)."""
    from rstscope.plot.timeline import timeline  # lazy: matplotlib

    top, bottom = fig.subplots(2, 1)
    timeline(j.a, story.a_flow, top, ttl_track=False, axis="linear")
    timeline(j.b, story.b_flow, bottom, ttl_track=False, axis="linear")
    # One time scale for both (each axis counts from its own flow's first packet).
    lo = min(top.get_xlim()[0], bottom.get_xlim()[0])
    hi = max(top.get_xlim()[1], bottom.get_xlim()[1])
    for ax, label in ((top, f"A {Path(j.a.file).name}"),
                      (bottom, f"B {Path(j.b.file).name} ({story.how}, clock offset "
                               f"{j.clock_offset_s:+.3f} s)")):
        ax.set_xlim(lo, hi)
        ax.set_title(f"{label}\n{ax.get_title()}", fontsize=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # layout engine switch notice
        fig.tight_layout()


def save_pair_plot(j: JoinResult, index: int, out: Path, dpi: int = 120) -> Path:
    from rstscope.plot.backend import new_figure  # lazy: matplotlib

    fig = new_figure(11, 7)
    draw_pair(fig, j, j.stories[index])
    try:
        fig.savefig(out, dpi=dpi)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write image ({exc.strerror})") from exc
    return out


def join_section(j: JoinResult, max_pairs: int = 20) -> str:
    """An HTML section: the joined story and, per pair, both timelines."""
    from rstscope.report.images import render_data_uri  # lazy: matplotlib

    parts = ["<section class='rstscope-join'><h2>Two captures of one incident</h2>",
             "<pre>" + html.escape("\n".join(j.lines())) + "</pre>"]
    for s in j.stories[:max_pairs]:
        def draw(fig: Any, s: PairStory = s) -> None:
            draw_pair(fig, j, s)

        img = render_data_uri(draw, width_in=11, height_in=7)
        title = f"A flow {s.a_flow} / B flow {s.b_flow}"
        if s.cause_id:
            title += f": {s.cause_id}"
        parts.append(f"<h3>{html.escape(title)}</h3>")
        if img is not None:
            parts.append(f"<img alt='{html.escape(title)}' src='{img[0]}'>")
    parts.append("</section>")
    return "".join(parts)


def write_join_report(j: JoinResult, out: Path, limits: Any = None) -> Path:
    """The ordinary report of both captures with the joined story on top
    (``limits``: a :class:`~rstscope.report.html.ReportLimits`)."""
    from rstscope.report import build_report  # lazy: matplotlib

    page = build_report([j.a, j.b], limits=limits)
    section = join_section(j)
    page = page.replace("<body>", "<body>" + section, 1) if "<body>" in page else section + page
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write report ({exc.strerror})") from exc
    return out
