"""Pair the connections of two captures of one incident (pure: arrays in, pairs out).

Each connection seen at capture point A is paired with its counterpart at point
B *by what it carried*, not by its addresses, which NAT and full proxies rewrite:

1. **Same TCP connection** (routers, NAT, L4 balancers): the initial sequence
   numbers of both sides survive address rewriting, so equal ISN pairs identify
   the connection exactly.  A flow without a handshake (a NAT rebinding that
   moved the connection to a new port) is matched to the connection whose
   sequence space it continues.
2. **Two connections joined by a full proxy** (haproxy, nginx): nothing on the
   wire is shared, so candidates are scored by time (the upstream connection
   lives inside the client's, shifted by the clock offset), by the sequence of
   exchanges (the request goes up, the response comes back, in bursts of similar
   sizes) and by their overlap; pairs are chosen greedily, best score first, one
   to one, above :data:`MIN_SCORE`.  A proxy that relays TCP without rewriting
   (haproxy in TCP mode) forwards each segment as it comes: a segment of the same
   size shows up at the other point right after.  Those echoes
   (:func:`relay_echoes`) add to the score; they tell apart connections that
   look alike, e.g. ones a proxy took from its accept queue in order.

The clock offset between the two captures is estimated from the same-connection
pairs (their SYNs are one path apart) and is 0 when there are none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rstscope.schema import TH_ACK, TH_RST, TH_SYN

NS = 1_000_000_000
SEQ_MOD = 1 << 32
#: Proxy pairs below this score stay unpaired (an honest "no counterpart").
MIN_SCORE = 0.35
#: A proxied (upstream) connection may start this long before / after the client's.
PROXY_LEAD_S = 0.5
PROXY_LAG_S = 30.0
#: A relayed server->client segment reaches the client-side point within this long;
#: a client->server one may wait up to PROXY_LAG_S (in a proxy's accept queue).
RELAY_DOWN_LAG_S = 1.0
#: Payload segments per connection looked at for echoes (enough to tell; bounded cost).
RELAY_MAX_SEGMENTS = 64
#: Weight of the echo share in a proxied pair's score (a bonus: no echoes, no change).
RELAY_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class FlowView:
    """One connection at one capture point: its record and its packets."""

    flow_id: int
    orig: tuple[str, int]
    resp: tuple[str, int]
    first_ns: int
    last_ns: int
    isn_orig: int | None  # SYN's sequence number
    isn_resp: int | None  # SYN/ACK's sequence number
    ts_ns: np.ndarray  # per packet, in capture order
    d: np.ndarray  # 0 orig -> resp, 1 resp -> orig
    seq: np.ndarray
    ack: np.ndarray
    flags: np.ndarray
    plen: np.ndarray

    @property
    def bytes(self) -> tuple[int, int]:
        return (int(self.plen[self.d == 0].sum()), int(self.plen[self.d == 1].sum()))

    def exchanges(self) -> list[tuple[int, int]]:
        """Payload bursts: (direction, bytes) for each run of payload one way."""
        out: list[tuple[int, int]] = []
        for d, n in zip(self.d[self.plen > 0].tolist(), self.plen[self.plen > 0].tolist(),
                        strict=True):
            if out and out[-1][0] == d:
                out[-1] = (d, out[-1][1] + n)
            else:
                out.append((d, n))
        return out

    def seq_range(self, d: int) -> tuple[int, int] | None:
        """(first seq, end) of direction ``d``'s payload, unwrapped from its first seq."""
        m = (self.d == d) & (self.plen > 0)
        if not m.any():
            return None
        base = int(self.seq[m][0])
        rel = (self.seq[m].astype(np.int64) - base) % SEQ_MOD
        return base, int((rel + self.plen[m]).max())

    def rst_keys(self) -> list[tuple[int, int, int, int]]:
        """(ts_ns, direction, seq, ack) of each RST."""
        m = (self.flags & TH_RST) != 0
        return list(zip(self.ts_ns[m].tolist(), self.d[m].tolist(), self.seq[m].tolist(),
                        self.ack[m].tolist(), strict=True))


@dataclass(frozen=True, slots=True)
class Pair:
    a: int  # flow id at capture A
    b: int  # flow id at capture B
    how: str  # same-connection | continuation | proxied
    score: float
    why: str


def _isn(view: FlowView) -> tuple[int | None, int | None]:
    return view.isn_orig, view.isn_resp


def _seq_continues(x: FlowView, y: FlowView) -> bool:
    """``y`` (no handshake) carries data inside ``x``'s sequence space, both ways."""
    for d in (0, 1):
        rx, ry = x.seq_range(d), y.seq_range(d)
        if ry is None:
            continue
        if rx is None:
            return False
        off = (ry[0] - rx[0]) % SEQ_MOD
        if off > rx[1] + (1 << 20):
            return False
    return x.seq_range(0) is not None or x.seq_range(1) is not None


def clock_offset_ns(pairs: Sequence[tuple[FlowView, FlowView]]) -> int:
    """Clock offset (B - A) from same-connection pairs.

    A packet toward the server shows up at A, then at B (+ path delay); one toward
    the client at B, then at A.  The mean of the two directions' differences
    cancels the path delay (NTP's reasoning); the median over pairs resists outliers."""
    diffs = []
    for a, b in pairs:
        per_dir = []
        for d in (0, 1):
            ta, tb = a.ts_ns[a.d == d], b.ts_ns[b.d == d]
            if len(ta) and len(tb):
                per_dir.append(int(tb[0]) - int(ta[0]))
        if len(per_dir) == 2:
            diffs.append((per_dir[0] + per_dir[1]) / 2)
        elif per_dir:
            diffs.append(per_dir[0])
    return int(np.median(diffs)) if diffs else 0


def _shape_similarity(a: FlowView, b: FlowView) -> float:
    """0..1: how alike the two connections' exchange sequences are.

    A full proxy re-encrypts and rewrites headers, so sizes differ by a margin;
    what survives is the order of who speaks and the rough size of each burst."""
    ea, eb = a.exchanges(), b.exchanges()
    if not ea or not eb:
        return 0.0
    n = min(len(ea), len(eb), 12)
    same_dir = sum(1 for i in range(n) if ea[i][0] == eb[i][0])
    ratios = []
    for d in (0, 1):
        ba, bb = a.bytes[d], b.bytes[d]
        if ba or bb:
            ratios.append(min(ba, bb) / max(ba, bb))
    size = float(np.mean(ratios)) if ratios else 0.0
    return 0.5 * same_dir / n + 0.5 * size


def _time_score(a: FlowView, b: FlowView, offset_ns: int) -> float:
    """0..1: the upstream connection starts near (usually just after) the client's
    and lives inside it; 0 outside the plausible window."""
    start = (b.first_ns - offset_ns - a.first_ns) / NS
    if not -PROXY_LEAD_S <= start <= PROXY_LAG_S:
        return 0.0
    lo = max(a.first_ns, b.first_ns - offset_ns)
    hi = min(a.last_ns, b.last_ns - offset_ns)
    span = max(1, min(a.last_ns - a.first_ns, b.last_ns - b.first_ns))
    overlap = max(0.0, (hi - lo) / span)
    near = 1.0 / (1.0 + abs(start) / 0.05)  # 50 ms: a proxy connects upstream quickly
    return 0.5 * min(overlap, 1.0) + 0.5 * near


def _segments(views: Sequence[FlowView], d: int) -> list[tuple[int, int, int]]:
    """(ts_ns, size, flow id) of the first payload segments of direction ``d``."""
    out: list[tuple[int, int, int]] = []
    for v in views:
        m = (v.d == d) & (v.plen > 0)
        for t, n in list(zip(v.ts_ns[m].tolist(), v.plen[m].tolist(),
                             strict=True))[:RELAY_MAX_SEGMENTS]:
            out.append((int(t), int(n), v.flow_id))
    return sorted(out)


def relay_echoes(side_a: Sequence[FlowView], side_b: Sequence[FlowView],
                 offset_ns: int) -> dict[tuple[int, int], int]:
    """Segments relayed unchanged: (A flow, B flow) -> how many.

    Each segment is matched, in time order and one to one, with the earliest
    not-yet-matched segment of the same size and direction at the other point that
    comes after it: client->server from A to B (within PROXY_LAG_S), server->client
    from B to A (within RELAY_DOWN_LAG_S).  Time order keeps a queue's order."""
    out: dict[tuple[int, int], int] = {}
    for d, src, dst, shift, lag_s in ((0, side_a, side_b, offset_ns, PROXY_LAG_S),
                                      (1, side_b, side_a, -offset_ns, RELAY_DOWN_LAG_S)):
        waiting: dict[int, list[tuple[int, int]]] = {}
        for t, n, fid in _segments(dst, d):
            waiting.setdefault(n, []).append((t, fid))
        taken: dict[int, int] = {}  # size -> index of the first unmatched candidate
        for t, n, fid in _segments(src, d):
            cands = waiting.get(n)
            if not cands:
                continue
            t0 = t + shift
            i = taken.get(n, 0)
            while i < len(cands) and cands[i][0] < t0:
                i += 1
            if i < len(cands) and cands[i][0] - t0 <= lag_s * NS:
                other = cands[i][1]
                key = (fid, other) if d == 0 else (other, fid)
                out[key] = out.get(key, 0) + 1
                # Consume it: later segments look further on (one to one, in order).
                cands.pop(i)
                taken[n] = i
    return out


def _payload_count(v: FlowView) -> int:
    return min(int((v.plen[v.d == 0] > 0).sum()), RELAY_MAX_SEGMENTS) + min(
        int((v.plen[v.d == 1] > 0).sum()), RELAY_MAX_SEGMENTS)


def pair_flows(side_a: Sequence[FlowView], side_b: Sequence[FlowView]) -> list[Pair]:
    """One-to-one pairs of connections (see the module doc)."""
    pairs: list[Pair] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    # 1. Same connection: equal ISNs on both sides of the handshake.
    by_isn: dict[tuple[int | None, int | None], list[FlowView]] = {}
    for b in side_b:
        if b.isn_orig is not None:
            by_isn.setdefault(_isn(b), []).append(b)
    same: list[tuple[FlowView, FlowView]] = []
    for a in side_a:
        if a.isn_orig is None:
            continue
        cands = [b for b in by_isn.get(_isn(a), []) if b.flow_id not in used_b]
        if not cands and a.isn_resp is None:  # SYN only: match on the SYN's ISN alone
            cands = [b for b in side_b if b.isn_orig == a.isn_orig and b.flow_id not in used_b]
        if cands:
            b = min(cands, key=lambda x: abs(x.first_ns - a.first_ns))
            pairs.append(Pair(a.flow_id, b.flow_id, "same-connection", 1.0,
                              f"same initial sequence numbers ({a.isn_orig}, {a.isn_resp})"))
            used_a.add(a.flow_id)
            used_b.add(b.flow_id)
            same.append((a, b))
    offset = clock_offset_ns(same)
    # 2. Continuations: a flow without handshake inside a paired flow's sequence space.
    views_a = {v.flow_id: v for v in side_a}
    views_b = {v.flow_id: v for v in side_b}
    for x_side, y_side, used_y, flip in ((side_a, side_b, used_b, False),
                                         (side_b, side_a, used_a, True)):
        for y in y_side:
            if y.flow_id in used_y or y.isn_orig is not None:
                continue
            for p in pairs:
                x = views_a[p.a] if not flip else views_b[p.b]
                if x in x_side and p.how == "same-connection" and _seq_continues(x, y):
                    a_id, b_id = (p.a, y.flow_id) if not flip else (y.flow_id, p.b)
                    pairs.append(Pair(a_id, b_id, "continuation", 0.9,
                                      "no handshake; carries the paired connection's sequence "
                                      "numbers from a new address/port (NAT rebinding)"))
                    used_y.add(y.flow_id)
                    break
    # 3. Proxied: score the rest by time and exchange shape, greedy one to one.
    scored: list[tuple[float, int, int, str]] = []
    rest_a = [a for a in side_a if a.flow_id not in used_a]
    rest_b = [b for b in side_b if b.flow_id not in used_b]
    echoes = relay_echoes(rest_a, rest_b, offset)
    for a in rest_a:
        for b in rest_b:
            t = _time_score(a, b, offset)
            if t == 0.0:
                continue
            s = _shape_similarity(a, b)
            e = echoes.get((a.flow_id, b.flow_id), 0)
            relay = min(1.0, e / max(1, min(_payload_count(a), _payload_count(b))))
            score = 0.6 * t + 0.4 * s + RELAY_WEIGHT * relay
            why = f"time {t:.2f}, exchanges {s:.2f}"
            if e:
                why += f", {e} segments relayed unchanged"
            scored.append((score, a.flow_id, b.flow_id,
                          f"{why} (offset {offset / NS:+.3f} s)"))
    for score, a_id, b_id, why in sorted(scored, key=lambda c: -c[0]):
        if score < MIN_SCORE or a_id in used_a or b_id in used_b:
            continue
        # (Ranked on the sum; reported on the documented 0..1 scale.)
        pairs.append(Pair(a_id, b_id, "proxied", round(min(score, 1.0), 3), why))
        used_a.add(a_id)
        used_b.add(b_id)
    return sorted(pairs, key=lambda p: (p.a, p.b))


def handshake_isns(d: np.ndarray, flags: np.ndarray, seq: np.ndarray) -> tuple[int | None, int | None]:
    syn = (flags & (TH_SYN | TH_ACK)) == TH_SYN
    synack = (flags & (TH_SYN | TH_ACK)) == (TH_SYN | TH_ACK)
    o = seq[syn & (d == 0)]
    r = seq[synack & (d == 1)]
    return (int(o[0]) if len(o) else None, int(r[0]) if len(r) else None)


__all__ = ["FlowView", "Pair", "clock_offset_ns", "handshake_isns", "pair_flows"]
