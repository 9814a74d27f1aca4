"""``--flow N`` for commands that take a whole analysis (``report``): the analysis
seen through a set of flow ids.

Flow ids are given during the analysis (order of first appearance), so ``--flow``
cannot be a packet filter like ``--host`` or ``--start``: the capture is analysed
whole and the records are narrowed afterwards, which keeps the ids the ones
``rstscope analyze`` prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rstscope.cliopts import check_flows

if TYPE_CHECKING:
    from rstscope.core.records import FlowRecord, FlowSpan, ResetRecord
    from rstscope.core.stalls import StallRecord
    from rstscope.results import FlowPacketSource, RecordSource


@dataclass(frozen=True, slots=True)
class FlowSubset:
    """An analysed capture (a :class:`rstscope.results.RecordSource`) whose flows,
    resets and stalls are only those of ``flow_ids`` (the summary counts them alone;
    packet counts stay the capture's).  It is a record source itself."""

    whole: RecordSource
    flow_ids: frozenset[int]

    @classmethod
    def of(cls, analysis: RecordSource, flow_ids: Iterable[int]) -> FlowSubset:
        """``analysis`` narrowed to ``flow_ids``; exit 2 naming the flows that exist
        when one of them is not in the capture."""
        wanted = frozenset(int(f) for f in flow_ids)
        check_flows(sorted(wanted), [s.flow_id for s in analysis.flow_spans()], analysis.file)
        return cls(analysis, wanted)

    @property
    def file(self) -> str:
        return self.whole.file

    @property
    def flow_packets(self) -> FlowPacketSource:
        return self.whole.flow_packets

    def typed_flows(self) -> list[FlowRecord]:
        return [f for f in self.whole.typed_flows() if f.flow_id in self.flow_ids]

    def flow_spans(self) -> list[FlowSpan]:
        return [s for s in self.whole.flow_spans() if s.flow_id in self.flow_ids]

    def flows_by_id(self, ids: Iterable[int]) -> list[FlowRecord]:
        return list(self.whole.flows_by_id(self.flow_ids.intersection(ids)))

    def typed_resets(self) -> list[ResetRecord]:
        return [r for r in self.whole.typed_resets() if r.flow_id in self.flow_ids]

    def typed_stalls(self) -> list[StallRecord]:
        return [s for s in self.whole.typed_stalls() if s.flow_id in self.flow_ids]

    def summary(self) -> dict[str, Any]:
        s = self.whole.summary()
        resets = self.typed_resets()
        by_origin = dict.fromkeys(s["resets_by_origin"], 0)
        for r in resets:
            by_origin[r.origin] = by_origin.get(r.origin, 0) + 1
        return {**s, "flows": len(self.typed_flows()), "resets": len(resets),
                "resets_by_origin": by_origin}


__all__ = ["FlowSubset"]
