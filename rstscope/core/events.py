"""Events returned by :class:`rstscope.core.Tracker` (frozen, slotted; don't subclass)."""

from __future__ import annotations

from dataclasses import dataclass

from rstscope.core.records import FlowRecord, ResetRecord


@dataclass(frozen=True, slots=True)
class ResetVerdict:
    """A RST's verdict, emitted once its settle window has passed (or at finish)."""

    reset: ResetRecord


@dataclass(frozen=True, slots=True)
class IdleWarning:
    """A live flow has been silent for ``idle_s`` and nears catalog timeouts."""

    flow_id: int
    idle_s: float
    candidates: tuple[str, ...]  # "350 s: AWS NLB ..." labels, nearest first


@dataclass(frozen=True, slots=True)
class FlowEvicted:
    """Flow state was dropped by the memory guard; its record is kept."""

    flow: FlowRecord
    reason: str  # "idle" | "max_flows"


Event = ResetVerdict | IdleWarning | FlowEvicted
