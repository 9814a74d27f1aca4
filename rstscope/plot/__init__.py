"""Timelines and overviews of flows and resets (matplotlib, loaded lazily).

Every function takes ``ax=`` and returns the Axes it drew into; none calls
``plt.show()``.  Importing this package does not import matplotlib.
"""

from __future__ import annotations

from rstscope.plot.gaps import IdleGap, find_idle_gaps, idle_gap_histogram
from rstscope.plot.overview import overview
from rstscope.plot.select import packets_of_flow, resets_of_flow
from rstscope.plot.timeline import time_axis_of, timeline

__all__ = [
    "IdleGap",
    "find_idle_gaps",
    "idle_gap_histogram",
    "overview",
    "packets_of_flow",
    "resets_of_flow",
    "time_axis_of",
    "timeline",
]
