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


@dataclass(frozen=True, slots=True)
class FlowOpened:
    """A flow (or a new generation of one) began at this packet.

    Emitted by the ``feed`` that sees the flow's first packet, after the batch's
    flow ids are final, in first-packet order.  ``(file_id, frame)`` is where
    that packet sits in the stream: a sharded run maps its shard-local flow
    ids back to one tracker's numbering with it.
    """

    flow_id: int
    file_id: int
    frame: int


Event = ResetVerdict | IdleWarning | FlowEvicted | FlowOpened
