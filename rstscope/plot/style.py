"""Shared look of rstscope figures: origin colours, lane colours, duration text.

Kept free of matplotlib imports so that the report and the CLI can format
text without loading a plotting backend.
"""

from __future__ import annotations

import re
import textwrap
from typing import Final

from rstscope.core.vocab import Origin

# Colour-blind-safe (Okabe-Ito) colours, one per verdict origin; the same
# origin has the same colour in every figure and in the HTML report.  Firewall
# (vermillion) and load balancer (reddish purple) differ in hue and lightness,
# not only in shade of orange, so they stay apart for every colour vision.
_COLOR_OF: Final[dict[Origin, str]] = {
    Origin.CLIENT: "#0072B2",
    Origin.SERVER: "#009E73",
    Origin.LOAD_BALANCER: "#CC79A7",
    Origin.FIREWALL: "#D55E00",
    Origin.UNKNOWN: "#7F7F7F",
}
# Keyed by the plain strings the records carry; every Origin has a colour (checked
# here, so a new origin cannot be drawn as "unknown" by accident).
ORIGIN_COLORS: Final[dict[str, str]] = {o.value: _COLOR_OF[o] for o in Origin}
LANE_COLORS: Final[dict[str, str]] = {"orig": "#3B6FB6", "resp": "#4A9D5B"}
GAP_COLOR: Final = "#DDDDDD"
TIMEOUT_COLOR: Final = "#332288"  # dark indigo: apart from every origin colour


def origin_color(origin: object) -> str:
    """Colour of a verdict origin; anything unexpected is drawn as ``unknown``."""
    return ORIGIN_COLORS.get(str(origin), ORIGIN_COLORS["unknown"])


def fmt_duration(seconds: float) -> str:
    """Human duration: ``850 ms``, ``12.3 s``, ``5 min 12 s``, ``3 h 12 min``."""
    s = float(seconds)
    if s < 0:
        return "-" + fmt_duration(-s)
    if s < 1.0:
        return f"{s * 1000:.0f} ms"
    if s < 60.0:
        return f"{s:.3g} s" if s < 10 else f"{s:.1f} s"
    if s < 3600.0:
        m, rest = divmod(round(s), 60)
        return f"{m} min {rest} s" if rest else f"{m} min"
    h, rest = divmod(round(s), 3600)
    m = rest // 60
    return f"{h} h {m} min" if m else f"{h} h"


def legend_text(text: str, width: int = 30) -> str:
    """A legend entry kept narrow (wrapped, the catalog's explanations dropped), so
    the plot keeps its width beside the key."""
    text = re.sub(r" \([^()]*\)", "", text)
    return "\n".join(textwrap.wrap(text, width, subsequent_indent="  ",
                                   break_on_hyphens=False, break_long_words=False)) or text
