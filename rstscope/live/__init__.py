"""Live capture: ``rstscope capture`` (files) and ``rstscope watch`` (verdicts as RSTs happen).

Library use::

    from rstscope.live import LiveOptions, LiveSession
    result = LiveSession(LiveOptions(iface="eth0", out="cap.pcapng", count=1000)).run()
"""

from rstscope.live.capture import CaptureCounters, LiveSource
from rstscope.live.privileges import check_capture_privilege, drop_privileges, target_identity
from rstscope.live.watch import LiveOptions, LiveResult, LiveSession
from rstscope.live.writer import Interface, RotatingWriter, RotationPolicy, Written, parse_size

__all__ = [
    "CaptureCounters",
    "Interface",
    "LiveOptions",
    "LiveResult",
    "LiveSession",
    "LiveSource",
    "RotatingWriter",
    "RotationPolicy",
    "Written",
    "check_capture_privilege",
    "drop_privileges",
    "parse_size",
    "target_identity",
]
