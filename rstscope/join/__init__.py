"""Two captures of one incident read as one story (``rstscope analyze A B --join``).

    from rstscope.join import join_files
    j = join_files("client.pcap", "server.pcap")   # = join(analyze(a), analyze(b))
    j.pairs          # DataFrame: one row per paired connection, with the story
    j.to_document()  # what --format json prints

Capture A is the one nearer the client, B the one nearer the server (the order
of the command line).  Pairing (:mod:`rstscope.join.pairing`) uses sequence
numbers, time and the sequence of exchanges, never addresses alone, so it works
across NAT and full proxies.  For each pair the story says where bytes stopped,
which capture saw a RST first, whether that RST crossed the other capture point,
and names causes that only the two views together show (proxy buffering: the
upstream was talking while the client heard nothing; a path-MTU black hole seen
from the client: the server's full-size segments never arrived).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rstscope.core.wording import everyday_advice, everyday_sentence
from rstscope.join.pairing import (
    NS,
    FlowView,
    Pair,
    clock_offset_ns,
    handshake_isns,
    pair_flows,
)
from rstscope.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.api import Analysis
    from rstscope.results import RecordSource

#: A client that received under this share of what the upstream sent "heard nothing".
BUFFERED_SHARE = 0.1
#: ...and the upstream sent at least this much meanwhile.
BUFFERED_MIN_BYTES = 200
#: Segments this large that never reached the other capture point are "full-size".
PMTU_MIN_PLEN = 1000


def flow_views(analysis: RecordSource) -> list[FlowView]:
    """Each flow of an analysis with its packets (re-read from the capture)."""
    flows = analysis.typed_flows()
    if not flows:
        return []
    pk = analysis.flow_packets.of_flows(flows)
    if len(pk) == 0:
        return []
    src = pk["src"].astype(str).to_numpy()
    dst = pk["dst"].astype(str).to_numpy()
    sport = pk["sport"].to_numpy().astype(np.int64)
    dport = pk["dport"].to_numpy().astype(np.int64)
    ts = pk["ts_ns"].to_numpy().astype(np.int64)
    groups: dict[tuple[str, int, str, int], list[int]] = {}
    for i, key in enumerate(zip(src.tolist(), sport.tolist(), dst.tolist(), dport.tolist(),
                                strict=True)):
        groups.setdefault(key, []).append(i)
    cols = {c: pk[c].to_numpy() for c in ("seq", "ack", "flags", "payload_len")}
    out = []
    for f in flows:
        fwd = groups.get((f.orig_h, f.orig_p, f.resp_h, f.resp_p), [])
        rev = groups.get((f.resp_h, f.resp_p, f.orig_h, f.orig_p), [])
        idx = np.array(sorted(fwd + rev), dtype=np.int64)
        if len(idx):
            idx = idx[(ts[idx] >= f.first_ts_ns) & (ts[idx] <= f.last_ts_ns)]
        d = np.array([0 if src[i] == f.orig_h and sport[i] == f.orig_p else 1 for i in idx],
                     dtype=np.int64)
        seq = cols["seq"][idx].astype(np.int64)
        flags = cols["flags"][idx].astype(np.int64)
        isn_o, isn_r = handshake_isns(d, flags, seq)
        out.append(FlowView(
            flow_id=f.flow_id, orig=(f.orig_h, f.orig_p), resp=(f.resp_h, f.resp_p),
            first_ns=f.first_ts_ns, last_ns=f.last_ts_ns, isn_orig=isn_o, isn_resp=isn_r,
            ts_ns=ts[idx], d=d, seq=seq, ack=cols["ack"][idx].astype(np.int64), flags=flags,
            plen=cols["payload_len"][idx].astype(np.int64)))
    return out


@dataclass(frozen=True, slots=True)
class PairStory:
    """One connection seen at both capture points."""

    a_flow: int
    b_flow: int
    how: str
    score: float
    why: str
    a_bytes: tuple[int, int]  # (client->server, server->client) payload at A
    b_bytes: tuple[int, int]
    bytes_stopped: str
    first_rst: str  # "A", "B" or "none"
    first_rst_ts_ns: int | None
    rst_crossed: str  # yes | no | n/a (proxied: two connections) | none
    cause_id: str | None  # a cause only the two views show
    cause: str
    advice: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((n, getattr(self, n)) for n in self.__slots__)}


@dataclass
class JoinResult:
    """The pairs of two analyses and their stories."""

    a: Analysis
    b: Analysis
    stories: list[PairStory]
    unpaired_a: list[int]
    unpaired_b: list[int]
    clock_offset_s: float
    _views: dict[str, dict[int, FlowView]] = field(default_factory=dict, repr=False)

    @property
    def pairs(self) -> pd.DataFrame:
        import pandas as pd  # lazy: pandas only for the DataFrame view

        return pd.DataFrame([s.to_dict() for s in self.stories],
                            columns=list(PairStory.__slots__))

    def to_document(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "join": {"a": self.a.file, "b": self.b.file,
                     "clock_offset_s": round(self.clock_offset_s, 6),
                     "pairs": [s.to_dict() for s in self.stories],
                     "unpaired_a": self.unpaired_a, "unpaired_b": self.unpaired_b},
            "a": self.a.to_document(),
            "b": self.b.to_document(),
        }

    def lines(self) -> list[str]:
        """The human report of the join (one block per pair)."""
        out = [f"join: A = {self.a.file}", f"      B = {self.b.file}",
               f"pairs: {len(self.stories)}   unpaired: A {len(self.unpaired_a)}, "
               f"B {len(self.unpaired_b)}   clock offset {self.clock_offset_s:+.3f} s"]
        for s in self.stories:
            out.append(f"A flow {s.a_flow} <-> B flow {s.b_flow}  ({s.how}: {s.why})")
            out.append(f"  bytes c->s A {s.a_bytes[0]} / B {s.b_bytes[0]},  s->c A "
                       f"{s.a_bytes[1]} / B {s.b_bytes[1]}: {s.bytes_stopped}")
            if s.first_rst != "none":
                out.append(f"  first RST seen at {s.first_rst}; crossed the other point: "
                           f"{s.rst_crossed}")
            if s.cause_id:
                out.append(f"  [{s.cause_id}] {s.cause}")
        for side, ids in (("A", self.unpaired_a), ("B", self.unpaired_b)):
            for fid in ids:
                out.append(f"{side} flow {fid}: no counterpart (it never reached the other "
                           "capture point, or it was not captured there)")
        return out


def _bytes_story(how: str, a: FlowView, b: FlowView) -> str:
    (ao, ar), (bo, br) = a.bytes, b.bytes
    parts = []
    exact = how != "proxied"
    if br > ar and (exact or (br - ar > 1000 and ar < 0.5 * br)):
        parts.append(f"{br - ar} bytes the server side sent (at B) never reached A")
    if ao > bo and (exact or (ao - bo > 1000 and bo < 0.5 * ao)):
        parts.append(f"{ao - bo} bytes the client sent (at A) never reached B")
    if parts:
        return "; ".join(parts)
    if not exact:
        return "no bytes clearly lost (a proxy re-encrypts, so sizes compare only roughly)"
    return "every byte seen at one point was seen at the other"


def _rst_story(how: str, a: FlowView, b: FlowView, offset_ns: int) -> tuple[str, int | None, str]:
    ra, rb = a.rst_keys(), b.rst_keys()
    if not ra and not rb:
        return "none", None, "none"
    first_a = min((r[0] for r in ra), default=None)
    first_b = min((r[0] - offset_ns for r in rb), default=None)
    if first_b is None or (first_a is not None and first_a <= first_b):
        first, ts = "A", first_a
    else:
        first, ts = "B", first_b
    if how == "proxied":
        return first, ts, "n/a"
    mine, other = (ra, rb) if first == "A" else (rb, ra)
    r0 = min(mine)
    crossed = any(o[2] == r0[2] for o in other)  # NAT rewrites addresses, never seq
    return first, ts, "yes" if crossed else "no"


def _joined_cause(how: str, a: FlowView, b: FlowView, offset_ns: int
                  ) -> tuple[str | None, dict[str, object]]:
    # Proxy buffering: while the client waited (after its last request and the last
    # data it got, up to its own close) the upstream kept sending and the client
    # received (almost) nothing.  (A buffering proxy may have passed earlier data on
    # in whole-buffer bursts: the silence that ended the connection is what counts.)
    if how == "proxied":
        req = a.ts_ns[(a.d == 0) & (a.plen > 0)]
        if len(req):
            got = a.ts_ns[(a.d == 1) & (a.plen > 0) & (a.ts_ns > int(req[-1]))]
            t0 = max(int(req[-1]), int(got[-1]) if len(got) else 0)
            t1 = a.last_ns
            got_a = int(a.plen[(a.d == 1) & (a.ts_ns > t0)].sum())
            bt = b.ts_ns - offset_ns
            sent_b = int(b.plen[(b.d == 1) & (bt > t0) & (bt <= t1)].sum())
            if sent_b >= BUFFERED_MIN_BYTES and got_a <= BUFFERED_SHARE * sent_b:
                return "proxy-buffering", {"upstream_bytes": sent_b,
                                           "silence_s": (t1 - t0) / NS}
    # Path-MTU black hole seen from both ends: large server segments at B whose
    # sequence numbers never show up at A, while smaller ones do.
    if how != "proxied":
        seen_a = set(a.seq[(a.d == 1) & (a.plen > 0)].tolist())
        m = (b.d == 1) & (b.plen > 0)
        lost = [int(p) for s, p in zip(b.seq[m].tolist(), b.plen[m].tolist(), strict=True)
                if s not in seen_a]
        got = [int(p) for s, p in zip(b.seq[m].tolist(), b.plen[m].tolist(), strict=True)
               if s in seen_a]
        if lost and min(lost) >= PMTU_MIN_PLEN and got and max(got) < min(lost):
            big = tuple(sorted(set(lost)))
            rx = len(lost) - len(set(b.seq[m][[s not in seen_a for s in b.seq[m].tolist()]]
                                     .tolist()))
            return "pmtu-blackhole", {"stuck": big[:4], "rx": rx, "through": max(got)}
    return None, {}


def join(a: Analysis, b: Analysis) -> JoinResult:
    """Pair the connections of ``a`` (near the client) with those of ``b`` (near the server)."""
    va, vb = flow_views(a), flow_views(b)
    pairs: list[Pair] = pair_flows(va, vb)
    ia = {v.flow_id: v for v in va}
    ib = {v.flow_id: v for v in vb}
    same = [(ia[p.a], ib[p.b]) for p in pairs if p.how == "same-connection"]
    offset = clock_offset_ns(same)
    stories = []
    for p in pairs:
        fa, fb = ia[p.a], ib[p.b]
        first, ts, crossed = _rst_story(p.how, fa, fb, offset)
        cid, facts = _joined_cause(p.how, fa, fb, offset)
        stories.append(PairStory(
            a_flow=p.a, b_flow=p.b, how=p.how, score=p.score, why=p.why,
            a_bytes=fa.bytes, b_bytes=fb.bytes, bytes_stopped=_bytes_story(p.how, fa, fb),
            first_rst=first, first_rst_ts_ns=ts, rst_crossed=crossed, cause_id=cid,
            cause=everyday_sentence(cid, facts) if cid else "",
            advice=everyday_advice(cid, facts) if cid else ()))
    paired_a = {p.a for p in pairs}
    paired_b = {p.b for p in pairs}
    return JoinResult(a=a, b=b, stories=stories,
                      unpaired_a=sorted(set(ia) - paired_a), unpaired_b=sorted(set(ib) - paired_b),
                      clock_offset_s=offset / NS, _views={"a": ia, "b": ib})


def join_files(a: Any, b: Any, **analyze_kw: Any) -> JoinResult:
    """``join(analyze(a), analyze(b))``: the notebook one-liner for two capture paths."""
    from rstscope.api import analyze  # lazy: rstscope.api loads pandas

    return join(analyze(a, **analyze_kw), analyze(b, **analyze_kw))


__all__ = ["JoinResult", "PairStory", "flow_views", "join", "join_files"]
