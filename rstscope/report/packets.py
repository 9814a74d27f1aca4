"""The packets of the flows a report draws, by flow id (the streaming re-read
itself is the analysis's one packet provider, rstscope.flowpackets)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rstscope.results import ids_matching

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from rstscope.results import RecordSource


def select_flow_packets(records: RecordSource, flow_ids: Iterable[str]
                        ) -> npt.NDArray[Any] | pd.DataFrame:
    """Packets of the flows with these ids: packed ``PACKET_DTYPE`` rows re-read from
    the source (no pandas on the report's path), or the analysis' packet frame when
    the source cannot be read again but a notebook already loaded its packets.

    Raises:
        ValueError: the packets can neither be re-read (stdin, a stream) nor were loaded.
    """
    flows = list(records.flows_by_id(ids_matching({str(f) for f in flow_ids})))
    try:
        return records.flow_packets.rows_of_flows(flows)
    except ValueError:
        return records.flow_packets.of_flows(flows)  # the loaded frame, or ValueError
