"""The packets of the flows a report draws, by flow id (the streaming re-read
itself is rstscope.flowpackets, shared with the timeline)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rstscope.flowpackets import packets_of_flows
from rstscope.plot.select import flow_records

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.api import Analysis


def select_flow_packets(analysis: Analysis, flow_ids: Iterable[str]) -> pd.DataFrame:
    """Packets (the ``analysis.packets`` columns) of the flows with these ids.

    Raises:
        ValueError: the analysis' source cannot be re-read (stdin, a stream).
    """
    wanted = {str(f) for f in flow_ids}
    flows = [f for f in flow_records(analysis) if str(f["flow_id"]) in wanted]
    return packets_of_flows(analysis, flows)
