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
from typing import Any

from rstscope.api import Analysis
from rstscope.cliopts import check_flows


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
        check_flows(sorted(wanted), [f["flow_id"] for f in analysis.flow_records()],
                    analysis.file)
        base = {f.name: getattr(analysis, f.name) for f in dataclasses.fields(analysis)}
        return cls(**base, flow_ids=wanted)

    def flow_records(self) -> list[dict[str, Any]]:
        return [f for f in super().flow_records() if f["flow_id"] in self.flow_ids]

    def reset_records(self) -> list[dict[str, Any]]:
        return [r for r in super().reset_records() if r["flow_id"] in self.flow_ids]

    def stall_records(self) -> list[dict[str, Any]]:
        return [s for s in super().stall_records() if s["flow_id"] in self.flow_ids]

    def summary(self) -> dict[str, Any]:
        s = super().summary()
        resets = self.reset_records()
        by_origin = dict.fromkeys(s["resets_by_origin"], 0)
        for r in resets:
            by_origin[r["origin"]] = by_origin.get(r["origin"], 0) + 1
        return {**s, "flows": len(self.flow_records()), "resets": len(resets),
                "resets_by_origin": by_origin}


__all__ = ["FlowSubset"]
