"""``--flow N`` for commands that take a whole analysis (``report``): the analysis
seen through a set of flow ids.

Flow ids are given during the analysis (order of first appearance), so ``--flow``
cannot be a packet filter like ``--host`` or ``--start``: the capture is analysed
whole and the records are narrowed afterwards, which keeps the ids the ones
``rstscope analyze`` prints.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rstscope.api import Analysis
from rstscope.cliopts import check_flows

if TYPE_CHECKING:
    from rstscope.core.records import FlowRecord, ResetRecord
    from rstscope.core.stalls import StallRecord


@dataclasses.dataclass
class FlowSubset(Analysis):
    """An :class:`~rstscope.api.Analysis` whose flows, resets and stalls are only those
    of ``flow_ids`` (the summary counts them alone; packet counts stay the capture's)."""

    flow_ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, analysis: Analysis, flow_ids: Iterable[int]) -> FlowSubset:
        """``analysis`` narrowed to ``flow_ids``; exit 2 naming the flows that exist
        when one of them is not in the capture."""
        wanted = frozenset(int(f) for f in flow_ids)
        check_flows(sorted(wanted), [f.flow_id for f in analysis.typed_flows()], analysis.file)
        base = {f.name: getattr(analysis, f.name) for f in dataclasses.fields(analysis)}
        return cls(**base, flow_ids=wanted)

    # The dict forms (reset_records() and the rest) and the DataFrames are built from
    # these, so narrowing the typed records narrows every view of the analysis.
    def typed_flows(self) -> list[FlowRecord]:
        return [f for f in Analysis.typed_flows(self) if f.flow_id in self.flow_ids]

    def typed_resets(self) -> list[ResetRecord]:
        return [r for r in Analysis.typed_resets(self) if r.flow_id in self.flow_ids]

    def typed_stalls(self) -> list[StallRecord]:
        return [s for s in Analysis.typed_stalls(self) if s.flow_id in self.flow_ids]

    def summary(self) -> dict[str, Any]:
        s = Analysis.summary(self)
        resets = self.typed_resets()
        by_origin = dict.fromkeys(s["resets_by_origin"], 0)
        for r in resets:
            by_origin[r.origin] = by_origin.get(r.origin, 0) + 1
        return {**s, "flows": len(self.typed_flows()), "resets": len(resets),
                "resets_by_origin": by_origin}


__all__ = ["FlowSubset"]
