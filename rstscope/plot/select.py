"""Pick one flow (or reset) out of an analysis, and its packets.

Flows are identified by ``flow_id``; the packets of a flow are found by its
5-tuple (either direction) within the flow's time range, which also separates
generations of a reused 5-tuple (a new generation starts after the old one's
last packet).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from rstscope.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.api import Analysis


# Converting thousands of records to dicts takes ~1 s per 5000 flows, and one
# report asks for them dozens of times; keep them per Analysis object.  The
# entry is tied to the object's identity (weakref) and to the tracker's packet
# count, so a tracker that was fed more packets is converted again.
_CACHE: dict[int, tuple[weakref.ref[Any], object, list[dict[str, Any]], list[dict[str, Any]]]] = {}


def _token(analysis: Analysis) -> object:
    stats = getattr(getattr(analysis, "tracker", None), "stats", None)
    return (getattr(stats, "packets", None), getattr(stats, "resets", None),
            type(analysis).reset_records, type(analysis).flow_records)


def _records(analysis: Analysis) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    key = id(analysis)
    token = _token(analysis)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is analysis and hit[1] == token:
        return hit[2], hit[3]
    flows = list(analysis.flow_records())
    resets = list(analysis.reset_records())
    def forget(_ref: weakref.ref[Any]) -> None:
        _CACHE.pop(key, None)

    try:
        ref: weakref.ref[Any] = weakref.ref(analysis, forget)
    except TypeError:  # not weak-referenceable: no caching
        return flows, resets
    _CACHE[key] = (ref, token, flows, resets)
    return flows, resets


def reset_records(analysis: Analysis) -> list[dict[str, Any]]:
    """All reset records as dicts (JSON-ready, as ``ResetRecord.to_dict()``), in capture order.

    The list is shared (cached per analysis): do not modify it.
    """
    return _records(analysis)[1]


def flow_records(analysis: Analysis) -> list[dict[str, Any]]:
    """All flow records as dicts (as ``FlowRecord.to_dict()``); shared, do not modify."""
    return _records(analysis)[0]


def find_flow(analysis: Analysis, flow_id: object) -> dict[str, Any]:
    """The flow record with this ``flow_id``; :class:`UsageError` if there is none."""
    flows = flow_records(analysis)
    for f in flows:
        if f["flow_id"] == flow_id or str(f["flow_id"]) == str(flow_id):
            return f
    ids = [f["flow_id"] for f in flows]
    hint = f"flow ids are {ids[0]}..{ids[-1]}" if ids else "it has no TCP flows"
    raise UsageError(f"{analysis.file}: no flow {flow_id!s}; {hint}")


def resets_of_flow(analysis: Analysis, flow_id: object) -> list[dict[str, Any]]:
    """The flow's reset records, in time order."""
    out = [r for r in reset_records(analysis) if str(r["flow_id"]) == str(flow_id)]
    return sorted(out, key=lambda r: (r["ts_ns"], r.get("file_id", 0), r["frame"]))


def reset_by_number(analysis: Analysis, n: int) -> dict[str, Any]:
    """Reset ``n``, 1-based, in the order of the reset table (``rstscope analyze``):
    by file, then time, then frame."""
    records = sorted(reset_records(analysis),
                     key=lambda r: (r.get("file_id", 0), r["ts_ns"], r["frame"]))
    if not 1 <= n <= len(records):
        raise UsageError(f"{analysis.file}: no reset {n}; the reset table has {len(records)} row(s)")
    return records[n - 1]


def reset_by_frame(analysis: Analysis, frame: int, file_id: int = 0) -> dict[str, Any]:
    """The reset record of the RST at this frame number (Wireshark numbering)."""
    for r in reset_records(analysis):
        if int(r["frame"]) == frame and int(r.get("file_id", 0)) == file_id:
            return r
    raise UsageError(f"{analysis.file}: frame {frame} is not a RST")


def resolve(analysis: Analysis, flow_or_reset: object) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(flow record, highlighted reset or None)`` for what a plot was asked to show.

    Accepts a ``flow_id``, a :class:`ResetRecord` or :class:`FlowRecord`, a
    record dict, or a row (``pandas.Series``) of ``analysis.resets`` /
    ``analysis.flows``.
    """
    obj: Any = flow_or_reset
    if hasattr(obj, "to_dict") and not isinstance(obj, Mapping):
        obj = obj.to_dict()  # records and pandas rows alike
    if isinstance(obj, Mapping):
        if "flow_id" not in obj:
            raise UsageError("expected a flow or reset record (with a flow_id)")
        flow = find_flow(analysis, _plain(obj["flow_id"]))
        if "frame" in obj and "origin" in obj:  # a reset row
            for r in resets_of_flow(analysis, flow["flow_id"]):
                if int(r["frame"]) == int(obj["frame"]) and int(r.get("file_id", 0)) == int(
                        obj.get("file_id", 0)):
                    return flow, r
            raise UsageError(f"frame {obj['frame']} is not a RST of flow {flow['flow_id']}")
        return flow, None
    return find_flow(analysis, _plain(obj)), None


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def packets_of_flow(
    analysis: Analysis, flow_id: object, *, packets: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The packets of one flow, both directions, with a ``direction`` column (orig/resp).

    Args:
        analysis: the analysis the flow belongs to.
        flow_id: the flow's ``flow_id``.
        packets: the per-packet frame to filter (default ``analysis.packets``,
            read lazily from the source file); pass it to reuse one read for many flows.

    Returns:
        A DataFrame with the packet columns plus ``direction``, sorted by time.
    """
    flow = find_flow(analysis, flow_id)
    pk = analysis.packets if packets is None else packets
    oh, op, rh, rp = flow["orig_h"], int(flow["orig_p"]), flow["resp_h"], int(flow["resp_p"])
    # Cheap integer tests first; string compares only on the rows they leave.
    ports = ((pk["sport"] == op) & (pk["dport"] == rp)) | ((pk["sport"] == rp) & (pk["dport"] == op))
    in_time = (pk["ts_ns"] >= int(flow["first_ts_ns"])) & (pk["ts_ns"] <= int(flow["last_ts_ns"]))
    cand = pk[ports & in_time]
    fwd = ((cand["src"] == oh) & (cand["dst"] == rh) & (cand["sport"] == op)
           & (cand["dport"] == rp)).to_numpy(dtype=bool)
    rev = ((cand["src"] == rh) & (cand["dst"] == oh) & (cand["sport"] == rp)
           & (cand["dport"] == op)).to_numpy(dtype=bool)
    out = cand[fwd | rev].copy()
    out["direction"] = np.where(fwd[fwd | rev], "orig", "resp")
    result: pd.DataFrame = out.sort_values("ts_ns", kind="stable").reset_index(drop=True)
    return result
