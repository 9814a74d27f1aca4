"""The notebook-facing API: analyze(), Analysis, DataFrame schemas, the .rst accessor."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import rstscope as rs
from rstscope.record_frames import FLOW_SCHEMA, RESET_SCHEMA
from tests.conftest import SAMPLES, sample_labels

REPO = Path(__file__).resolve().parent.parent
FW_CLIENT = SAMPLES / "fw-idle-expiry-client-next.client.pcap"
STORM = SAMPLES / "dpi-inject-storm.client.pcap"
GRACEFUL = SAMPLES / "graceful-close.client.pcap"




def test_public_names():
    for name in rs.__all__:
        assert getattr(rs, name) is not None


def test_resets_and_flows_have_the_documented_schema():
    a = rs.analyze(FW_CLIENT)
    assert isinstance(a, rs.Analysis)
    assert list(a.flows.columns) == list(FLOW_SCHEMA)
    assert list(a.resets.columns)[: len(RESET_SCHEMA) + 1] == [
        *list(RESET_SCHEMA)[: list(RESET_SCHEMA).index("ts") + 1], "time",
        *list(RESET_SCHEMA)[list(RESET_SCHEMA).index("ts") + 1:],
    ]
    for col, dtype in RESET_SCHEMA.items():
        assert str(a.resets[col].dtype) == dtype, col
    assert len(a.resets) == len(sample_labels(FW_CLIENT))
    assert a.resets["frame"].tolist() == [lab["frame"] for lab in sample_labels(FW_CLIENT)]


def test_no_resets_gives_empty_frames_with_columns():
    a = rs.analyze(GRACEFUL)
    assert a.resets is not None and len(a.resets) == 0
    assert list(a.resets.columns)[0] == "frame"
    assert len(a.flows) >= 1


def test_file_object_and_list_of_files():
    with FW_CLIENT.open("rb") as fh:
        a = rs.analyze(io.BytesIO(fh.read()))
    b = rs.analyze([FW_CLIENT])
    assert a.resets["frame"].tolist() == b.resets["frame"].tolist()
    assert a.resets["origin"].tolist() == b.resets["origin"].tolist()


def test_packets_are_lazy_and_typed():
    a = rs.analyze(FW_CLIENT)
    assert a._packets_df is None
    p = a.packets
    assert len(p) == a.summary()["tcp_packets"]
    assert p["src"].iloc[0].count(".") == 3  # text addresses
    assert str(p["ts_ns"].dtype) == "int64"


def test_accessor_filters():
    a = rs.analyze(STORM)
    r = a.resets
    origins = set(r["origin"])
    for o in origins:
        assert (r.rst.by_origin(o)["origin"] == o).all()
    # idle_between filters on silence_s (the table's "silence") unless told otherwise.
    assert len(r.rst.idle_between(0, 1e9)) == r["silence_s"].notna().sum()
    assert len(r.rst.idle_between(0, 1e9, column="idle_gap_s")) == r["idle_gap_s"].notna().sum()
    with pytest.raises(ValueError, match="did you mean 'load-balancer'"):
        r.rst.by_origin("load_balancer")
    fid = int(r["flow_id"].iloc[0])
    assert (r.rst.flow(fid)["flow_id"] == fid).all()
    assert (r.rst.confident(0.5)["confidence"] >= 0.5).all()
    assert r.rst.origin_counts().sum() == len(r)
    with pytest.raises(AttributeError):
        pd.DataFrame({"x": [1]}).rst.by_origin("client")


def test_idle_between_finds_the_60s_reset_and_repr_shows_the_summary():
    a = rs.analyze(REPO / "samples" / "llm-stream-60s.client.pcap")
    assert len(a.resets.rst.idle_between(55, 65)) == 1
    text = repr(a)
    assert "resets: 1 (load-balancer 1)" in text and "-> raise nginx" in text
    assert "tracker=" not in text  # not a dataclass dump


def test_repr_html_escapes_capture_strings():
    a = rs.analyze(FW_CLIENT)
    a.file = "<script>alert(1)</script>.pcap"
    html = a._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<table>" in html


def test_to_parquet_round_trip(tmp_path):
    a = rs.analyze(STORM)
    out = a.to_parquet(tmp_path / "pq")
    back = pd.read_parquet(out / "resets.parquet")
    assert back["frame"].tolist() == a.resets["frame"].tolist()
    assert len(pd.read_parquet(out / "flows.parquet")) == len(a.flows)


def test_works_inside_a_running_event_loop():
    async def inside() -> int:
        return len(rs.analyze(FW_CLIENT).resets)

    assert asyncio.run(inside()) == len(sample_labels(FW_CLIENT))


def test_core_stays_pure():
    """The core imports no I/O library and none of scapy, pyshark, matplotlib or pandas."""
    code = (
        "import sys, rstscope.core\n"
        "bad = [m for m in ('scapy', 'pyshark', 'matplotlib', 'pandas', 'socket', 'click', 'rich')"
        " if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""


def test_json_ready_nulls_non_finite_floats_in_plain_and_nested_values():
    # The records' fast path keeps finite floats as they are; NaN and inf become null
    # there as in nested lists and dicts, and numpy scalars become Python numbers.
    import math

    import numpy as np

    from rstscope.api import json_ready

    rec = {"a": 1.5, "b": math.nan, "c": math.inf, "d": -math.inf, "e": [1.0, math.nan],
           "f": {"g": math.inf}, "h": np.float64(math.nan), "i": np.int64(3), "j": "x",
           "k": None, "l": True}
    out = json_ready(rec)
    assert out == {"a": 1.5, "b": None, "c": None, "d": None, "e": [1.0, None],
                   "f": {"g": None}, "h": None, "i": 3, "j": "x", "k": None, "l": True}
    assert type(out["i"]) is int


def test_document_flows_are_the_flow_records_made_json_ready():
    # to_document makes each flow's dict in one pass; it must be json_ready(to_dict()),
    # non-finite floats included.
    import dataclasses
    import math

    from rstscope.api import _flow_json, json_ready

    a = rs.analyze(FW_CLIENT)
    flows = a.typed_flows()
    assert a.to_document()["flows"] == [json_ready(f.to_dict()) for f in flows]
    odd = dataclasses.replace(flows[0], rtt_s=math.nan, duration_s=math.inf)
    assert _flow_json(odd) == json_ready(odd.to_dict())
    assert list(_flow_json(odd)) == list(odd.to_dict())


def test_document_leaves_out_the_parts_an_output_does_not_print():
    a = rs.analyze(SAMPLES / "pmtu-blackhole.client.pcap")
    doc = a.to_document()
    assert doc["flows"] and doc["resets"] and doc["stalls"]
    shown = [{"frame": 1}]
    assert a.to_document(resets=shown, flows=False, stalls=False) == {
        **doc, "flows": [], "resets": shown, "stalls": []}
