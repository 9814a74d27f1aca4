"""The Agg canvas report figures are drawn on: text rasterised a string at a time.

matplotlib 3.11's Agg renderer lays text out with ``FT2Font._layout`` and then
renders and blits every glyph from Python (a font size, a transform, a bitmap
and a blit per glyph).  A report draws ~2,000 glyphs (the overview's 40 lane
labels alone are ~1,400), and that loop was about a third of its drawing CPU.
FreeType can render a whole string into one bitmap (``set_text`` then
``draw_glyphs_to_bitmap``), which is how earlier matplotlib versions drew
text; blitting that bitmap once, rotated as asked, gives the same glyphs at
the same places (kerning, fallback fonts, unhinted outlines under
``report_rc``) for ~15 % less CPU per report.  Text *metrics* (layout,
overlap checks) are matplotlib's own and unchanged: only the blitting differs.

Mathtext, TeX and slanted text keep matplotlib's path, and so does every
matplotlib without the per-glyph loop (before 3.11), where the string path is
already the default.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.backends import backend_agg
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.ft2font import FT2Font

# matplotlib's Agg module is unannotated: its functions are called as Any here.
_agg: Any = backend_agg

# True where RendererAgg.draw_text renders glyph by glyph (matplotlib >= 3.11).
PER_GLYPH_TEXT = hasattr(FT2Font, "_layout")


class StringTextRenderer(RendererAgg):  # type: ignore[misc]  # matplotlib is untyped here
    """An Agg renderer that rasterises each plain text as one FreeType bitmap."""

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
                  ismath: Any = False, mtext: Any = None) -> None:
        if ismath or angle % 90:
            # Mathtext and TeX, and text at slanted angles (a bitmap turned by 30
            # degrees is resampled, glyphs turned by FreeType are not): matplotlib's way.
            base: Any = super()
            base.draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
            return
        this: Any = self
        font = this._prepare_font(prop)
        # Laid out unrotated: the blit below turns the bitmap (by a quarter turn at
        # most, pixel for pixel) about its anchor.
        font.set_text(s, 0.0, flags=_agg.get_hinting_flag(),
                      features=mtext.get_fontfeatures() if mtext is not None else None,
                      language=mtext.get_language() if mtext is not None else None)
        font.draw_glyphs_to_bitmap(antialiased=gc.get_antialiased())
        # FreeType works in 26.6 fixed point; y is measured downwards here.
        descent_px = font.get_descent() / 64.0
        off_x_px, off_y_px = (v / 64.0 for v in font.get_bitmap_offset())
        rad = math.radians(angle)
        self._renderer.draw_text_image(
            font.get_image(),
            round(x + off_x_px + descent_px * math.sin(rad)),
            round(y + off_y_px + descent_px * math.cos(rad)) + 1,
            angle, gc)


class ReportCanvas(FigureCanvasAgg):  # type: ignore[misc]  # matplotlib is untyped here
    """FigureCanvasAgg drawing with :class:`StringTextRenderer` (where it helps)."""

    _report_key: tuple[float, float, float] | None = None

    def get_renderer(self) -> Any:
        if not PER_GLYPH_TEXT:
            base: Any = super()
            return base.get_renderer()
        # As FigureCanvasAgg: one renderer while size and dpi stay (its text metrics
        # cache lives as long as it does).
        w, h = self.get_width_height(physical=True)
        key = (w, h, self.figure.dpi)
        if self._report_key != key:
            renderer: Any = StringTextRenderer
            self.renderer = renderer(w, h, self.figure.dpi)
            self._report_key = key
        return self.renderer


def report_canvas(fig: Any) -> Any:
    """``fig``'s report canvas, attached on first use and kept (a reused figure keeps
    its renderer, and with it the metrics of every text measured before)."""
    canvas = fig.canvas
    return canvas if isinstance(canvas, ReportCanvas) else ReportCanvas(fig)
