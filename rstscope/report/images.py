"""Render figures as size-capped ``data:`` URIs for a self-contained HTML file.

Images are always embedded as ``<img src="data:...;base64,...">``, SVG too:
an SVG inside ``<img>`` cannot run scripts or fetch anything, and its text
(addresses from the capture) needs no HTML escaping there.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

from rstscope.errors import UsageError
from rstscope.plot.layout import can_fit, fit_axes

IMAGE_FORMATS = ("png", "svg")
# The report's figures render text without the fonts' hinting.  With matplotlib
# 3.11's text layout, FreeType's hinting (DejaVu's bytecode) is most of each
# text's cost: a report timeline takes ~20-30 % less CPU and the 40-lane
# overview ~30 % less; glyphs come out a little softer, no less legible at
# 72 dpi.  Only inside render_data_uri: `rstscope plot` and notebooks keep
# the user's settings.
REPORT_RC: dict[str, object] = {"text.hinting": "no_hinting"}
# zlib level of the embedded PNGs.  Levels 1-3 use zlib's fast matcher: on the
# report's figures (flat colours, long runs) level 3 came out ~7 % *smaller*
# than Pillow's default 6 and took about half its time (~25 ms less per report).
PNG_COMPRESS_LEVEL = 3


@contextlib.contextmanager
def report_rc() -> Iterator[None]:
    """matplotlib settings under which report figures are laid out and drawn."""
    # lazy: matplotlib loads only when something is drawn
    import matplotlib as mpl

    rc: Any = REPORT_RC  # matplotlib's stubs key rc_context by Literal names
    with mpl.rc_context(rc):
        yield


def render_data_uri(
    draw: Callable[[Any], None],
    *,
    width_in: float,
    height_in: float,
    image_format: str = "png",
    dpi: int = 72,
    max_bytes: int = 200_000,
    fixed_layout: bool = False,
    figure: Any | None = None,
) -> tuple[str, int] | None:
    """Draw on a fresh figure and return ``(data URI, encoded size)``, or None if too big.

    ``draw`` receives a :class:`matplotlib.figure.Figure`, drawn once.  With
    ``fixed_layout`` the figure has no layout engine and its Axes (one column
    of ``Figure.subplots``) are placed once by :func:`rstscope.plot.layout.fit_axes`
    before drawing; any other arrangement falls back to constrained layout.
    ``figure``, when given, is drawn on instead of a fresh one (``draw`` then
    empties or reuses its Axes) and kept.  Everything happens under
    :func:`report_rc` (unhinted text).  PNGs
    that exceed ``max_bytes`` are reduced from the same pixels (a palette,
    then down to 60 % of the size, see :func:`_png_within`) before giving up;
    SVGs are not resampled, so they are dropped if too big.
    """
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
    # lazy: matplotlib loads only when something is drawn
    from rstscope.plot.backend import new_figure

    fig = figure if figure is not None else new_figure(
        width_in, height_in, layout=None if fixed_layout else "constrained")
    mime = "image/png" if image_format == "png" else "image/svg+xml"
    try:
        with report_rc():
            draw(fig)
            if fixed_layout:
                _fit(fig, dpi)
            if image_format == "png":
                encoded = _png_within(fig, dpi, max_bytes)
                if encoded is None:
                    return None
            else:
                buf = io.BytesIO()
                fig.savefig(buf, format=image_format, dpi=dpi, metadata=_no_metadata(image_format))
                encoded = buf.getvalue()
        uri = f"data:{mime};base64,{base64.b64encode(encoded).decode('ascii')}"
        if len(uri) <= max_bytes:
            return uri, len(uri)
        return None
    finally:
        # No fig.clear(): the figure is dropped here and the garbage collector frees
        # it; clearing it first walked every artist again (~15 ms per figure).
        del fig


def _fit(fig: Any, dpi: int) -> None:
    """Place the Axes for drawing at ``dpi`` without a layout engine (see plot.layout)."""
    # lazy: matplotlib loads only when something is drawn
    from rstscope.report.canvas import report_canvas

    if not can_fit(fig):
        fig.set_layout_engine("constrained")
        return
    # A reused figure keeps its canvas: its renderer caches the metrics of every
    # text measured before (legend entries, tick labels recur from figure to figure).
    canvas = report_canvas(fig)
    fig.set_dpi(dpi)
    fit_axes(fig, canvas.get_renderer())


def _png_within(fig: Any, dpi: int, max_bytes: int) -> bytes | None:
    """The figure as PNG whose base64 fits ``max_bytes``, rasterised once.

    Drawing (layout, artists) is what costs; a PNG that comes out too big
    is not drawn again at a lower resolution but reduced from the same
    pixels: first to a 256-colour palette (plots have few colours, so
    nothing visible is lost), then scaled to 80 % and 60 %.
    """
    # lazy: Pillow, and matplotlib (the report canvas)
    from PIL import Image

    # lazy: the report canvas imports matplotlib's Agg backend
    from rstscope.report.canvas import report_canvas

    # The canvas (and its renderer) that placed the Axes, if any, draws too.
    canvas = report_canvas(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    rgb = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw",
                           "RGBA", 0, 1).convert("RGB")

    def candidates() -> Iterator[Any]:
        # Made one at a time: most figures fit as they are, and a palette or a
        # resample of a figure that already fits would be thrown away (the
        # eager list cost ~40 ms per figure, a tenth of a report).
        yield rgb
        yield rgb.quantize(colors=256)
        for scale in (0.8, 0.6):
            size = (max(int(rgb.width * scale), 1), max(int(rgb.height * scale), 1))
            yield rgb.resize(size, Image.Resampling.LANCZOS).quantize(colors=256)

    for im in candidates():
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
        if len("data:image/png;base64,") + 4 * ((buf.tell() + 2) // 3) <= max_bytes:
            return buf.getvalue()
    return None


def _no_metadata(image_format: str) -> dict[str, Any]:
    # Keep output reproducible and free of the producing machine's details.
    if image_format == "svg":
        return {"Date": None, "Creator": None}
    return {"Software": None}
