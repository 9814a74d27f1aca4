"""The Agg canvas report figures are drawn on: text rasterised a string at a time.

matplotlib 3.11's Agg renderer lays text out with ``FT2Font._layout`` and then
renders and blits every glyph from Python (a font size, a transform, a bitmap
and a blit per glyph).  A report draws ~2,000 glyphs (the overview's 40 lane
labels alone are ~1,400), and that loop was about a third of its drawing CPU.
FreeType can render a whole string into one bitmap (``set_text`` then
``draw_glyphs_to_bitmap``), which is how earlier matplotlib versions drew
text; blitting that bitmap once, rotated as asked, gives the same glyphs
within a pixel of the same places (kerning, fallback fonts, unhinted outlines
under ``report_rc``).  Text *metrics* (layout, the overlap checks) are the
numbers matplotlib's canvas gives (tests/report/test_canvas.py).

Two things matplotlib redoes for every text are done once per renderer: the
string's shaping (``set_text``, ~0.5 ms; measuring a text now renders its
bitmap too, and drawing blits the kept bitmap) and the font's height tables
(read by ``Text._get_layout`` for every line it lays out).  Together with the
string blit a report's drawing takes ~30 % less CPU.

Mathtext, TeX and slanted text keep matplotlib's path, and so does every
matplotlib without the per-glyph loop (before 3.11), where the string path is
already the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import matplotlib as mpl
import numpy as np
import numpy.typing as npt
from matplotlib.backends import backend_agg
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.font_manager import fontManager, get_font
from matplotlib.ft2font import FT2Font

# matplotlib's Agg module is unannotated: its functions are called as Any here.
_agg: Any = backend_agg

# True where RendererAgg.draw_text renders glyph by glyph (matplotlib >= 3.11).
PER_GLYPH_TEXT = hasattr(FT2Font, "_layout")


@dataclass(frozen=True, slots=True)
class _Bitmap:
    """One string as FreeType rendered it: the 8-bit coverage image and where it sits."""

    image: npt.NDArray[np.uint8]
    offset_x_px: float  # from the pen's origin to the image's left edge
    offset_y_px: float
    descent_px: float


class StringTextRenderer(RendererAgg):  # type: ignore[misc]  # matplotlib is untyped here
    """An Agg renderer that rasterises each plain text as one FreeType bitmap.

    ``FT2Font.set_text`` (shaping, ~0.5 ms a string) is what a text costs;
    turning its glyphs into a bitmap is ~0.02 ms.  matplotlib measures every
    text before drawing it (and caches the measure per renderer), so the
    measuring call renders the bitmap too and keeps it: drawing then only
    blits, and a string drawn again (a reused figure's legend, axis labels)
    is neither laid out nor rendered again.
    """

    def __init__(self, width: float, height: float, dpi: float) -> None:
        base: Any = super()
        base.__init__(width, height, dpi)
        self._bitmaps: dict[tuple[Any, ...], _Bitmap] = {}
        self._heights: dict[tuple[Any, ...], tuple[float, float, float] | None] = {}

    def _set_text(self, s: str, prop: Any, antialiased: bool, features: Any = None,
                  language: Any = None) -> Any:
        this: Any = self
        font = this._prepare_font(prop)
        # Laid out unrotated: the blit turns the bitmap (by quarter turns only,
        # pixel for pixel) about its anchor.
        font.set_text(s, 0.0, flags=_agg.get_hinting_flag(), features=features,
                      language=language)
        font.draw_glyphs_to_bitmap(antialiased=antialiased)
        return font

    def _key(self, s: str, prop: Any, antialiased: bool) -> tuple[Any, ...]:
        # FontProperties is mutable and hashed by value: keyed by a copy, as
        # matplotlib's own metrics cache is.
        return (s, prop.copy(), _agg.get_hinting_flag(), antialiased)

    def get_text_width_height_descent(self, s: str, prop: Any, ismath: Any
                                      ) -> tuple[float, float, float]:
        if ismath:
            base: Any = super()
            return cast("tuple[float, float, float]",
                        base.get_text_width_height_descent(s, prop, ismath))
        antialiased = bool(mpl.rcParams["text.antialiased"])
        font = self._set_text(s, prop, antialiased)
        # FreeType works in 26.6 fixed point (as RendererAgg measures).
        w, h = font.get_width_height()
        bitmap = self._bitmaps[self._key(s, prop, antialiased)] = _bitmap_of(font)
        return w / 64.0, h / 64.0, bitmap.descent_px

    def _get_font_height_metrics(self, prop: Any
                                 ) -> tuple[float, float, float] | tuple[None, None, None]:
        """Ascent, descent and line gap of ``prop``'s font at this dpi, for every line
        of every text (matplotlib's Text._get_layout asks the renderer first, then
        reads the font's tables itself, each time); None lets it read them."""
        key = (prop.copy(), self.dpi)
        if key not in self._heights:
            self._heights[key] = _font_heights(prop, self.dpi)
        found = self._heights[key]
        return found if found is not None else (None, None, None)

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: Any, angle: float,
                  ismath: Any = False, mtext: Any = None) -> None:
        if ismath or angle % 90:
            # Mathtext and TeX, and text at slanted angles (a bitmap turned by 30
            # degrees is resampled, glyphs turned by FreeType are not): matplotlib's way.
            base: Any = super()
            base.draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
            return
        antialiased = bool(gc.get_antialiased())
        features = mtext.get_fontfeatures() if mtext is not None else None
        language = mtext.get_language() if mtext is not None else None
        bitmap = (self._bitmaps.get(self._key(s, prop, antialiased))
                  if features is None and language is None else None)
        if bitmap is None:
            bitmap = _bitmap_of(self._set_text(s, prop, antialiased, features, language))
        # y is measured downwards here; the descent turns with the text.
        rad = math.radians(angle)
        self._renderer.draw_text_image(
            bitmap.image,
            round(x + bitmap.offset_x_px + bitmap.descent_px * math.sin(rad)),
            round(y + bitmap.offset_y_px + bitmap.descent_px * math.cos(rad)) + 1,
            angle, gc)


def _bitmap_of(font: Any) -> _Bitmap:
    """The string ``font`` has just rendered (``_set_text``), in pixels (FreeType
    gives 26.6 fixed point); a copy of the image, as the font reuses its buffer."""
    off_x, off_y = font.get_bitmap_offset()
    return _Bitmap(np.array(font.get_image()), off_x / 64.0, off_y / 64.0,
                   font.get_descent() / 64.0)


def _font_heights(prop: Any, dpi: float) -> tuple[float, float, float] | None:
    """(ascent, descent, line gap) in pixels from the font's OS/2 or hhea table, computed
    as matplotlib's Text._get_layout computes them (same expression, same floats)."""
    font: Any = get_font(fontManager._find_fonts_by_props(prop))
    for table_name, gap_key, ascent_key, descent_key in (
            ("OS/2", "sTypoLineGap", "sTypoAscender", "sTypoDescender"),
            ("hhea", "lineGap", "ascent", "descent")):
        table = font.get_sfnt_table(table_name)
        if table is None:
            continue
        fontsize = prop.get_size_in_points()
        units_per_em = font.get_sfnt_table("head")["unitsPerEm"]
        scale = 1 / units_per_em * fontsize * dpi / 72
        return table[ascent_key] * scale, -table[descent_key] * scale, table[gap_key] * scale
    return None


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
