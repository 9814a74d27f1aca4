"""``rstscope verify``: rstscope's packet fields vs tshark's dissection, field by field.

For every packet of every flow that has an RST, the record rstscope's reader
produced is compared with what tshark says about the same frame number.  The
tshark side uses ``tshark -T fields`` rather than pyshark: pyshark parses
tshark's PDML in Python at ~500 packets/s (docs/performance.md, pyshark row),
which would make a cross-check of a few hundred thousand reset-flow packets
take many minutes; ``-T fields`` gives the same dissection as text at tshark's
own speed.  Compared: every PACKET_DTYPE column that has a tshark counterpart
(all but ``file_id``, ``tls_ct``/``tls_hs`` and ``truncated``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rstscope.enrich.context import FlowKey
from rstscope.enrich.flows import collect_rows, display_filter
from rstscope.enrich.tls import epoch_ns
from rstscope.enrich.tools import find_tool, run_tool, tshark_version
from rstscope.errors import InputMissingError
from rstscope.schema import addr_text

#: tshark fields, in output order.  ``occurrence=l`` picks the innermost IP
#: header of tunnelled packets, which is the one rstscope decodes.
TSHARK_FIELDS = (
    "frame.number", "frame.time_epoch", "frame.interface_id", "frame.protocols",
    "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.ttl", "ipv6.hlim",
    "ip.id", "ip.flags.df", "ip.len", "ipv6.plen",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
    "tcp.window_size_value", "tcp.len", "tcp.options.mss_val",
    "tcp.options.wscale.shift", "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr",
)

#: The compared PACKET_DTYPE columns.
COMPARED = ("ts_ns", "iface", "ip_v", "src", "dst", "ttl", "ip_id", "df", "ip_len",
            "sport", "dport", "seq", "ack", "flags", "win", "payload_len",
            "mss", "wscale", "sack_ok", "tsval", "tsecr")

#: One command-line argument may not exceed 128 KiB on Linux (MAX_ARG_STRLEN);
#: past that, tshark reads all TCP and the flows are picked here instead.
_MAX_FILTER_CHARS = 100_000

#: RFC 9293 flags plus AE; tshark's tcp.flags also carries the 3 reserved bits.
_FLAG_MASK = 0x1FF

Value = int | str | bool | None


def known_equivalence(name: str, ours: dict[str, Value], theirs: dict[str, Value]) -> str | None:
    """Why two differing values mean the same thing, or None if they do not.

    Each case is a documented semantic difference between the schema and
    tshark, never a tolerance: the values must satisfy the exact relation.
    """
    if name == "ip_len" and ours["ip_v"] == 4 and ours["ip_len"] == 0:
        # TSO: the sender's NIC fills in the IPv4 total length, so the captured
        # header says 0.  PACKET_DTYPE keeps the header value (0); tshark shows
        # "Total Length: N (reported as 0, presumed ... TSO)", the frame's length.
        t_len, t_pay = theirs["ip_len"], theirs["payload_len"]
        if isinstance(t_len, int) and isinstance(t_pay, int) and \
                t_pay == ours["payload_len"] and 40 <= t_len - t_pay <= 120:
            return "ipv4-total-length-0-tso"
    return None


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field of one frame on which rstscope and tshark disagree."""

    frame: int
    field: str
    rstscope: Value
    tshark: Value

    def __str__(self) -> str:
        delta = ""
        if isinstance(self.rstscope, int) and isinstance(self.tshark, int) \
                and not isinstance(self.rstscope, bool):
            delta = f" (delta {self.tshark - self.rstscope:+d})"
        return (f"frame {self.frame}: {self.field}: rstscope={self.rstscope!r} "
                f"tshark={self.tshark!r}{delta}")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a cross-check; ``ok`` when nothing differs."""

    file: str
    tshark_file: str
    flows: int
    packets: int
    fields: tuple[str, ...]
    diffs: tuple[FieldDiff, ...]
    only_rstscope: tuple[int, ...]  # frames rstscope decoded that tshark did not show
    only_tshark: tuple[int, ...]  # frames of these flows tshark showed, rstscope did not
    tshark: str = ""
    by_field: dict[str, int] = field(default_factory=dict)
    equivalences: dict[str, int] = field(default_factory=dict)  # documented, not differences

    @property
    def ok(self) -> bool:
        return not (self.diffs or self.only_rstscope or self.only_tshark)

    def lines(self, max_diffs: int = 50) -> list[str]:
        """Human-readable report (a summary, then up to ``max_diffs`` differences)."""
        same = self.file == self.tshark_file
        out = [f"{self.file}: {self.flows} flow(s) with resets, {self.packets} packet(s), "
               f"{len(self.fields)} fields each, against {self.tshark or 'tshark'}"
               + ("" if same else f" reading {self.tshark_file}")]
        for name, n in sorted(self.equivalences.items()):
            out.append(f"NOTE {name}: {n} packet(s) differ only by this documented convention")
        if self.ok:
            out.append("OK: every compared field matches tshark")
            return out
        for name, n in sorted(self.by_field.items()):
            out.append(f"DIFF {name}: {n} packet(s)")
        if self.only_rstscope:
            out.append(f"ONLY IN RSTSCOPE: {len(self.only_rstscope)} frame(s), first "
                       f"{list(self.only_rstscope[:10])}")
        if self.only_tshark:
            out.append(f"ONLY IN TSHARK: {len(self.only_tshark)} frame(s), first "
                       f"{list(self.only_tshark[:10])}")
        out.extend(str(d) for d in self.diffs[:max_diffs])
        if len(self.diffs) > max_diffs:
            out.append(f"... {len(self.diffs) - max_diffs} more difference(s)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "tshark_file": self.tshark_file, "tshark": self.tshark,
            "flows": self.flows, "packets": self.packets, "fields": list(self.fields),
            "ok": self.ok, "by_field": dict(self.by_field),
            "equivalences": dict(self.equivalences),
            "only_rstscope": list(self.only_rstscope), "only_tshark": list(self.only_tshark),
            "diffs": [{"frame": d.frame, "field": d.field, "rstscope": d.rstscope,
                       "tshark": d.tshark} for d in self.diffs],
        }


def _num(text: str) -> int | None:
    if not text:
        return None
    return int(text, 16) if text.startswith("0x") else int(text)


def _addr(text: str) -> str:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true")


def tshark_record(cols: list[str]) -> dict[str, Value]:
    """One ``-T fields`` line (split on tabs) as rstscope column values."""
    f = dict(zip(TSHARK_FIELDS, cols + [""] * (len(TSHARK_FIELDS) - len(cols)), strict=True))
    # Tunnels (Teredo, 6in4, 4in6) carry both families; the one nearest TCP is inner.
    chain = [p for p in f["frame.protocols"].split(":") if p in ("ip", "ipv6")]
    v6 = chain[-1] == "ipv6" if chain else bool(f["ipv6.src"]) and not f["ip.src"]
    rec: dict[str, Value] = {
        "frame": int(f["frame.number"]),
        "ts_ns": epoch_ns(f["frame.time_epoch"]),
        "iface": _num(f["frame.interface_id"]) or 0,
        "ip_v": 6 if v6 else 4,
        "src": _addr(f["ipv6.src"] if v6 else f["ip.src"]),
        "dst": _addr(f["ipv6.dst"] if v6 else f["ip.dst"]),
        "ttl": _num(f["ipv6.hlim"] if v6 else f["ip.ttl"]),
        "ip_id": -1 if v6 else _num(f["ip.id"]),
        "df": False if v6 else _bool(f["ip.flags.df"]),
        "ip_len": ((_num(f["ipv6.plen"]) or 0) + 40) if v6 else _num(f["ip.len"]),
        "sport": _num(f["tcp.srcport"]),
        "dport": _num(f["tcp.dstport"]),
        "seq": _num(f["tcp.seq_raw"]),
        "ack": _num(f["tcp.ack_raw"]),
        "flags": (_num(f["tcp.flags"]) or 0) & _FLAG_MASK,
        "win": _num(f["tcp.window_size_value"]),
        "payload_len": _num(f["tcp.len"]),
        "mss": _num(f["tcp.options.mss_val"]) if f["tcp.options.mss_val"] else -1,
        "wscale": (_num(f["tcp.options.wscale.shift"])
                   if f["tcp.options.wscale.shift"] else -1),
        "sack_ok": bool(f["tcp.options.sack_perm"]),
        "tsval": (_num(f["tcp.options.timestamp.tsval"])
                  if f["tcp.options.timestamp.tsval"] else -1),
        "tsecr": (_num(f["tcp.options.timestamp.tsecr"])
                  if f["tcp.options.timestamp.tsecr"] else -1),
    }
    return rec


def rstscope_record(row: np.void) -> dict[str, Value]:
    """One PACKET_DTYPE row as comparable values (text addresses, masked flags)."""
    v = int(row["ip_v"])
    rec: dict[str, Value] = {}
    for name in COMPARED:
        if name in ("src", "dst"):
            rec[name] = _addr(addr_text(bytes(row[name]), v))
        elif name in ("df", "sack_ok"):
            rec[name] = bool(row[name])
        elif name == "flags":
            rec[name] = int(row[name]) & _FLAG_MASK
        else:
            rec[name] = int(row[name])
    return rec


def tshark_records(path: str, keys: Iterable[FlowKey]) -> dict[int, dict[str, Value]]:
    """tshark's view of every packet of these flows, by frame number."""
    tshark = find_tool("tshark")
    keyset = set(keys)
    # ICMP errors quote a TCP header that tshark dissects as tcp.*: not segments.
    flt = f"({display_filter(keyset)}) && !icmp && !icmpv6"
    if len(flt) > _MAX_FILTER_CHARS:
        flt = "tcp && !icmp && !icmpv6"
    argv = [tshark, "-n", "-r", path, "-Y", flt, "-T", "fields", "-E", "separator=/t",
            "-E", "occurrence=l", "-o", "tcp.analyze_sequence_numbers:FALSE"]
    for name in TSHARK_FIELDS:
        argv += ["-e", name]
    out: dict[int, dict[str, Value]] = {}
    for line in run_tool(argv, what="tshark").splitlines():
        if not line.strip():
            continue
        rec = tshark_record(line.split("\t"))
        key = FlowKey.of(str(rec["src"]), int(rec["sport"] or 0), str(rec["dst"]),
                         int(rec["dport"] or 0))
        if key in keyset:
            out[int(rec["frame"] or 0)] = rec
    return out


def verify_capture(path: str | os.PathLike[str], *,
                   against: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Compare rstscope's fields for ``path`` with tshark's for ``against`` (default: same file).

    ``against`` exists to prove the check can fail: give it a doctored copy
    (e.g. ``editcap -t 0.5``) and every shifted field is reported.
    """
    file = os.fspath(path)
    other = os.fspath(against) if against is not None else file
    for p in (file, other):
        if not os.path.exists(p):
            raise InputMissingError(f"{p}: no such file")
    find_tool("tshark")
    keys_by_file, rows_by_file = collect_rows(file)
    keys = keys_by_file.get(0, set())
    rows = rows_by_file.get(0)
    ours = {int(r["frame"]): rstscope_record(r) for r in rows} if rows is not None else {}
    theirs = tshark_records(other, keys) if keys else {}
    diffs: list[FieldDiff] = []
    by_field: dict[str, int] = {}
    equivalences: dict[str, int] = {}
    for frame in sorted(set(ours) & set(theirs)):
        a, b = ours[frame], theirs[frame]
        for name in COMPARED:
            if a[name] != b[name]:
                why = known_equivalence(name, a, b)
                if why is not None:
                    equivalences[why] = equivalences.get(why, 0) + 1
                    continue
                diffs.append(FieldDiff(frame, name, a[name], b[name]))
                by_field[name] = by_field.get(name, 0) + 1
    return VerifyReport(
        file=file, tshark_file=other, flows=len(keys), packets=len(ours),
        fields=COMPARED, diffs=tuple(diffs),
        only_rstscope=tuple(sorted(set(ours) - set(theirs))),
        only_tshark=tuple(sorted(set(theirs) - set(ours))),
        tshark=tshark_version(), by_field=by_field, equivalences=equivalences,
    )
