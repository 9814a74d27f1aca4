"""Pick one flow (or reset) out of an analysis, and its packets.

Flows are identified by ``flow_id``; the packets of a flow are found by its
5-tuple (either direction) within the flow's time range, which also separates
generations of a reused 5-tuple (a new generation starts after the old one's
last packet).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rstscope.core.records import FlowRecord, ResetRecord
from rstscope.errors import UsageError
from rstscope.results import ids_matching
from rstscope.schema import addr_bytes

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.results import RecordSource


def all_resets(records: RecordSource) -> list[ResetRecord]:
    """All reset records, in capture order (refined ones once enriched)."""
    return list(records.typed_resets())


def find_flow(records: RecordSource, flow_id: object) -> FlowRecord:
    """The flow record with this ``flow_id``; :class:`UsageError` if there is none."""
    found = records.flows_by_id(ids_matching([flow_id]))
    if found:
        return found[0]
    ids = [s.flow_id for s in records.flow_spans()]
    hint = f"flow ids are {ids[0]}..{ids[-1]}" if ids else "it has no TCP flows"
    raise UsageError(f"{records.file}: no flow {flow_id!s}; {hint}")


def resets_of_flow(records: RecordSource, flow_id: object) -> list[ResetRecord]:
    """The flow's reset records, in time order."""
    out = [r for r in records.typed_resets() if str(r.flow_id) == str(flow_id)]
    return sorted(out, key=lambda r: (r.ts_ns, r.file_id, r.frame))


def reset_by_number(records: RecordSource, n: int) -> ResetRecord:
    """Reset ``n``, 1-based, in the order of the reset table (``rstscope analyze``):
    by file, then time, then frame."""
    ordered = sorted(records.typed_resets(), key=lambda r: (r.file_id, r.ts_ns, r.frame))
    if not 1 <= n <= len(ordered):
        raise UsageError(f"{records.file}: no reset {n}; the reset table has {len(ordered)} row(s)")
    return ordered[n - 1]


def reset_by_frame(records: RecordSource, frame: int, file_id: int = 0) -> ResetRecord:
    """The reset record of the RST at this frame number (Wireshark numbering)."""
    for r in records.typed_resets():
        if r.frame == frame and r.file_id == file_id:
            return r
    raise UsageError(f"{records.file}: frame {frame} is not a RST")


def resolve(records: RecordSource, flow_or_reset: object) -> tuple[FlowRecord, ResetRecord | None]:
    """``(flow record, highlighted reset or None)`` for what a plot was asked to show.

    Accepts a ``flow_id``, a :class:`ResetRecord` or :class:`FlowRecord`, a
    record dict, or a row (``pandas.Series``) of ``Analysis.resets`` /
    ``Analysis.flows``.
    """
    obj: Any = flow_or_reset
    if isinstance(obj, ResetRecord):
        return _reset_of(records, obj.flow_id, obj.frame, obj.file_id)
    if isinstance(obj, FlowRecord):
        return find_flow(records, obj.flow_id), None
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        obj = obj.to_dict()  # pandas rows
    if isinstance(obj, Mapping):
        if "flow_id" not in obj:
            raise UsageError("expected a flow or reset record (with a flow_id)")
        if "frame" in obj and "origin" in obj:  # a reset row
            return _reset_of(records, _plain(obj["flow_id"]), int(obj["frame"]),
                             int(obj.get("file_id", 0)))
        return find_flow(records, _plain(obj["flow_id"])), None
    return find_flow(records, _plain(obj)), None


def _reset_of(records: RecordSource, flow_id: object, frame: int, file_id: int
              ) -> tuple[FlowRecord, ResetRecord]:
    flow = find_flow(records, flow_id)
    for r in resets_of_flow(records, flow.flow_id):
        if r.frame == frame and r.file_id == file_id:
            return flow, r
    raise UsageError(f"frame {frame} is not a RST of flow {flow.flow_id}")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def packets_of_flow(
    records: RecordSource, flow_id: object, *, packets: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The packets of one flow, both directions, with a ``direction`` column (orig/resp).

    Args:
        records: the analysis the flow belongs to.
        flow_id: the flow's ``flow_id``.
        packets: the per-packet frame to filter (default: the analysis's packets if
            they were already read, else only this flow's packets, kept while streaming
            the source once); pass it to reuse one read for many flows.

    Returns:
        A DataFrame with the packet columns plus ``direction``, sorted by time.

    Raises:
        ValueError: the packets cannot be re-read (stdin, a stream).
    """
    flow = find_flow(records, flow_id)
    # Already read, or else only this flow's packets kept while streaming the
    # capture, instead of materialising every packet of it.
    pk = packets if packets is not None else records.flow_packets.of_flows([flow])
    rows, orig = _match(flow, pk["sport"].to_numpy(), pk["dport"].to_numpy(),
                        pk["ts_ns"].to_numpy(),
                        lambda i: (pk["src"].iloc[i].to_numpy(), pk["dst"].iloc[i].to_numpy()),
                        flow.orig_h, flow.resp_h)
    out = pk.iloc[rows].copy()
    out["direction"] = np.where(orig, "orig", "resp")
    result: pd.DataFrame = out.sort_values("ts_ns", kind="stable").reset_index(drop=True)
    return result


def _match(flow: FlowRecord, sport: npt.NDArray[Any], dport: npt.NDArray[Any],
           ts_ns: npt.NDArray[Any],
           addrs: Callable[[npt.NDArray[np.intp]], tuple[npt.NDArray[Any], npt.NDArray[Any]]],
           orig_h: object, resp_h: object) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Which packets are ``flow``'s: its 5-tuple in either direction within its time
    range.  (Positions of those rows in their order, and which of them its originator
    sent.)  ``addrs`` gives the source and destination addresses of the rows at some
    positions, compared with ``orig_h``/``resp_h`` in the same form (text for a
    frame, raw bytes for packed rows): the cheap integer tests go first, so
    addresses are read only for the rows those leave."""
    op, rp = flow.orig_p, flow.resp_p
    ports = ((sport == op) & (dport == rp)) | ((sport == rp) & (dport == op))
    cand = np.flatnonzero(ports & (ts_ns >= flow.first_ts_ns) & (ts_ns <= flow.last_ts_ns))
    src, dst = addrs(cand)
    cs, cd = sport[cand], dport[cand]
    fwd = np.asarray((src == orig_h) & (dst == resp_h) & (cs == op) & (cd == rp), dtype=bool)
    rev = np.asarray((src == resp_h) & (dst == orig_h) & (cs == rp) & (cd == op), dtype=bool)
    keep = fwd | rev
    return cand[keep], fwd[keep]


@dataclass(frozen=True, slots=True, eq=False)
class FlowRows:
    """One flow's packets as the numpy columns a timeline draws, in time order.

    What :func:`packets_of_flow` gives, without pandas: the report draws its
    timelines from the packed rows it re-read (importing pandas and building
    a frame cost ~0.3 s of a report, more than two timelines).
    """

    ts_ns: npt.NDArray[np.int64]
    flags: npt.NDArray[np.int64]
    payload_len: npt.NDArray[np.float64]
    ttl: npt.NDArray[np.int64]
    orig: npt.NDArray[np.bool_]  # sent by the flow's originator (else the responder)

    def __len__(self) -> int:
        return len(self.ts_ns)

    def where(self, keep: npt.NDArray[np.bool_]) -> FlowRows:
        """The rows where ``keep`` is true."""
        return FlowRows(self.ts_ns[keep], self.flags[keep], self.payload_len[keep],
                        self.ttl[keep], self.orig[keep])

    def sent_by(self, direction: str) -> npt.NDArray[np.bool_]:
        """Which rows ``direction`` ("orig" or "resp") sent."""
        return self.orig if direction == "orig" else ~self.orig


def flow_rows(records: RecordSource, flow: FlowRecord,
              packets: pd.DataFrame | npt.NDArray[Any] | None = None) -> FlowRows:
    """The packets of ``flow`` as :class:`FlowRows`.

    ``packets`` is a per-packet frame (filtered by :func:`packets_of_flow`),
    packed rows of ``rstscope.schema.PACKET_DTYPE`` that hold the flow's
    packets (filtered here the same way: 5-tuple in either direction, within
    the flow's time range, stable time order), or None to read them.
    """
    if packets is None or not isinstance(packets, np.ndarray):
        pk = packets_of_flow(records, flow.flow_id, packets=packets)
        return FlowRows(pk["ts_ns"].to_numpy(dtype=np.int64), pk["flags"].to_numpy(dtype=np.int64),
                        pk["payload_len"].to_numpy(dtype=np.float64),
                        pk["ttl"].to_numpy(dtype=np.int64),
                        (pk["direction"] == "orig").to_numpy(dtype=bool))
    # numpy strips trailing NULs of S16 on both sides alike, so == holds.
    idx, orig = _match(flow, packets["sport"], packets["dport"], packets["ts_ns"],
                       lambda i: (packets["src"][i], packets["dst"][i]),
                       addr_bytes(str(flow.orig_h)), addr_bytes(str(flow.resp_h)))
    rows = packets[idx]
    order = np.argsort(rows["ts_ns"], kind="stable")
    rows, orig = rows[order], orig[order]
    return FlowRows(rows["ts_ns"].astype(np.int64), rows["flags"].astype(np.int64),
                    rows["payload_len"].astype(np.float64), rows["ttl"].astype(np.int64),
                    np.ascontiguousarray(orig, dtype=bool))
