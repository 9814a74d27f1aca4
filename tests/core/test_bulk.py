"""bulk.apply must not depend on how its input is laid out.

The tracker hands apply() each flow's packets grouped by flow (a fast path that
skips a sort) and as contiguous int64 columns; any other interleaving of flows,
and the raw PACKET_DTYPE batch, must give the same per-direction state.  The
reference here is the per-packet path (Flow.packet), not apply() itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from rstscope.core import bulk
from rstscope.core.flow import FIELDS, DirTable, Flow
from rstscope.schema import TH_ACK
from tests.core.fakewire import FakeWire, merge

NS = 1_000_000_000


def _established(n_flows: int) -> tuple[np.ndarray, np.ndarray]:
    """(handshakes, later packets) of n_flows conversations, interleaved in time."""
    heads, tails = [], []
    for i in range(n_flows):
        w = FakeWire(cport=41000 + i, t0_s=1_700_000_000.0 + i * 0.003,
                     server_ip_id=(i * 7919) & 0xFFFF)
        w.handshake().exchange(1, gap_s=0.05)
        if i % 2:  # a flow that had its hellos before: later ones must not move them
            _hellos(w)
        cut = len(w.rows)
        _hellos(w)
        w.exchange(6, gap_s=0.01 + 0.002 * i)
        w.wait(0.5 + i)  # a silence of its own per flow
        w.data("s", 700)
        w.pkt("c", TH_ACK, 200, seq=w.rows[-4]["seq"])  # retransmission: a 'T' letter
        b = w.batch()
        heads.append(b[:cut])
        tails.append(b[cut:])
    return merge(*heads), merge(*tails)


def _hellos(w: FakeWire) -> None:
    """A TLS ClientHello and the ServerHello answering it."""
    w.data("c", 517, tls_ct=22, tls_hs=1)
    w.wait(0.02)
    w.data("s", 1400, tls_ct=22, tls_hs=2)
    w.wait(0.001)


Endpoints = tuple[tuple[bytes, int], tuple[bytes, int]]


def _key(rec: np.void) -> Endpoints:
    a = (bytes(rec["src"]), int(rec["sport"]))
    b = (bytes(rec["dst"]), int(rec["dport"]))
    return (min(a, b), max(a, b))


def _setup(head: np.ndarray) -> tuple[DirTable, list[Flow], dict[Endpoints, int]]:
    """Flows built by the per-packet path from the handshakes."""
    table = DirTable(capacity=4)  # small: the tests also cross a table growth
    flows: list[Flow] = []
    index: dict[Endpoints, int] = {}
    for rec in head:
        key = _key(rec)
        if key not in index:
            index[key] = len(flows)
            c = (bytes(rec["src"]), int(rec["sport"]))
            s = (bytes(rec["dst"]), int(rec["dport"]))
            flows.append(Flow(table, len(flows) + 1, 1, repr(key).encode(), True, "syn", False,
                              4, c[0], c[1], s[0], s[1]))
        f = flows[index[key]]
        direction = 0 if (bytes(rec["src"]), int(rec["sport"])) == (f.orig_raw, f.orig_p) else 1
        f.packet(direction, int(rec["ts_ns"]), int(rec["frame"]), int(rec["file_id"]),
                 int(rec["flags"]), int(rec["seq"]), int(rec["ack"]),
                 int(rec["payload_len"]), int(rec["ip_len"]), int(rec["ttl"]),
                 int(rec["ip_id"]), bool(rec["df"]), int(rec["win"]), int(rec["wscale"]),
                 int(rec["tsval"]), int(rec["tls_ct"]), int(rec["tls_hs"]))
    return table, flows, index


def _state(table: DirTable, flows: list[Flow]) -> list[object]:
    out: list[object] = []
    for f in flows:
        out.append((f.first_ts_ns, f.last_ts_ns, f.last_non_rst_ts_ns, f.max_gap_ns,
                    f.client_hello_ts_ns, f.server_hello_ts_ns, "".join(f.history)))
        for dr in f.dirs:
            out.append((dict(zip(FIELDS, dr.col(), strict=True)), sorted(dr.ttl_counts.items())))
    return out


def _by_packet_path(head: np.ndarray, tail: np.ndarray) -> list[object]:
    table, flows, index = _setup(head)
    for rec in tail:
        f = flows[index[_key(rec)]]
        direction = 0 if (bytes(rec["src"]), int(rec["sport"])) == (f.orig_raw, f.orig_p) else 1
        f.packet(direction, int(rec["ts_ns"]), int(rec["frame"]), int(rec["file_id"]),
                 int(rec["flags"]), int(rec["seq"]), int(rec["ack"]),
                 int(rec["payload_len"]), int(rec["ip_len"]), int(rec["ttl"]),
                 int(rec["ip_id"]), bool(rec["df"]), int(rec["win"]), int(rec["wscale"]),
                 int(rec["tsval"]), int(rec["tls_ct"]), int(rec["tls_hs"]))
    return _state(table, flows)


def _by_bulk(head: np.ndarray, tail: np.ndarray, layout: str, as_columns: bool) -> list[object]:
    table, flows, index = _setup(head)
    g = np.empty(len(tail), dtype=np.int64)
    direction = np.empty(len(tail), dtype=np.int64)
    for i, rec in enumerate(tail):
        g[i] = index[_key(rec)]
        f = flows[g[i]]
        direction[i] = 0 if (bytes(rec["src"]), int(rec["sport"])) == (f.orig_raw, f.orig_p) else 1
    idx = np.arange(len(tail))
    if layout == "grouped":  # the tracker's layout: by flow, frame order within
        idx = np.argsort(g, kind="stable")
    elif layout == "reversed-flows":  # flows interleaved, but not ascending
        idx = np.argsort(-g, kind="stable")
    slots = np.array([(f.dirs[0].slot, f.dirs[1].slot) for f in flows], dtype=np.int64)
    src = bulk.columns(tail) if as_columns else tail
    bulk.apply(src, idx, g[idx], direction[idx], flows, slots, table)
    return _state(table, flows)


@pytest.mark.parametrize("layout", ["frame-order", "grouped", "reversed-flows"])
@pytest.mark.parametrize("as_columns", [False, True])
def test_apply_equals_packet_path_whatever_the_layout(layout: str, as_columns: bool) -> None:
    head, tail = _established(5)
    assert len(tail) > 50
    want = _by_packet_path(head, tail)
    got = _by_bulk(head, tail, layout, as_columns)
    assert got == want
    # The scenario really exercises what apply() computes: a silence, a 'T' letter.
    flows = [x for x in want if isinstance(x, tuple) and len(x) == 7]
    assert len(flows) == 5 and all("T" in x[6] for x in flows)
    # ... and the hellos' times: set in the tail, kept from the head.
    head_hello_ns = int(head[head["tls_hs"] == 1]["ts_ns"].min())
    assert all(x[4] >= 0 and x[5] > x[4] for x in flows)
    assert head_hello_ns in [x[4] for x in flows]


def test_columns_are_contiguous_int64_copies() -> None:
    head, _ = _established(1)
    cols = bulk.columns(head)
    assert set(cols) == set(bulk.FIELDS_READ)
    for name, arr in cols.items():
        assert arr.dtype == np.int64 and arr.flags.c_contiguous
        assert arr.tolist() == head[name].astype(np.int64).tolist()
