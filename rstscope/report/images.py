"""Render figures as size-capped ``data:`` URIs for a self-contained HTML file.

Images are always embedded as ``<img src="data:...;base64,...">``, SVG too:
an SVG inside ``<img>`` cannot run scripts or fetch anything, and its text
(addresses from the capture) needs no HTML escaping there.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from rstscope.errors import UsageError

IMAGE_FORMATS = ("png", "svg")


def render_data_uri(
    draw: Callable[[Any], None],
    *,
    width_in: float,
    height_in: float,
    image_format: str = "png",
    dpi: int = 72,
    max_bytes: int = 200_000,
) -> tuple[str, int] | None:
    """Draw on a fresh figure and return ``(data URI, encoded size)``, or None if too big.

    ``draw`` receives a :class:`matplotlib.figure.Figure`.  PNGs that exceed
    ``max_bytes`` are retried at lower resolution (down to ~60 % of ``dpi``)
    before giving up; SVGs are not resampled, so they are dropped if too big.
    """
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
    # lazy: matplotlib loads only when something is drawn
    from rstscope.plot.backend import new_figure

    fig = new_figure(width_in, height_in)
    try:
        draw(fig)
        for scale in (1.0, 0.8, 0.6) if image_format == "png" else (1.0,):
            buf = io.BytesIO()
            fig.savefig(buf, format=image_format, dpi=max(int(dpi * scale), 30),
                        metadata=_no_metadata(image_format))
            data = base64.b64encode(buf.getvalue()).decode("ascii")
            mime = "image/png" if image_format == "png" else "image/svg+xml"
            uri = f"data:{mime};base64,{data}"
            if len(uri) <= max_bytes:
                return uri, len(uri)
        return None
    finally:
        fig.clear()


def _no_metadata(image_format: str) -> dict[str, Any]:
    # Keep output reproducible and free of the producing machine's details.
    if image_format == "svg":
        return {"Date": None, "Creator": None}
    return {"Software": None}
