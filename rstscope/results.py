"""What the adapters (plot, report, enrich, the CLI's findings) read: typed records.

The core hands out frozen records (:class:`~rstscope.core.records.FlowRecord`,
:class:`~rstscope.core.records.ResetRecord`,
:class:`~rstscope.core.stalls.StallRecord`); adapters read their attributes, never
``to_dict()`` dicts, so a renamed field is a type error and not a silent ``None``.
Dicts exist only at the edges that print them (JSON, CSV, DataFrames).

:class:`EnrichedReset` is the one extra shape: a reset whose verdict the TLS/HTTP2
context refined (``rstscope.enrich``), with the core's originals kept beside it.

:class:`RecordSource` is what the adapters take: the records of one capture and
the packets of some of its flows.  :class:`rstscope.api.Analysis` is one (the
notebook facade); so is any narrowed view of it (``rstscope.flowsubset``).
Adapters name this protocol, not the facade, so they do not import it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rstscope.core.records import FlowRecord, FlowSpan, ResetRecord

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from rstscope.core.stalls import StallRecord

# The refinement's own fields, in the order the JSON document appends them.
_REFINED_FIELDS = ("core_cause", "core_confidence", "context_rule", "tls")


@dataclass(frozen=True, slots=True)
class EnrichedReset(ResetRecord):
    """A reset seen with its TLS/HTTP2 context (``rstscope.enrich``).

    ``cause``, ``advice`` and ``confidence`` are the refined ones when a context rule
    fired (``context_rule``); the core's originals are then in ``core_cause`` and
    ``core_confidence``.  ``evidence`` holds the core's evidence followed by the
    context's.  ``tls`` is the JSON-ready summary of the flow's TLS/HTTP2 facts up to
    the RST (None without context).  ``origin`` is never changed by a refinement.
    """

    core_cause: str | None = None
    core_confidence: float | None = None
    context_rule: str | None = None
    tls: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The reset's dict with the refinement: ``core_cause``/``core_confidence``
        only when a rule fired, then ``context_rule`` and ``tls`` (docs/schema.md)."""
        out = ResetRecord.to_dict(self)
        for name in _REFINED_FIELDS:
            del out[name]
        if self.context_rule is not None:
            out["core_cause"], out["core_confidence"] = self.core_cause, self.core_confidence
        out["context_rule"] = self.context_rule
        out["tls"] = self.tls
        return out


@dataclass(frozen=True, slots=True)
class ShownReset:
    """A reset as ``analyze`` prints it: the record (with a probe's evidence when
    ``--probe`` measured its target) and what the CLI adds to it.

    ``origin`` is the one shown: ``unknown`` below ``--min-confidence``, when
    ``best_guess`` keeps the classifier's (or the probe's) origin.  ``sure`` is what
    the packets prove about the sender (None without a sender).  ``probe`` is the
    probe's summary when one matched.  ``file`` is the capture it came from.
    """

    reset: ResetRecord
    file: str
    origin: str
    best_guess: str
    sure: str | None
    probe: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The reset's dict as the JSON document has it (docs/schema.md): ``probe``
        after the record's fields, then ``best_guess`` and ``sure``; ``file`` is the
        envelope's to add."""
        out = self.reset.to_dict()
        if self.probe is not None:
            out["probe"] = self.probe
        out["origin"] = self.origin
        out["best_guess"] = self.best_guess
        out["sure"] = self.sure
        return out


class FlowPacketSource(Protocol):
    """"The packets of these flows" (``rstscope.flowpackets.FlowPackets``)."""

    @property
    def source(self) -> object:
        """What the packets are re-read from: a path, a list of rotated files, or a
        stream (which cannot be re-read)."""
        ...

    def of_flows(self, flows: Sequence[FlowRecord]) -> pd.DataFrame:
        """Packets that may belong to ``flows`` (a superset: callers pick by 5-tuple)."""
        ...

    def rows_of_flows(self, flows: Sequence[FlowRecord]) -> npt.NDArray[Any]:
        """The same packets as packed ``PACKET_DTYPE`` rows, re-read without pandas."""
        ...


class RecordSource(Protocol):
    """The records of one analysed capture and a way to re-read some of its packets."""

    @property
    def file(self) -> str:
        """The capture's name as given (paths joined by commas for rotated files)."""
        ...

    def typed_flows(self) -> Sequence[FlowRecord]:
        """Every flow, in the order the tracker reports them."""
        ...

    def flow_spans(self) -> Sequence[FlowSpan]:
        """Every flow's id, first and last packet time, in :meth:`typed_flows` order,
        without building every record (views pick their few flows by these)."""
        ...

    def flows_by_id(self, ids: Iterable[int]) -> Sequence[FlowRecord]:
        """The records of the flows with these ids, in :meth:`typed_flows` order and
        equal to its; ids not in the capture are left out."""
        ...

    def typed_resets(self) -> Sequence[ResetRecord]:
        """Every reset in capture order (:class:`EnrichedReset` once enriched)."""
        ...

    def typed_stalls(self) -> Sequence[StallRecord]:
        """Flows that stalled without a RST to explain them."""
        ...

    def summary(self) -> dict[str, Any]:
        """The summary block of the JSON document."""
        ...

    @property
    def flow_packets(self) -> FlowPacketSource:
        """The one packet provider: streamed, never a whole-capture DataFrame."""
        ...


def ids_matching(values: Iterable[object]) -> set[int]:
    """The flow ids a user's values name: the ints ``k`` with ``k == value`` or
    ``str(k) == str(value)`` (12, "12", numpy's 12 and 12.0 name flow 12)."""
    out: set[int] = set()
    for value in values:
        for k in (_as_int(value), _as_int(str(value))):
            if k is not None and (k == value or str(k) == str(value)):
                out.add(k)
    return out


def _as_int(value: object) -> int | None:
    anything: Any = value  # int() takes what a user may pass; errors say it is not an id
    try:
        return int(anything)
    except (TypeError, ValueError, OverflowError):
        return None


__all__ = ["EnrichedReset", "FlowPacketSource", "RecordSource", "ShownReset", "ids_matching"]
