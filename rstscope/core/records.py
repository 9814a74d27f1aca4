"""Result records: one :class:`FlowRecord` per connection, one :class:`ResetRecord` per RST.

Field names follow Zeek's conn.log vocabulary (``orig_h``, ``resp_pkts``,
``conn_state``, ``history``) and carry units (``idle_gap_s``, ``ts_ns``).
``to_dict()`` gives JSON-ready values (tuples become lists, evidence becomes dicts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, Literal

from rstscope.core.vocab import Origin, Sender

SeqStatus = Literal["exact", "in-window", "out-of-window", "unknown"]
Scalar = str | int | float | bool | None


def field_value(value: Any) -> Any:
    """A field's value as :meth:`to_dict` gives it (evidence as dicts, enums as their
    values, tuples as lists)."""
    if isinstance(value, Evidence):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [field_value(v) for v in value]
    return value


# Values that are JSON-ready as they are: the common case, tested by exact type so
# that enums (str and int subclasses) still go through field_value.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def field_names(cls: type) -> tuple[str, ...]:
    """A record class's field names in declaration order.

    The output stage converts thousands of records: the names are looked up once
    per class (dataclasses.fields() rebuilds its tuple on every call)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    return names


class _ToDict:
    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Field name -> JSON-ready value, in declaration order."""
        # Plain values skip field_value (~2x faster per FlowRecord, same dict).
        names = field_names(type(self))
        plain = _PLAIN_TYPES
        out: dict[str, Any] = {}
        for name in names:
            v = getattr(self, name)
            out[name] = v if type(v) in plain else field_value(v)
        return out


@dataclass(frozen=True, slots=True)
class Evidence(_ToDict):
    """One measured fact behind a verdict.

    ``weight`` is signed: > 0 supports the verdict's sender, < 0 argues against it,
    0 is context only.  Its magnitude is the log-odds the rule contributes.
    """

    name: str
    value: Scalar
    expected: Scalar
    weight: float


@dataclass(frozen=True, slots=True)
class FlowSpan:
    """A flow's id and the times of its first and last packets: what a view that
    shows a few of many flows chooses them by, without building every record.
    The times are the ones its :class:`FlowRecord` carries."""

    flow_id: int
    first_ts_ns: int
    last_ts_ns: int


def spans_of(flows: Iterable[FlowRecord]) -> list[FlowSpan]:
    """The spans of these records (a source whose records are built already)."""
    return [FlowSpan(f.flow_id, f.first_ts_ns, f.last_ts_ns) for f in flows]


def records_by_id(flows: Iterable[FlowRecord], ids: Iterable[int]) -> list[FlowRecord]:
    """The records among ``flows`` with these ids, in their order."""
    wanted = set(ids)
    return [f for f in flows if f.flow_id in wanted]


@dataclass(frozen=True, slots=True)
class FlowRecord(_ToDict):
    """One TCP connection (5-tuple + generation)."""

    flow_id: int
    generation: int
    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    ip_v: int
    orientation: str  # "syn" | "synack" | "inferred:<why>"
    first_ts_ns: int
    last_ts_ns: int
    duration_s: float
    orig_pkts: int
    resp_pkts: int
    orig_bytes: int  # TCP payload bytes
    resp_bytes: int
    orig_ip_bytes: int
    resp_ip_bytes: int
    conn_state: str
    history: str
    orig_state: str  # Zeek endpoint state (INACTIVE, SYN_SENT, ..., RESET)
    resp_state: str
    orig_ttl_mode: int | None
    orig_ttl_spread: int | None
    orig_initial_ttl: int | None
    orig_hops: int | None
    resp_ttl_mode: int | None
    resp_ttl_spread: int | None
    resp_initial_ttl: int | None
    resp_hops: int | None
    orig_ip_id: str  # incrementing | zero | random | constant | n/a
    resp_ip_id: str
    orig_win: int | None
    resp_win: int | None
    rtt_s: float | None
    rtt_orig_side_s: float | None  # capture point -> originator -> capture point
    rtt_resp_side_s: float | None  # capture point -> responder -> capture point
    vantage: str  # client | server | middle (this flow's inferred capture point)
    max_idle_gap_s: float
    resets: int
    evicted: bool


@dataclass(frozen=True, slots=True)
class ResetRecord(_ToDict):
    """One RST packet with its evidence and verdict."""

    frame: int
    file_id: int
    ts_ns: int
    ts: float
    flow_id: int
    src: str
    sport: int
    dst: str
    dport: int
    direction: Literal["orig", "resp"]
    flags: str
    origin: Origin
    sender: Sender
    sender_hops: int | None
    confidence: float
    cause: str
    evidence: tuple[Evidence, ...]
    alternatives: tuple[tuple[str, str], ...]
    advice: tuple[str, ...]
    idle_gap_s: float | None
    idle_gap_orig_s: float | None
    idle_gap_resp_s: float | None
    idle_since_payload_s: float | None
    idle_before_trigger_s: float | None  # silence that preceded the triggering packet
    # The silence this verdict is about: before the sender's own close (FIN / TLS
    # alert) when the RST followed it, else before the triggering packet, else before
    # the RST.  This is the number to hold against a product's idle timeout.
    silence_s: float | None
    # When that silence began: the timestamp of the last packet before it (what a
    # timeline draws product timeouts from).
    silence_from_ns: int | None
    triggered: bool
    trigger_frame: int | None
    latency_s: float | None
    rtt_s: float | None
    ttl: int
    expected_ttl: int | None
    hop_delta: int | None
    # Where a box's RST was made (None for an endpoint's RST, or without the baseline):
    # links from the client to the box (1 = the box next to the client) and from the
    # box to the server (1 = the last box in front of it), from both ends' TTLs.
    emitter_hops_from_client: int | None
    emitter_hops_to_server: int | None
    path_position: str | None  # e.g. "made 1 hop from the client, 3 hops before the server"
    ip_id: int
    timeout_candidates: tuple[str, ...]
    conn_state: str
    seq_status: SeqStatus
    tags: tuple[str, ...]  # the facts the verdict stood on (rstscope.core.tags.Tag values)
    # Stable machine name of the cause (docs/schema.md, rstscope.core.causes.CAUSES);
    # ``cause`` is its sentence and may be reworded, this name does not change.
    cause_id: str = "unknown"
    # Other causes the wire cannot rule out, most likely first (cause_id names): set
    # where one capture cannot tell two causes apart (proxy buffering from the client).
    cause_alternatives: tuple[str, ...] = ()
    # What to change and where, in one terminal line (the table's "->" line);
    # ``advice[0]`` says it in full (rstscope.core.wording.action_line).
    action: str = ""
