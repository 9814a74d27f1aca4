"""The report's canvas draws text where matplotlib's own Agg canvas draws it.

rstscope.report.canvas rasterises each text as one FreeType bitmap instead of
glyph by glyph.  The same figure (tick labels, a rotated axis label, a
multi-line label, a boxed label, non-ASCII arrows, mathtext) is drawn both ways:
each text's box must hold the same ink, centred on the same point, give or
take the sub-pixel placement of its glyphs.
"""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from rstscope.report.canvas import ReportCanvas, report_canvas  # noqa: E402
from rstscope.report.images import report_rc  # noqa: E402


def _figure() -> Figure:
    fig = Figure(figsize=(6.0, 3.0), dpi=72, layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_yticks([0.2, 0.8], ["resp 203.0.113.3:443", "orig [2001:db8::1]:65166"])
    ax.set_ylabel("TTL")  # rotated 90 degrees
    ax.set_title("flow 8: 198.51.100.19:65166 \u2192 203.0.113.3:443  \u00b7  RSTR")
    ax.text(0.5, 0.5, "2 RSTs (#75799\u2026): firewall (88%)\nTTL 53 vs 43 (+10 hops)",
            ha="center", fontsize=8, color="#D55E00")
    ax.text(0.2, 0.3, "idle 1 min 45 s", fontsize=8, rotation=30,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "#999999", "lw": 0.5})
    ax.text(0.7, 0.15, r"$\Delta t = 5\,s$")
    return fig


def _ink(fig: Figure, canvas: FigureCanvasAgg) -> tuple[np.ndarray, list[tuple[str, object]]]:
    """Darkness per pixel (0 white .. 255 black) and every drawn text with its box."""
    with report_rc():
        canvas.draw()
        renderer = canvas.get_renderer()
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in fig.findobj(Text)
                 if t.get_visible() and t.get_text()]
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].astype(np.float64)
    return 255.0 - rgb.mean(axis=2), boxes


def _centroid(ink: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(ink.shape)
    total = float(ink.sum())
    return float((ys * ink).sum() / total), float((xs * ink).sum() / total)


def test_report_canvas_draws_text_on_the_same_pixels() -> None:
    fig_want, fig_got = _figure(), _figure()
    want, boxes = _ink(fig_want, FigureCanvasAgg(fig_want))
    got, _ = _ink(fig_got, report_canvas(fig_got))
    assert got.shape == want.shape
    height, width = want.shape
    assert len(boxes) >= 10
    for text, box in boxes:
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
            continue  # a tick label beyond the view, never drawn
        # Pixel rows count down from the top; display boxes count up from the bottom.
        rows = slice(max(int(height - box.y1) - 2, 0), int(height - box.y0) + 3)
        cols = slice(max(int(box.x0) - 2, 0), int(box.x1) + 3)
        a, b = want[rows, cols], got[rows, cols]
        if a.sum() == 0:
            continue  # clipped away, in both
        # The same ink (glyphs, not boxes of tofu or nothing) ...
        assert abs(b.sum() - a.sum()) <= 0.05 * a.sum(), text
        # ... in the same place: the per-glyph path places glyphs at sub-pixel
        # positions, the string path at whole pixels, so a text may move by less
        # than a pixel, never by one.
        (ya, xa), (yb, xb) = _centroid(a), _centroid(b)
        assert abs(ya - yb) < 1.0 and abs(xa - xb) < 1.0, (text, (ya, xa), (yb, xb))


def test_a_figure_keeps_its_report_canvas() -> None:
    fig = _figure()
    canvas = report_canvas(fig)
    assert isinstance(canvas, ReportCanvas)
    assert report_canvas(fig) is canvas
    assert canvas.get_renderer() is canvas.get_renderer()


def test_report_canvas_measures_texts_as_matplotlib_does() -> None:
    """Layout (the fit, the overlap checks) sees the very boxes matplotlib's canvas gives:
    the report renderer caches font heights and bitmaps, not different numbers."""
    fig_want, fig_got = _figure(), _figure()
    _, want = _ink(fig_want, FigureCanvasAgg(fig_want))
    _, got = _ink(fig_got, report_canvas(fig_got))
    assert [(t, tuple(b.bounds)) for t, b in got] == [(t, tuple(b.bounds)) for t, b in want]


def test_a_string_drawn_again_is_not_rendered_again() -> None:
    fig = _figure()
    canvas = report_canvas(fig)
    first = _ink(fig, canvas)[0]
    renderer = canvas.get_renderer()
    cached = dict(renderer._bitmaps)
    assert cached
    again = _ink(fig, canvas)[0]
    # Nothing new to render: the same entries, the same bitmaps.
    assert renderer._bitmaps.keys() == cached.keys()
    assert all(renderer._bitmaps[k] is v for k, v in cached.items())
    assert np.array_equal(first, again)
