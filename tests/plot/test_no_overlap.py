"""Every sample's timeline is readable: no two pieces of text overlap.

Renders the flow of the first reset of every committed sample (as `rstscope plot`
does) and asks matplotlib for the drawn bounding box of every text: titles, axis
and tick labels, gap and RST labels, the legend.  Two boxes that intersect fail
the test, naming both texts.  The idle-gap histogram is checked the same way.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from rstscope.api import analyze  # noqa: E402
from rstscope.plot.backend import new_figure  # noqa: E402
from rstscope.plot.gaps import idle_gap_histogram  # noqa: E402
from rstscope.plot.timeline import timeline  # noqa: E402
from rstscope.report.html import _Timelines  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples").glob("*.client.pcap")) + sorted(
    (REPO / "samples").glob("*.server.pcap"))


def _text_boxes(fig: object) -> list[tuple[str, object]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # what savefig to PNG uses
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = []
    for ax in fig.axes:  # type: ignore[attr-defined]
        texts = [*ax.texts, ax.title, ax.xaxis.label, ax.yaxis.label,
                 *[t for t in ax.get_xticklabels() if t.get_visible()],
                 *[t for t in ax.get_yticklabels() if t.get_visible()]]
        for t in texts:
            if t.get_text().strip() and t.get_visible():
                boxes.append((f"{t.get_gid() or type(t).__name__}: {t.get_text()!r}",
                              t.get_window_extent(renderer)))
        leg = ax.get_legend()
        if leg is not None:
            boxes.append(("legend", leg.get_window_extent(renderer)))
    return boxes


def _overlaps(fig: object) -> list[str]:
    out = []
    for (a, ba), (b, bb) in combinations(_text_boxes(fig), 2):
        if ba.width and bb.width and ba.overlaps(bb):
            inter_w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            inter_h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if inter_w > 1 and inter_h > 1:  # more than a pixel of real overlap
                out.append(f"{a} overlaps {b}")
    return out


# The plot command's size, and the HTML report's (narrower, so labels collide sooner).
SIZES_IN = ((11.0, 5.5), (_Timelines.WIDTH_IN, _Timelines.HEIGHT_IN))


@pytest.mark.parametrize("size_in", SIZES_IN, ids=[f"{w:g}x{h:g}in" for w, h in SIZES_IN])
@pytest.mark.parametrize("cap", SAMPLES, ids=[c.stem for c in SAMPLES])
def test_timeline_text_never_overlaps(cap: Path, size_in: tuple[float, float]) -> None:
    a = analyze(cap)
    records = a.reset_records()
    # A capture without resets (a graceful close) still gets its first flow drawn.
    flows = a.flow_records()
    if not records and not flows:
        pytest.skip("no TCP flow in this capture (the server never saw the connection)")
    target = records[0] if records else flows[0]["flow_id"]
    fig = new_figure(*size_in)
    lanes, ttl = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    timeline(a, target, lanes, ttl_ax=ttl)
    assert not _overlaps(fig), _overlaps(fig)


def test_histogram_counts_are_integers_and_text_never_overlaps() -> None:
    a = analyze(REPO / "samples" / "dpi-inject-storm.client.pcap")
    fig = new_figure(8, 4)
    ax = fig.subplots()
    idle_gap_histogram(a, ax=ax)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert not _overlaps(fig), _overlaps(fig)
