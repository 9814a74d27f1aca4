"""The report's light drawing path draws what the plain path draws.

The report places its Axes without a layout engine (rstscope.plot.layout.fit_axes)
and draws every timeline into one recycled figure (recycle_axes).  Here every
committed sample's first reset is drawn both ways: into a fresh figure, and into
the report's figure right after a different flow (the mixed capture's) was drawn
into it; the PNGs must be byte-identical.  The fixed layout must also keep every
text inside the figure and free of overlaps, as tests/plot/test_no_overlap.py
asks of the constrained one; those boxes are measured under the report's own
matplotlib settings (report_rc: unhinted text, a little wider than hinted), as
the report draws them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from rstscope.api import analyze  # noqa: E402
from rstscope.plot.gaps import idle_gap_histogram  # noqa: E402
from rstscope.plot.overview import overview  # noqa: E402
from rstscope.plot.timeline import timeline  # noqa: E402
from rstscope.report.html import _Timelines  # noqa: E402
from rstscope.report.images import render_data_uri, report_rc  # noqa: E402
from tests.plot.test_no_overlap import _overlaps, _text_boxes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples").glob("*.client.pcap")) + sorted(
    (REPO / "samples").glob("*.server.pcap"))


def _outside(fig: object) -> list[str]:
    """Texts cut by the figure's edges.  Labels of ticks beyond the view limits are
    listed by matplotlib but never drawn; they lie wholly outside and are left out."""
    box = fig.bbox  # type: ignore[attr-defined]
    return [name for name, b in _text_boxes(fig)
            if box.x0 <= (b.x0 + b.x1) / 2 <= box.x1 and box.y0 <= (b.y0 + b.y1) / 2 <= box.y1
            and (b.x0 < box.x0 - 1 or b.y0 < box.y0 - 1 or b.x1 > box.x1 + 1 or b.y1 > box.y1 + 1)]


def _target(a: object) -> object:
    records = a.reset_records()  # type: ignore[attr-defined]
    flows = a.flow_records()  # type: ignore[attr-defined]
    if not records and not flows:
        pytest.skip("no TCP flow in this capture")
    return records[0] if records else flows[0]["flow_id"]


@pytest.mark.parametrize("cap", SAMPLES, ids=[c.stem for c in SAMPLES])
def test_recycled_figure_renders_the_pixels_of_a_fresh_one(cap: Path, report_analysis) -> None:
    a = analyze(cap)
    target = _target(a)
    fresh: dict[str, object] = {}

    def draw_fresh(fig: object) -> None:
        lanes, ttl = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)  # type: ignore[attr-defined]
        timeline(a, target, lanes, ttl_ax=ttl)
        fresh["fig"] = fig

    kw = {"width_in": _Timelines.WIDTH_IN, "height_in": _Timelines.HEIGHT_IN,
          "fixed_layout": True, "max_bytes": 10**7}
    want = render_data_uri(draw_fresh, **kw)  # type: ignore[arg-type]
    assert want is not None
    fig = fresh["fig"]
    with report_rc():
        assert not _overlaps(fig), _overlaps(fig)
        assert not _outside(fig), _outside(fig)

    # Something else first: another capture's reset, with other labels and limits.
    reused = _Timelines()
    other = report_analysis.reset_records()[-1]

    def draw_other(_fig: object) -> None:
        lanes, ttl = reused.axes()
        timeline(report_analysis, other, lanes, ttl_ax=ttl)

    def draw_again(_fig: object) -> None:
        lanes, ttl = reused.axes()
        timeline(a, target, lanes, ttl_ax=ttl)

    assert render_data_uri(draw_other, figure=reused.figure(), **kw) is not None  # type: ignore[arg-type]
    got = render_data_uri(draw_again, figure=reused.figure(), **kw)  # type: ignore[arg-type]
    assert got == want


def test_overview_and_histogram_fit_without_a_layout_engine(report_analysis) -> None:
    figs: list[object] = []

    def keep(draw):  # type: ignore[no-untyped-def]
        def inner(fig: object) -> None:
            draw(fig.subplots())  # type: ignore[attr-defined]
            figs.append(fig)
        return inner

    for draw, height in ((lambda ax: overview(report_analysis, ax), 5.0),
                         (lambda ax: idle_gap_histogram(report_analysis, ax), 3.6)):
        assert render_data_uri(keep(draw), width_in=10.5, height_in=height, fixed_layout=True,
                               max_bytes=10**7) is not None
    for fig in figs:
        with report_rc():
            assert not _overlaps(fig), _overlaps(fig)
            assert not _outside(fig), _outside(fig)
