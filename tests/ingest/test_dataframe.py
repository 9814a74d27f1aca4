"""read_packets / batches_to_dataframe: fixed columns and dtypes, text addresses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rstscope.ingest import batches_to_dataframe, read_packets
from rstscope.ingest.dataframe import DATAFRAME_COLUMNS
from rstscope.schema import PACKET_COLUMNS, PACKET_DTYPE
from tests.conftest import make_capture
from tests.ingest.helpers import idb, shb
from tests.ingest.tshark_ref import tshark_rows


@pytest.fixture(scope="module")
def cap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("df") / "d.pcap"
    return make_capture(out, 800, seed=3)


def _dtypes(df: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in df.dtypes.items()}


def test_columns_dtypes_and_addresses(cap, tshark):
    df = read_packets(cap)
    assert tuple(df.columns) == DATAFRAME_COLUMNS
    assert PACKET_COLUMNS[:3] + ("ts",) + PACKET_COLUMNS[3:] == DATAFRAME_COLUMNS
    rows = tshark_rows(tshark, cap)
    assert len(df) == len(rows)
    assert df["src"].tolist() == [r["ip.src"] for r in rows]
    assert df["dst"].tolist() == [r["ip.dst"] for r in rows]
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    assert (df["ts"].astype("int64") == df["ts_ns"]).all()
    for name in PACKET_COLUMNS:
        if name not in ("src", "dst"):
            assert df[name].dtype == PACKET_DTYPE[name], name
    assert df.attrs["read_stats"].tcp == len(df)


def test_empty_capture_has_same_columns_and_dtypes(cap, tmp_path):
    empty = tmp_path / "empty.pcapng"
    empty.write_bytes(shb() + idb(1))
    e = read_packets(empty)
    full = read_packets(cap)
    assert len(e) == 0
    assert _dtypes(e) == _dtypes(full)
    assert _dtypes(batches_to_dataframe([])) == _dtypes(full)


def test_ipv6_text(tmp_path, tshark):
    from tests.ingest.helpers import epb

    ip6 = bytes.fromhex("6000000000140640") + bytes.fromhex("20010db8" + "0" * 23 + "1") + \
        bytes.fromhex("20010db8" + "0" * 23 + "2")
    tcp = bytes.fromhex("d431 01bb 00000001 00000000 5004 0000 0000 0000".replace(" ", ""))
    eth = bytes(12) + b"\x86\xdd"
    f = tmp_path / "v6.pcapng"
    f.write_bytes(shb() + idb(1) + epb(0, 10**15, eth + ip6 + tcp))
    df = read_packets(f)
    rows = tshark_rows(tshark, f)
    assert df["src"].tolist() == [r["ipv6.src"] for r in rows] == ["2001:db8::1"]
    assert df["ip_id"].tolist() == [-1]
    assert np.array_equal(df["flags"].to_numpy(), np.array([4], dtype=np.uint16))
