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


def _addr_codes(raw: np.ndarray, ip_v: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """S16 addresses as (codes, texts): ``texts[codes[i]]`` is row i's address text.

    A capture has few distinct addresses, so each is formatted once.  IPv4 rows
    are keyed by their last four bytes as one uint32 and factorised by hashing:
    ~12 bytes of transient memory per row (a sort of the 16-byte values took ~60),
    which is what bounds ``read_packets``' peak.
    """
    codes = np.zeros(raw.size, dtype=np.intp)
    texts: list[str] = [""]  # code 0: neither IPv4 nor IPv6
    if raw.size == 0:
        return codes, texts
    octets = np.ascontiguousarray(raw).view(np.uint8).reshape(-1, 16)
    m4 = ip_v == 4
    if m4.any():
        every = bool(m4.all())
        quad = octets[:, 12:16] if every else octets[m4, 12:16]
        key = np.ascontiguousarray(quad).view(np.uint32).ravel()  # native order: hashing only
        del quad
        c4, uniq = pd.factorize(key)
        del key
        # tobytes() gives back the four address bytes in wire order.
        texts += [str(ipaddress.IPv4Address(u.tobytes())) for u in np.asarray(uniq)]
        c4 += 1
        if every:
            return c4, texts
        codes[m4] = c4
        del c4
    m6 = ip_v == 6
    if m6.any():
        key6 = np.ascontiguousarray(raw[m6]).view(np.dtype((np.void, 16)))
        uniq6, inv = np.unique(key6, return_inverse=True)
        codes[m6] = inv.ravel() + len(texts)
        texts += [str(ipaddress.IPv6Address(bytes(u))) for u in uniq6]
    return codes, texts


def _addr_series(cols: dict[str, object], name: str, ip_v: np.ndarray) -> pd.Series:
    """The address column ``name`` of ``cols`` as pandas' ``str`` dtype, built without
    an object array when that dtype is stored in Arrow (then only the final strings
    are made).

    The 16-byte column is taken out of ``cols`` and dropped as soon as the codes
    exist, before the text column is made: holding both was ``read_packets``' peak.
    """
    raw = cols.pop(name)
    assert isinstance(raw, np.ndarray)
    codes, texts = _addr_codes(raw, ip_v)
    del raw
    dtype = pd.Series([], dtype="str").dtype
    if getattr(dtype, "storage", None) == "pyarrow":
        # lazy: pyarrow backs pandas' str dtype here; it is not needed otherwise
        import pyarrow as pa

        col = pa.array(texts, type=pa.large_string()).take(pa.array(codes))
        del codes
        return pd.Series(col, dtype=dtype)
    out = np.array(texts, dtype=object)[codes]
    del codes
    return pd.Series(out, dtype=dtype)


def _grow(col: np.ndarray, need: int) -> np.ndarray:
    """``col`` with room for at least ``need`` rows, grown in place where possible."""
    cap = max(need, col.size * 2, 4096)
    # ndarray.resize reallocates the buffer (realloc): for the large columns glibc
    # moves the pages with mremap instead of copying them, so no second copy of
    # the column is ever resident, and the capacity not yet written to is address
    # space only (untouched pages take no memory).
    col.resize(cap, refcheck=False)
    return col


def batches_to_dataframe(batches: Iterable[np.ndarray]) -> pd.DataFrame:
    """Concatenate PACKET_DTYPE batches into the documented DataFrame.

    Memory: every batch is copied straight into one growing array per column
    (grown with ``realloc``, see :func:`_grow`) and the packed batch is dropped at
    once, so no list of per-batch pieces and no concatenated second copy ever
    exist; pandas takes the final arrays without copying them.  The peak stays
    near the size of the columns themselves (docs/performance.md).
    """
    arrays: dict[str, np.ndarray] = {n: np.empty(0, dtype=PACKET_DTYPE[n]) for n in PACKET_COLUMNS}
    rows = 0
    for b in batches:
        n = len(b)
        if not n:
            continue
        end = rows + n
        for name in PACKET_COLUMNS:
            col = arrays[name]
            if end > col.size:
                col = arrays[name] = _grow(col, end)
            col[rows:end] = b[name]
        rows = end
    for name in PACKET_COLUMNS:
        col = arrays[name]
        if col.size != rows:
            col.resize(rows, refcheck=False)  # shrink in place (realloc)
    cols: dict[str, object] = dict(arrays)
    cols["ts"] = pd.to_datetime(arrays["ts_ns"], unit="ns", utc=True)
    ip_v = arrays["ip_v"]
    del arrays
    for name in ("src", "dst"):
        cols[name] = _addr_series(cols, name, ip_v)
    df = pd.DataFrame({n: cols[n] for n in DATAFRAME_COLUMNS}, copy=False)
    df.index = pd.RangeIndex(len(df))
    return df


def read_packets(source: Source | Sequence[Source]) -> pd.DataFrame:
    """Every TCP segment of a capture as one DataFrame (see the module docstring)."""
    with open_capture(source) as rd:
        df = batches_to_dataframe(rd)
    df.attrs["read_stats"] = rd.stats
    return df
