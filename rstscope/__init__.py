"""rstscope: packet-level TCP RST forensics.

Public API (see docs/api.md)::

    import rstscope as rs
    a = rs.analyze("capture.pcapng")
    a.resets          # one row per RST, with origin, confidence, cause, evidence, advice
    a.flows           # one row per connection, Zeek conn.log vocabulary
    df = rs.read_packets("capture.pcap")   # per-packet header fields
"""

from __future__ import annotations

from rstscope.errors import RstscopeError
from rstscope.schema import PACKET_COLUMNS, PACKET_DTYPE, SCHEMA_VERSION

__version__ = "0.1.0"

__all__ = [
    "PACKET_COLUMNS",
    "PACKET_DTYPE",
    "SCHEMA_VERSION",
    "RstscopeError",
    "__version__",
]
