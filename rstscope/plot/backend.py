"""Load matplotlib lazily, on a non-interactive backend when there is no display.

rstscope never calls ``plt.show()``; figures are returned (notebooks display
them) or saved (CLI, report).  Importing :mod:`rstscope.plot` does not import
matplotlib: only drawing does, so the CLI starts fast.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
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


@contextlib.contextmanager
def without_artist_docstrings() -> Iterator[None]:
    """For a command that only writes figures to files (``rstscope report``, ``plot``):
    matplotlib classes defined meanwhile get no property table in their docstrings.

    As matplotlib defines each Artist class it writes the class's settable
    properties, parsed from every setter's docstring, into the docstring of its
    ``set()`` (``matplotlib.artist.kwdoc``); that is ~0.1 s of the ~0.3 s
    ``import matplotlib.figure`` takes, for text nobody reads in a process
    that draws a few PNGs and exits.  Inside this block the tables are empty;
    signatures, behaviour and drawing are untouched.  Nothing changes when
    matplotlib's figure module is already loaded (a notebook, a test session)
    or when this matplotlib has no ``kwdoc``.
    """
    if "matplotlib.figure" in sys.modules:
        yield
        return
    try:
        # lazy: matplotlib loads only when something is drawn; this is that command
        import matplotlib.artist as artist
    except ImportError:
        yield
        return
    kwdoc = getattr(artist, "kwdoc", None)
    if kwdoc is None:
        yield
        return
    artist.kwdoc = _no_property_table
    try:
        yield
    finally:
        artist.kwdoc = kwdoc


def _no_property_table(*_args: object, **_kwargs: object) -> str:
    return ""
