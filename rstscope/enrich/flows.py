"""Cutting the flows with resets out of a capture, so tshark only sees those.

Two ways, measured in docs/enrich.md:

``extract``  rstscope's own reader finds the frame numbers of every packet of
             the reset flows (vectorised, ~1 s per million packets), editcap
             copies just those frames to a small temp pcapng, and tshark
             dissects only that.  Frame numbers map back through ``FrameMap``.
``filter``   tshark reads the whole file with a display filter built from the
             5-tuples.  No temp file, but tshark dissects every packet.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rstscope.enrich.context import FlowKey
from rstscope.enrich.tools import find_tool, run_tool
from rstscope.errors import UsageError
from rstscope.ingest import open_capture
from rstscope.schema import PACKET_DTYPE, TH_RST, addr_bytes, addr_text

#: editcap refuses more than 512 frame selections per run ("Out of room for packet
#: selections"), so longer selections are cut into runs and concatenated.
EDITCAP_MAX_SELECTIONS = 500


def source_paths(source: Any) -> list[str]:
    """The file paths of a source (path or list of paths); streams cannot be re-read."""
    items = list(source) if isinstance(source, list | tuple) else [source]
    out = []
    for item in items:
        if not isinstance(item, str | os.PathLike) or os.fspath(item) == "-":
            raise UsageError("TLS enrichment and verify need capture file paths "
                             "(stdin and file objects cannot be read twice)")
        out.append(os.fspath(item))
    return out


def reset_keys(resets: Iterable[Any]) -> dict[int, set[FlowKey]]:
    """Flow keys per ``file_id`` from ResetRecords or their ``to_dict()``s."""
    out: dict[int, set[FlowKey]] = {}
    for r in resets:
        vals: list[Any] = [r.get(k) if isinstance(r, Mapping) else getattr(r, k, None)
                for k in ("file_id", "src", "sport", "dst", "dport")]
        fid = int(vals[0] or 0)
        out.setdefault(fid, set()).add(
            FlowKey.of(str(vals[1]), int(vals[2]), str(vals[3]), int(vals[4])))
    return out


def _endpoint_hash(addr: np.ndarray, port: np.ndarray) -> np.ndarray:
    """A 64-bit mix of a 16-byte address column and a port column (wrapping arithmetic)."""
    words = np.ascontiguousarray(addr).view("<u8").reshape(-1, 2)
    with np.errstate(over="ignore"):
        h = words[:, 0] * np.uint64(0x9E3779B97F4A7C15)
        h ^= words[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)
        h += port.astype(np.uint64) * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(29)
    return h


def _flow_hash(src: np.ndarray, sport: np.ndarray, dst: np.ndarray,
               dport: np.ndarray) -> np.ndarray:
    one = _endpoint_hash(src, sport)
    two = _endpoint_hash(dst, dport)
    lo, hi = np.minimum(one, two), np.maximum(one, two)
    with np.errstate(over="ignore"):
        out: np.ndarray = lo * np.uint64(0x94D049BB133111EB) + hi
    return out


def _key_hash(key: FlowKey) -> int:
    arr = np.zeros(2, dtype=[("a", "S16"), ("p", "u2")])
    arr["a"] = [addr_bytes(key.a), addr_bytes(key.b)]
    arr["p"] = [key.a_port, key.b_port]
    h = _flow_hash(arr["a"][:1], arr["p"][:1], arr["a"][1:], arr["p"][1:])
    return int(h[0])


def _row_key(row: np.void) -> FlowKey:
    v = int(row["ip_v"])
    return FlowKey.of(addr_text(bytes(row["src"]), v), int(row["sport"]),
                      addr_text(bytes(row["dst"]), v), int(row["dport"]))


def collect_rows(source: Any, keys: Mapping[int, set[FlowKey]] | None = None,
                 ) -> tuple[dict[int, set[FlowKey]], dict[int, np.ndarray]]:
    """rstscope's own packet records of the reset flows, per ``file_id``.

    With ``keys`` None, a first pass of the reader finds the flows that contain
    an RST.  Returns ``(keys by file_id, PACKET_DTYPE rows by file_id)``.
    """
    if keys is None:
        found: dict[int, set[FlowKey]] = {}
        with open_capture(source) as reader:
            for batch in reader:
                for row in batch[(batch["flags"] & TH_RST) != 0]:
                    found.setdefault(int(row["file_id"]), set()).add(_row_key(row))
        keys = found
    hashes = {fid: np.fromiter((_key_hash(k) for k in ks), dtype=np.uint64, count=len(ks))
              for fid, ks in keys.items()}
    parts: dict[int, list[np.ndarray]] = {fid: [] for fid in keys}
    with open_capture(source) as reader:
        for batch in reader:
            h = _flow_hash(batch["src"], batch["sport"], batch["dst"], batch["dport"])
            for fid, hs in hashes.items():
                hit = np.isin(h, hs) & (batch["file_id"] == fid)
                if not hit.any():
                    continue
                rows = batch[hit]
                # A 64-bit hash hit is almost surely right; confirm exactly anyway.
                ok = np.fromiter((_row_key(r) in keys[fid] for r in rows), dtype=bool,
                                 count=len(rows))
                parts[fid].append(rows[ok])
    out = {fid: (np.concatenate(ps) if ps else np.zeros(0, dtype=PACKET_DTYPE))
           for fid, ps in parts.items()}
    return dict(keys), out


def scan(source: Any, keys: Mapping[int, set[FlowKey]] | None = None,
         ) -> tuple[dict[int, set[FlowKey]], dict[int, np.ndarray]]:
    """The reset flows (unless given) and the sorted frame numbers of their packets."""
    keys_out, rows = collect_rows(source, keys)
    return keys_out, {fid: np.unique(r["frame"].astype(np.int64)) for fid, r in rows.items()}


def frame_ranges(frames: np.ndarray) -> list[str]:
    """Sorted frame numbers as editcap selections: ``["1-4", "9", "12-13"]``."""
    if len(frames) == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    out = []
    for run in np.split(frames, breaks):
        lo, hi = int(run[0]), int(run[-1])
        out.append(str(lo) if lo == hi else f"{lo}-{hi}")
    return out


@dataclass(frozen=True, slots=True)
class FrameMap:
    """Frame i (1-based) of the extracted file is ``(file_id[i-1], frame[i-1])`` of the source."""

    file_id: np.ndarray
    frame: np.ndarray

    def original(self, small_frame: int) -> tuple[int, int]:
        return int(self.file_id[small_frame - 1]), int(self.frame[small_frame - 1])


def extract(paths: Sequence[str], frames: Mapping[int, np.ndarray], out: Path) -> FrameMap:
    """Copy the selected frames of each file, in order, into one pcapng ``out``."""
    editcap = find_tool("editcap")
    pieces: list[Path] = []
    fids: list[np.ndarray] = []
    frs: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="rstscope-cut-") as tmp:
        for fid, path in enumerate(paths):
            sel = frames.get(fid)
            if sel is None or len(sel) == 0:
                continue
            ranges = frame_ranges(np.asarray(sel, dtype=np.int64))
            for i in range(0, len(ranges), EDITCAP_MAX_SELECTIONS):
                piece = Path(tmp) / f"piece-{len(pieces):05d}.pcapng"
                run_tool([editcap, "-F", "pcapng", "-r", path, str(piece),
                          *ranges[i:i + EDITCAP_MAX_SELECTIONS]], what="editcap")
                pieces.append(piece)
            fids.append(np.full(len(sel), fid, dtype=np.int64))
            frs.append(np.asarray(sel, dtype=np.int64))
        if not pieces:
            fmap = FrameMap(np.zeros(0, np.int64), np.zeros(0, np.int64))
            run_tool([editcap, "-F", "pcapng", "-r", paths[0], str(out), "0"], what="editcap")
            return fmap
        if len(pieces) == 1:
            os.replace(pieces[0], out)
        else:
            # mergecap -a concatenates in argument order instead of merging by time,
            # so the frame order (and the map) stays the source's order.
            run_tool([find_tool("mergecap"), "-a", "-F", "pcapng", "-w", str(out),
                      *map(str, pieces)], what="mergecap")
    return FrameMap(np.concatenate(fids), np.concatenate(frs))


def display_filter(keys: Iterable[FlowKey]) -> str:
    """A tshark display filter matching exactly these flows, both directions."""
    clauses = []
    for k in sorted(keys):
        fam = "ipv6" if ":" in k.a else "ip"
        fwd = (f"{fam}.src=={k.a} && tcp.srcport=={k.a_port} && "
               f"{fam}.dst=={k.b} && tcp.dstport=={k.b_port}")
        rev = (f"{fam}.src=={k.b} && tcp.srcport=={k.b_port} && "
               f"{fam}.dst=={k.a} && tcp.dstport=={k.a_port}")
        clauses.append(f"({fwd}) || ({rev})")
    return " || ".join(f"({c})" for c in clauses) if clauses else "frame.number==0"
