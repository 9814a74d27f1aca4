"""The packets of the flows a report draws, by flow id (the streaming re-read
itself is the analysis's one packet provider, rstscope.flowpackets)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.results import RecordSource


def select_flow_packets(records: RecordSource, flow_ids: Iterable[str]) -> pd.DataFrame:
    """Packets (the ``Analysis.packets`` columns) of the flows with these ids.

    Raises:
        ValueError: the analysis' source cannot be re-read (stdin, a stream).
    """
    wanted = {str(f) for f in flow_ids}
    flows = [f for f in records.typed_flows() if str(f.flow_id) in wanted]
    return records.flow_packets.of_flows(flows)
