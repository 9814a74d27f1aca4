"""Load matplotlib lazily, on a non-interactive backend when there is no display.

rstscope never calls ``plt.show()``; figures are returned (notebooks display
them) or saved (CLI, report).  Importing :mod:`rstscope.plot` does not import
matplotlib: only drawing does, so the CLI starts fast.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

from rstscope.errors import require


def pyplot() -> Any:
    """``matplotlib.pyplot``, selecting Agg first when no display is available."""
    mpl: Any = require("matplotlib", extra="plot")
    if "matplotlib.pyplot" not in sys.modules and not _has_display():
        # Only choose a backend before pyplot is loaded; a notebook's inline
        # backend (or a user's explicit choice) must stay untouched.
        mpl.use("Agg")
    # lazy: matplotlib loads only when something is drawn
    import matplotlib.pyplot as plt

    return plt


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    if "ipykernel" in sys.modules:
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def new_figure(width_in: float, height_in: float, *,
               layout: Literal["constrained"] | None = "constrained") -> Any:
    """A figure not registered with pyplot's state machine, so batch rendering
    (reports with many sections) never accumulates open figures.

    ``layout=None`` leaves the Axes where they are put: the report places them
    with :func:`rstscope.plot.layout.fit_axes`, which measures far less.
    """
    require("matplotlib", extra="plot")
    # lazy: matplotlib loads only when something is drawn
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout=layout)
