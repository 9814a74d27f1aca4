"""rstscope: packet-level TCP RST forensics.

Public API (see docs/api.md)::

    import rstscope as rs
    a = rs.analyze("capture.pcapng")
    a.resets          # one row per RST, with origin, confidence, cause, evidence, advice
    a.flows           # one row per connection, Zeek conn.log vocabulary
    df = rs.read_packets("capture.pcap")   # per-packet header fields

Names are loaded lazily, so importing ``rstscope.core`` (the pure analysis core)
does not drag in pandas, and the CLI starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "PACKET_COLUMNS",
    "PACKET_DTYPE",
    "SCHEMA_VERSION",
    "Analysis",
    "RstscopeError",
    "__version__",
    "analyze",
    "open_capture",
    "read_packets",
]

_LAZY = {
    "analyze": ("rstscope.api", "analyze"),
    "Analysis": ("rstscope.api", "Analysis"),
    "read_packets": ("rstscope.ingest", "read_packets"),
    "open_capture": ("rstscope.ingest", "open_capture"),
    "RstscopeError": ("rstscope.errors", "RstscopeError"),
    "PACKET_COLUMNS": ("rstscope.schema", "PACKET_COLUMNS"),
    "PACKET_DTYPE": ("rstscope.schema", "PACKET_DTYPE"),
    "SCHEMA_VERSION": ("rstscope.schema", "SCHEMA_VERSION"),
}

if TYPE_CHECKING:
    from rstscope.api import Analysis, analyze
    from rstscope.errors import RstscopeError
    from rstscope.ingest import open_capture, read_packets
    from rstscope.schema import PACKET_COLUMNS, PACKET_DTYPE, SCHEMA_VERSION


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        if module_name == "rstscope.api":
            # lazy: pandas, registered on first use
            import rstscope.accessor  # noqa: F401  (registers the .rst DataFrame accessor)
        value = getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rstscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
