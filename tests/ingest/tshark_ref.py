"""tshark's dissection of a capture, as the independent reference for the reader.

One ``tshark -T fields`` run per capture, innermost occurrence of each field
(``-E occurrence=l``: for tunnelled TCP that is the inner IP header), with
sequence analysis and reassembly off so every field is the raw header value.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from rstscope.schema import addr_text

_PREFS = ["-o", "tcp.analyze_sequence_numbers:FALSE",
          "-o", "tcp.relative_sequence_numbers:FALSE",
          "-o", "tcp.desegment_tcp_streams:FALSE"]


def _walk(tree: object, out: dict[str, str]) -> None:
    """Flatten one layer's JSON subtree; the first value of each field name wins."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            if isinstance(v, str):
                out.setdefault(k, v)
            elif isinstance(v, list) and v and all(isinstance(x, str) for x in v):
                out.setdefault(k, v[0])
            else:
                _walk(v, out)


def _layer(layers: dict[str, object], name: str, index: int) -> dict[str, str]:
    obj = layers.get(name)
    if obj is None:
        return {}
    items = obj if isinstance(obj, list) else [obj]
    if index >= len(items):
        return {}
    flat: dict[str, str] = {}
    _walk(items[index], flat)
    return flat


def tshark_rows(tshark: str, path: Path | str, display_filter: str = "tcp"
                ) -> list[dict[str, str]]:
    """One flat dict per TCP frame: frame fields, the IP header that carries the first
    top-level TCP header (the innermost one for tunnels) and that TCP header."""
    # Decoding every TCP port as plain data stops dissection above TCP: faster, and
    # packets quoted inside application protocols (OpenFlow) cannot be mistaken for
    # the frame's own headers.
    cmd = [tshark, "-n", "-r", str(path), "-Y", display_filter, *_PREFS,
           "-d", "tcp.port==0-65535,data", "-T", "json",
           "--no-duplicate-keys", "-J", "frame ip ipv6 tcp"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = []
    for pkt in json.loads(out or "[]"):
        layers = pkt["_source"]["layers"]
        row: dict[str, str] = {}
        _walk(layers["frame"], row)
        protos = row["frame.protocols"].split(":")
        first_tcp = protos.index("tcp")
        below = protos[:first_tcp]
        for name in ("ip", "ipv6"):
            k = below.count(name)
            if k:
                for key, val in _layer(layers, name, k - 1).items():
                    row.setdefault(key, val)
        for key, val in _layer(layers, "tcp", 0).items():
            row.setdefault(key, val)
        rows.append(row)
    return rows


def tshark_count(tshark: str, path: Path | str, display_filter: str) -> int:
    out = subprocess.run([tshark, "-n", "-r", str(path), "-Y", display_filter, "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True,
                         check=True).stdout
    return len(out.split())


def _int(s: str, default: int = 0) -> int:
    if s == "":
        return default
    return int(s, 0)


def _epoch_ns(s: str) -> int:
    sec, _, frac = s.partition(".")
    neg = sec.startswith("-")
    ns = abs(int(sec)) * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if neg else ns


def _innermost_ip(protocols: str) -> int:
    layers = protocols.split(":")
    for layer in reversed(layers[:layers.index("tcp")]):
        if layer == "ip":
            return 4
        if layer == "ipv6":
            return 6
    raise AssertionError(f"no IP layer before tcp in {protocols}")


_USED = (
    "frame.interface_id", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.ttl", "ipv6.hlim",
    "ip.id", "ip.flags.df", "ip.len", "ipv6.plen", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
    "tcp.ack_raw", "tcp.flags", "tcp.window_size_value", "tcp.len", "tcp.options.mss_val",
    "tcp.options.wscale.shift", "tcp.options.sack_perm", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr", "tcp.payload",
)


def expected(row: dict[str, str]) -> dict[str, object]:
    """The PACKET_DTYPE values that tshark's dissection implies for one TCP frame."""
    v = _innermost_ip(row["frame.protocols"])
    row = {k: row.get(k, "") for k in _USED} | row
    payload = bytes.fromhex(row["tcp.payload"].replace(":", ""))
    tcp_len = _int(row["tcp.len"], -1)
    tls_ct = tls_hs = -1
    if len(payload) >= 5 and tcp_len >= 5 and 20 <= payload[0] <= 23 and payload[1] == 3 \
            and payload[2] <= 4:
        tls_ct = payload[0]
        if tls_ct == 22 and len(payload) >= 6 and tcp_len >= 6:
            tls_hs = payload[5]
    e: dict[str, object] = {
        "frame": int(row["frame.number"]),
        "ts_ns": _epoch_ns(row["frame.time_epoch"]) if row.get("frame.time_epoch") else 0,
        "iface": _int(row["frame.interface_id"]),
        "ip_v": v,
        "src": row["ip.src"] if v == 4 else row["ipv6.src"],
        "dst": row["ip.dst"] if v == 4 else row["ipv6.dst"],
        "ttl": _int(row["ip.ttl"] if v == 4 else row["ipv6.hlim"]),
        "ip_id": _int(row["ip.id"]) if v == 4 else -1,
        "df": row["ip.flags.df"] in ("1", "True") if v == 4 else False,
        "ip_len": _int(row["ip.len"]) if v == 4 else _int(row["ipv6.plen"]) + 40,
        "sport": _int(row["tcp.srcport"]),
        "dport": _int(row["tcp.dstport"]),
        "seq": _int(row["tcp.seq_raw"]),
        "ack": _int(row["tcp.ack_raw"]),
        "flags": _int(row["tcp.flags"]) & 0x1FF,
        "win": _int(row["tcp.window_size_value"]),
        "mss": _int(row["tcp.options.mss_val"], -1),
        "wscale": _int(row["tcp.options.wscale.shift"], -1),
        "sack_ok": row["tcp.options.sack_perm"] != "",
        "tsval": _int(row["tcp.options.timestamp.tsval"], -1),
        "tsecr": _int(row["tcp.options.timestamp.tsecr"], -1),
        "tls_ct": tls_ct,
        "tls_hs": tls_hs,
    }
    if tcp_len >= 0:
        e["payload_len"] = tcp_len
    return e


def actual(rec: np.void) -> dict[str, object]:
    d: dict[str, object] = {}
    for name in rec.dtype.names or ():
        val = rec[name]
        d[name] = val.item() if hasattr(val, "item") else val
    d["src"] = addr_text(bytes(rec["src"]), int(rec["ip_v"]))
    d["dst"] = addr_text(bytes(rec["dst"]), int(rec["ip_v"]))
    return d


def compare(batch: np.ndarray, rows: list[dict[str, str]], *, frame_offset: int = 0,
            check_iface: bool = True) -> list[str]:
    """Every mismatch between the reader's rows and tshark's, as readable strings."""
    problems: list[str] = []
    if len(batch) != len(rows):
        ours = {int(f) for f in batch["frame"]}
        theirs = {int(r["frame.number"]) - frame_offset for r in rows}
        problems.append(f"row count {len(batch)} != tshark {len(rows)}; only ours: "
                        f"{sorted(ours - theirs)[:10]}, only tshark: {sorted(theirs - ours)[:10]}")
        return problems
    for rec, row in zip(batch, rows, strict=True):
        exp = expected(row)
        exp["frame"] = int(exp["frame"]) - frame_offset  # type: ignore[call-overload]
        if not check_iface:
            del exp["iface"]
        act = actual(rec)
        for k, want in exp.items():
            got = act[k]
            if got != want:
                problems.append(f"frame {exp['frame']}: {k} = {got!r}, tshark says {want!r}")
                if len(problems) > 20:
                    return problems
    return problems
