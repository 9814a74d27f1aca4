"""Packets as a pandas DataFrame (the notebook path).  pandas is imported only here.

Columns, in order, with dtypes (fixed, also for an empty capture):

=========== ======================== ==========================================
column      dtype                    meaning
=========== ======================== ==========================================
file_id     uint16                   index of the input in a multi-file read
frame       uint64                   1-based frame number in its file
ts_ns       int64                    capture time, ns since the Unix epoch
ts          datetime64[ns, UTC]      the same instant as a timestamp
iface       uint16                   pcapng interface id
ip_v        uint8                    4 or 6
src, dst    str                      text addresses ("192.0.2.1", "2001:db8::1")
ttl         uint8                    TTL / hop limit
ip_id       int32                    IPv4 ID, -1 for IPv6
df          bool                     IPv4 DF bit
ip_len      uint32                   IP length from the header
sport,dport uint16
seq, ack    uint32                   raw sequence numbers
flags       uint16                   TH_* bits (rstscope.schema)
win         uint16                   unscaled window
payload_len uint32                   tshark's tcp.len
mss         int32                    -1 if absent
wscale      int16                    -1 if absent
sack_ok     bool
tsval,tsecr int64                    -1 if absent
tls_ct      int16                    TLS record type at payload start, -1
tls_hs      int16                    TLS handshake type, -1
truncated   bool                     snaplen cut a header
=========== ======================== ==========================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from rstscope.ingest.reader import open_capture
from rstscope.ingest.source import Source
from rstscope.schema import PACKET_COLUMNS, PACKET_DTYPE

DATAFRAME_COLUMNS: tuple[str, ...] = (
    PACKET_COLUMNS[:PACKET_COLUMNS.index("ts_ns") + 1] + ("ts",)
    + PACKET_COLUMNS[PACKET_COLUMNS.index("ts_ns") + 1:]
)


def _addr_text(raw: np.ndarray, ip_v: np.ndarray) -> np.ndarray:
    """S16 addresses to text via the distinct values (a capture has few addresses)."""
    out = np.empty(raw.size, dtype=object)
    if raw.size == 0:
        return out
    key = np.ascontiguousarray(raw).view(np.dtype((np.void, 16)))
    for v in (4, 6):
        m = ip_v == v
        if not m.any():
            continue
        uniq, inv = np.unique(key[m], return_inverse=True)
        if v == 4:
            texts = [str(ipaddress.IPv4Address(bytes(u)[12:16])) for u in uniq]
        else:
            texts = [str(ipaddress.IPv6Address(bytes(u))) for u in uniq]
        out[m] = np.array(texts, dtype=object)[inv.ravel()]
    other = (ip_v != 4) & (ip_v != 6)
    out[other] = ""
    return out


def batches_to_dataframe(batches: Iterable[np.ndarray]) -> pd.DataFrame:
    """Concatenate PACKET_DTYPE batches into the documented DataFrame.

    Memory: each batch is split into its columns as it arrives (the packed
    records are dropped at once), each column is joined into its final array
    one column at a time, and pandas takes those arrays without copying them,
    so the peak stays near the size of the columns themselves.
    """
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in PACKET_COLUMNS}
    rows = 0
    for b in batches:
        if len(b):
            rows += len(b)
            for n in PACKET_COLUMNS:
                chunks[n].append(np.ascontiguousarray(b[n]))
    arrays: dict[str, np.ndarray] = {}
    for name in PACKET_COLUMNS:
        parts = chunks.pop(name)
        col = np.empty(rows, dtype=PACKET_DTYPE[name])
        if parts:
            np.concatenate(parts, out=col)
        del parts
        arrays[name] = col
    cols: dict[str, object] = dict(arrays)
    cols["ts"] = pd.to_datetime(arrays["ts_ns"], unit="ns", utc=True)
    for name in ("src", "dst"):
        cols[name] = pd.Series(_addr_text(arrays[name], arrays["ip_v"]), dtype="str")
    df = pd.DataFrame({n: cols[n] for n in DATAFRAME_COLUMNS}, copy=False)
    df.index = pd.RangeIndex(len(df))
    return df


def read_packets(source: Source | Sequence[Source]) -> pd.DataFrame:
    """Every TCP segment of a capture as one DataFrame (see the module docstring)."""
    with open_capture(source) as rd:
        df = batches_to_dataframe(rd)
    df.attrs["read_stats"] = rd.stats
    return df
