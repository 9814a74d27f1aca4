"""rstscope.core: the pure (sans-IO) flow tracker and RST classifier.

Feed PACKET_DTYPE batches, get events::

    tr = Tracker(TrackerConfig(timeouts=rstscope.catalog.load_timeouts()))
    for batch in batches:
        for ev in tr.feed(batch): ...
    tr.finish(); tr.flows(); tr.resets()

No file or socket I/O, no clock reads, numpy and stdlib only.
"""

from __future__ import annotations

from rstscope.core.config import TimeoutEntry, TrackerConfig
from rstscope.core.events import Event, FlowEvicted, FlowOpened, IdleWarning, ResetVerdict
from rstscope.core.records import Evidence, FlowRecord, ResetRecord
from rstscope.core.tracker import Tracker, TrackerStats

__all__ = [
    "Event",
    "Evidence",
    "FlowEvicted",
    "FlowOpened",
    "FlowRecord",
    "IdleWarning",
    "ResetRecord",
    "ResetVerdict",
    "TimeoutEntry",
    "Tracker",
    "TrackerConfig",
    "TrackerStats",
]
