"""Wire twins: labelled RSTs whose captures show the same evidence but whose truths differ.

A *wire signature* describes one RST from its capture alone, read with dpkt and
never through the classifier (only the TTL arithmetic of ``rstscope.core.ttl`` and
the timeout catalog are shared):

* ``vantage``: which ends' first packets arrive undecremented (64/128/255): the
  capture host (``client``, ``server``), both (a shared link), or neither;
* ``seq``: the flow's packets up to the RST, each as a token: who sent it (``c``/``s``),
  its TCP flags (SYN, FIN, RST, ACK; PSH and the ECN bits are stack habits), its
  payload class (none, ``:s`` 1–64 bytes – TLS alerts, keep-alive probes –, ``:d``
  data), its TTL against its sender's first packet (same, ``~`` one hop off, ``<``
  nearer, ``>`` farther, ``x`` another initial TTL, ``?`` no packet of the sender's
  to compare), its IP-ID class (IPv4: ``z`` zero, ``+`` its sender's counter
  advanced by 1–64, ``r`` the peer's last IP ID, ``=`` unchanged, ``o`` anything
  else, ``n`` a first nonzero ID) and, when at least 1 s of silence came before it,
  that silence as the catalog categories whose rows match it (``…`` 1–5 s, below
  any timeout the catalog is matched against).  A run of identical tokens is one
  token with ``*``: how many segments a response took is not evidence.  ``tail``
  repeats the last four tokens, so that a coarser signature without ``seq``
  (``--without seq``) still holds what came right before the RST;
* ``rst``: the RST's own class: initial TTL, hops from the capture point (0, 1,
  2+), where the TTLs place it on the path when baselines exist (``edge``: 1 hop
  from the client, ``near-server``: 1 hop before the server, ``server-half`` /
  ``client-half``: mid-path, ``end``: at an endpoint's distance), its sequence
  number (``exact``, ``in-window``, ``out-of-window``, ``unknown``) and window
  (``w0`` zero, ``w=`` the trigger's, ``w+`` another);
* ``trigger``: the packet it answered, if the last packet came from the peer, with
  the delay against the round trip to the claimed sender (``fast`` below half of
  it, ``rtt`` within it, ``late``: no trigger), and the ``silence`` before that
  trigger (or before the RST) as catalog categories (``!`` marks rows whose
  expiry behaviour produces this kind of RST);
* ``after``: the tokens of the flow's packets in the 0.5 s after the RST (races,
  the reverse RST of a box that resets both ends, bursts).

RSTs with one signature and several truths are *wire twins*: no rule reading this
evidence can be right for all of them.  The *ceiling* is the best accuracy any
decision on the signature can reach: per signature, the count of its most common
truth, summed, over all RSTs.
"""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dpkt

from rstscope.catalog import make_config
from rstscope.core.timeouts import match_gap
from rstscope.core.ttl import hops, initial_ttl

#: The catalog's categories by the origin they stand for (as verdicts name them):
#: which *kinds* of device a silence fits is the evidence; which of a kind's
#: categories (proxy or CDN, firewall or NAT) is the lab's draw of a timeout.
CATEGORY = {"load-balancer": "lb", "proxy": "lb", "cdn": "lb", "firewall": "fw",
            "nat": "fw", "server": "end", "client": "end"}
SETTLE_S = 0.5  # what the classifier waits for after a RST, too
TAIL = 4  # packets before the RST that ``Signature.tail`` keeps
FLAG_LETTERS = ((dpkt.tcp.TH_SYN, "S"), (dpkt.tcp.TH_FIN, "F"), (dpkt.tcp.TH_RST, "R"),
                (dpkt.tcp.TH_ACK, "A"))


@dataclass(frozen=True, slots=True)
class Pkt:
    """One TCP segment of the RST's flow, as the wire shows it."""

    frame: int
    ts_s: float
    from_client: bool
    flags: int
    payload_len: int
    ttl: int
    ip_id: int  # -1 for IPv6
    seq: int
    ack: int
    win: int
    wscale: int  # from a SYN's options, -1 otherwise


@dataclass(frozen=True, slots=True)
class Signature:
    """The evidence one RST's capture holds, in classes (see the module's doc)."""

    vantage: str
    seq: tuple[str, ...]
    tail: tuple[str, ...]  # the last TAIL tokens of ``seq`` (the whole of it decides: a
    #                         coarser signature leaves ``seq`` out and keeps this)
    rst: str  # the RST's token
    ttl_class: str  # its initial TTL
    hops: str  # routers from the capture point: 0, 1, 2+
    position: str  # where the TTLs place it
    rst_seq: str
    rst_win: str
    trigger: str
    silence: str
    after: tuple[str, ...]

    def key(self, without: frozenset[str] = frozenset()) -> str:
        """The signature as one string, leaving out the fields named in ``without``."""
        parts = []
        for name in FIELDS:
            if name in without:
                continue
            v = getattr(self, name)
            parts.append(f"{name}={' '.join(v) if isinstance(v, tuple) else v}")
        return " | ".join(parts)


FIELDS: tuple[str, ...] = ("vantage", "seq", "tail", "rst", "ttl_class", "hops", "position", "rst_seq",
                           "rst_win", "trigger", "silence", "after")


def _endpoints(ip: Any, tcp: Any) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    return (bytes(ip.src), tcp.sport), (bytes(ip.dst), tcp.dport)


def _payload_len(ip: Any, tcp: Any) -> int:
    if isinstance(ip, dpkt.ip6.IP6):
        return max(int(ip.plen) - 4 * int(tcp.off), 0)
    return max(int(ip.len) - 4 * int(ip.hl) - 4 * int(tcp.off), 0)


def _wscale(tcp: Any) -> int:
    if not tcp.flags & dpkt.tcp.TH_SYN:
        return -1
    for kind, data in dpkt.tcp.parse_opts(tcp.opts):
        if kind == dpkt.tcp.TCP_OPT_WSCALE and data:
            return int(data[0])
    return -1


def _tcp_rows(pcap: Path) -> Iterable[tuple[int, float, tuple[Any, ...], Any, Any]]:
    """(frame, time, endpoints, IP, TCP) of every TCP segment of a pcap or pcapng file
    (gzipped or not) on Ethernet, Linux cooked (v1), BSD loopback or raw IP."""
    opener: Any = gzip.open if pcap.suffix == ".gz" else open
    with opener(pcap, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        reader: Any = (dpkt.pcapng.Reader(fh) if head == b"\x0a\x0d\x0d\x0a"
                       else dpkt.pcap.Reader(fh))
        dlt = reader.datalink()
        for n, (ts, buf) in enumerate(reader, start=1):
            try:
                ip: Any = (dpkt.ethernet.Ethernet(buf).data if dlt == dpkt.pcap.DLT_EN10MB
                           else dpkt.sll.SLL(buf).data if dlt == dpkt.pcap.DLT_LINUX_SLL
                           else dpkt.loopback.Loopback(buf).data if dlt == dpkt.pcap.DLT_NULL
                           else dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf))
            except (dpkt.UnpackError, IndexError):
                continue
            tcp = getattr(ip, "data", None)
            if isinstance(tcp, dpkt.tcp.TCP) and isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                yield n, float(ts), _endpoints(ip, tcp), ip, tcp


def read_flow(pcap: Path, frame: int) -> tuple[list[Pkt], int]:
    """The packets of the flow of the RST at ``frame`` (the whole capture's worth, in
    capture order) and the RST's index among them."""
    rows = [r for r in _tcp_rows(pcap)]
    at = next(i for i, r in enumerate(rows) if r[0] == frame)
    key = frozenset(rows[at][2])
    flow = [r for r in rows if frozenset(r[2]) == key]
    syn = next((r for r in flow if r[4].flags & dpkt.tcp.TH_SYN
                and not r[4].flags & dpkt.tcp.TH_ACK), None)
    synack = next((r for r in flow if r[4].flags & dpkt.tcp.TH_SYN
                   and r[4].flags & dpkt.tcp.TH_ACK), None)
    client = (syn[2][0] if syn else synack[2][1] if synack else flow[0][2][0])
    out = [Pkt(n, ts, ends[0] == client, int(tcp.flags), _payload_len(ip, tcp),
               int(ip.hlim if isinstance(ip, dpkt.ip6.IP6) else ip.ttl),
               -1 if isinstance(ip, dpkt.ip6.IP6) else int(ip.id), int(tcp.seq), int(tcp.ack),
               int(tcp.win), _wscale(tcp))
           for n, ts, ends, ip, tcp in flow]
    return out, next(i for i, p in enumerate(out) if p.frame == frame)


def _flags(p: Pkt) -> str:
    return "".join(c for bit, c in FLAG_LETTERS if p.flags & bit) or "-"


def _size(p: Pkt) -> str:
    return "" if p.payload_len == 0 else ":s" if p.payload_len <= 64 else ":d"


def _ttl_class(ttl: int, base: int | None) -> str:
    if base is None:
        return "?"
    if initial_ttl(ttl) != initial_ttl(base):
        return "x"
    d = hops(ttl) - hops(base)
    return "" if d == 0 else "~" if abs(d) == 1 else "<" if d < 0 else ">"


def _ipid_class(p: Pkt, prev_own: Pkt | None, last_peer: Pkt | None) -> str:
    if p.ip_id < 0:
        return ""
    if p.ip_id == 0:
        return "z"
    if last_peer is not None and last_peer.ip_id == p.ip_id:
        return "r"
    if prev_own is None or prev_own.ip_id < 0:
        return "n"
    step = (p.ip_id - prev_own.ip_id) & 0xFFFF
    return "=" if step == 0 else "+" if step <= 64 else "o"


def _categories(gap_s: float, *, triggered: bool | None, bidirectional: bool) -> str:
    """The catalog categories whose rows match a silence (``!``: the row's expiry
    behaviour produces this kind of RST; only when ``triggered`` is known)."""
    if gap_s < 1.0:
        return "<1s"
    if gap_s < 5.0:
        return "…"
    cats: set[str] = set()
    for m in match_gap(_CFG, gap_s, triggered=bool(triggered), bidirectional=bidirectional):
        name = CATEGORY.get(m.entry.category, m.entry.category)
        cats.add(name + ("!" if m.fits and triggered is not None else ""))
    return "…[" + ",".join(sorted(cats)) + "]"


_CFG = make_config()


def _collapse(tokens: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for t in tokens:
        if out and out[-1].rstrip("*") == t:
            out[-1] = t + "*"
        else:
            out.append(t)
    return tuple(out)


def _position(rst: Pkt, client_hops: int | None, server_hops: int | None) -> str:
    h = hops(rst.ttl)
    if rst.from_client:
        from_client = max(client_hops - h, 0) if client_hops is not None else None
        to_server = server_hops + 1 + h if server_hops is not None else None
    else:
        from_client = client_hops + 1 + h if client_hops is not None else None
        to_server = max(server_hops - h, 0) if server_hops is not None else None
    if from_client == 0 or to_server == 0:
        return "end"
    marks = []
    if from_client == 1:
        marks.append("edge")
    if to_server == 1:
        marks.append("near-server")
    if marks:
        return "+".join(marks)
    if from_client is None or to_server is None:
        return "?"
    return "server-half" if to_server < from_client else "client-half"


def signature(pcap: Path, frame: int) -> Signature:
    """The wire signature of the RST at ``frame`` of ``pcap``."""
    pkts, at = read_flow(pcap, frame)
    rst = pkts[at]
    before = pkts[:at]
    first: dict[bool, Pkt] = {}
    for p in before:
        if not p.flags & dpkt.tcp.TH_RST:
            first.setdefault(p.from_client, p)
    local = {side: p is not None and hops(p.ttl) == 0
             for side, p in ((True, first.get(True)), (False, first.get(False)))}
    vantage = ("both-ends-local" if local[True] and local[False] else "client" if local[True]
               else "server" if local[False] else "middle")
    # per-packet tokens
    tokens: list[str] = []
    prev: dict[bool, Pkt] = {}
    last_peer: dict[bool, Pkt] = {}
    for i, p in enumerate(pkts[:at + 1]):
        base = first.get(p.from_client)
        gap = p.ts_s - pkts[i - 1].ts_s if i else 0.0
        mark = "" if gap < 1.0 else _categories(gap, triggered=None, bidirectional=False) + " "
        tok = (f"{mark}{'c' if p.from_client else 's'}{_flags(p)}{_size(p)}"
               f"{_ttl_class(p.ttl, base.ttl if base else None)}"
               f"{_ipid_class(p, prev.get(p.from_client), last_peer.get(p.from_client))}")
        if i < at:
            tokens.append(tok)
        else:
            rst_tok = tok
        prev[p.from_client] = p
        last_peer[not p.from_client] = p
    # the RST's place
    c_first, s_first = first.get(True), first.get(False)
    client_hops = (hops(c_first.ttl) if c_first else 0 if vantage == "client" else None)
    server_hops = (hops(s_first.ttl) if s_first else 0 if vantage == "server" else None)
    h = hops(rst.ttl)
    # its sequence number and window
    sender = [p for p in before if p.from_client == rst.from_client]
    receiver = [p for p in before if p.from_client != rst.from_client]
    refs = []
    if sender:
        refs.append(max(((p.seq + p.payload_len + bool(p.flags & dpkt.tcp.TH_SYN)
                          + bool(p.flags & dpkt.tcp.TH_FIN)) % (1 << 32)) for p in sender))
    last_r = receiver[-1] if receiver else None
    if last_r is not None and last_r.flags & dpkt.tcp.TH_ACK:
        refs.append(last_r.ack)
    if not refs:
        seq_cls = "unknown"
    elif rst.seq in refs:
        seq_cls = "exact"
    else:
        scale = next((p.wscale for p in receiver if p.wscale >= 0), 0)
        win = (last_r.win if last_r else 65535) << scale
        delta = (rst.seq - refs[-1]) % (1 << 32)
        seq_cls = "in-window" if delta < max(win, 1) else "out-of-window"
    prior = pkts[at - 1] if at else None
    win_cls = ("w0" if rst.win == 0 else "w=" if prior and prior.from_client != rst.from_client
               and prior.win == rst.win else "w+")
    # the trigger and the silence
    triggered = False
    trig = "none"  # the RST followed its sender's own packet (or nothing)
    if prior is not None and prior.from_client != rst.from_client:
        syn = next((p for p in before if p.flags & dpkt.tcp.TH_SYN and p.from_client), None)
        synack = next((p for p in before if p.flags & dpkt.tcp.TH_SYN and not p.from_client),
                      None)
        ack3 = next((p for p in before if p.from_client and synack is not None
                     and p.ts_s >= synack.ts_s and not p.flags & dpkt.tcp.TH_SYN), None)
        rtt: float | None = None
        if rst.from_client and synack is not None and ack3 is not None:
            rtt = ack3.ts_s - synack.ts_s
        elif not rst.from_client and syn is not None and synack is not None:
            rtt = synack.ts_s - syn.ts_s
        latency = rst.ts_s - prior.ts_s
        limit = max(2 * rtt, rtt + 0.05) if rtt is not None else 1.0
        if latency <= limit:
            triggered = True
            trig = "fast" if rtt is not None and rtt >= 0.001 and latency < 0.5 * rtt else "rtt"
        else:
            trig = "late"
    later = [p for p in pkts[at + 1:] if p.ts_s - rst.ts_s <= SETTLE_S]
    bidir = any(p.flags & dpkt.tcp.TH_RST and p.from_client != rst.from_client
                for p in later) or any(
        p.flags & dpkt.tcp.TH_RST and p.from_client != rst.from_client
        and rst.ts_s - p.ts_s <= 0.2 for p in before)
    if triggered and prior is not None:
        gap = prior.ts_s - pkts[at - 2].ts_s if at >= 2 else 0.0
    else:
        gap = rst.ts_s - prior.ts_s if prior is not None else 0.0
    silence = _categories(gap, triggered=triggered, bidirectional=bidir)
    after = _collapse(f"{'c' if p.from_client else 's'}{_flags(p)}{_size(p)}" for p in later)
    seq = _collapse(tokens)
    return Signature(vantage, seq, seq[-TAIL:], rst_tok, str(initial_ttl(rst.ttl)),
                     str(h) if h < 2 else "2+", _position(rst, client_hops, server_hops),
                     seq_cls, win_cls, trig, silence, after)


# -- grouping ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    """One labelled RST with its signature, truth and (when known) the verdict."""

    part: str
    scenario: str
    case: str
    vantage: str
    frame: int
    truth: str
    sig: Signature
    verdict: str | None = None


def rows_of(items: Iterable[Any], verdicts: dict[tuple[str, str, int], str] | None = None,
            ) -> list[Row]:
    """Rows of corpus items (``rstscope.lab.corpus.CorpusItem``)."""
    out = []
    for it in items:
        for lab in it.labels:
            v = (verdicts or {}).get((it.case, it.vantage, lab["frame"]))
            out.append(Row(it.part, str(it.variables.get("scenario", it.case)), it.case,
                           it.vantage, lab["frame"], lab["origin"],
                           signature(it.pcap, lab["frame"]), v))
    return out


def reference_rows(paths: Iterable[Path]) -> list[Row]:
    """Every RST of unlabelled captures (truth ``?``): real traffic to hold the lab's
    signatures against.  Captures dpkt cannot read are skipped."""
    out = []
    for pcap in paths:
        try:
            frames = [n for n, _ts, _e, _ip, tcp in _tcp_rows(pcap)
                      if tcp.flags & dpkt.tcp.TH_RST]
            sigs = [(n, signature(pcap, n)) for n in frames]
        except (ValueError, dpkt.UnpackError, OSError, StopIteration):
            continue
        out += [Row("reference", pcap.name, pcap.name, "?", n, "?", sig) for n, sig in sigs]
    return out


def reference_report(rows: Sequence[Row], ref: Sequence[Row],
                     without: frozenset[str] = frozenset()) -> str:
    """Per scenario and vantage of the classifier's misses: how many RSTs of the
    reference captures share a missed RST's signature, and in which files."""
    by_key: dict[str, list[Row]] = defaultdict(list)
    for r in ref:
        by_key[r.sig.key(without)].append(r)
    tally: dict[tuple[str, str], tuple[int, int, set[tuple[str, int]]]] = {}
    for m in rows:
        if m.verdict is None or m.verdict == m.truth:
            continue
        n, hit, seen = tally.get((m.scenario, m.vantage), (0, 0, set()))
        same = by_key.get(m.sig.key(without), [])
        seen |= {(r.case, r.frame) for r in same}
        tally[(m.scenario, m.vantage)] = (n + 1, hit + bool(same), seen)
    out = ["| miss (scenario.vantage) | misses | with a reference twin | reference RSTs "
           "| files |", "|---|---:|---:|---:|---|"]
    for (scn, van), (n, hit, seen) in sorted(tally.items()):
        files = sorted({f for f, _ in seen})
        out.append(f"| {scn}.{van} | {n} | {hit} | {len(seen)} | "
                   f"{', '.join(files[:6])}{' …' if len(files) > 6 else ''} |")
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Figures:
    rsts: int
    twins: int  # RSTs whose signature holds more than one truth
    alone: int  # RSTs whose signature no other RST shares (the ceiling credits them freely)
    ceiling: float  # best accuracy of any decision on the signature (tied majorities shared)
    classifier: float | None  # the classifier's accuracy on these RSTs, if known


def groups(rows: Sequence[Row], without: frozenset[str] = frozenset()) -> dict[str, list[Row]]:
    g: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        g[r.sig.key(without)].append(r)
    return g


def credit(rows: Sequence[Row], without: frozenset[str] = frozenset()) -> dict[int, float]:
    """Per row (by ``id``), the share of a right answer the best decision on its
    signature gives it: 1 for the group's majority truth, 0 otherwise; a tie of k
    truths gives each of their rows 1/k (so shares sum to the group's majority count)."""
    out: dict[int, float] = {}
    for members in groups(rows, without).values():
        c = Counter(r.truth for r in members)
        top = max(c.values())
        best = [t for t, n in c.items() if n == top]
        for r in members:
            out[id(r)] = 1 / len(best) if r.truth in best else 0.0
    return out


def figures(rows: Sequence[Row], among: Sequence[Row] | None = None,
            without: frozenset[str] = frozenset()) -> Figures:
    """Figures of ``rows``; signatures are grouped over ``among`` (default: ``rows``),
    so a scenario's RSTs count as twins of RSTs of other scenarios."""
    pool = rows if among is None else among
    cred = credit(pool, without)
    by = groups(pool, without)
    twins = sum(1 for r in rows if len({m.truth for m in by[r.sig.key(without)]}) > 1)
    alone = sum(1 for r in rows if len(by[r.sig.key(without)]) == 1)
    known = [r for r in rows if r.verdict is not None]
    return Figures(len(rows), twins, alone, sum(cred[id(r)] for r in rows) / len(rows) if rows else 0.0,
                   sum(r.verdict == r.truth for r in known) / len(known) if known else None)


def too_coarse(rows: Sequence[Row], without: frozenset[str] = frozenset(),
               ) -> list[tuple[str, int, int, int]]:
    """Twin groups where the classifier is right more often than the group's majority
    truth allows a decision on the signature to be: the signature merges what the
    wire separates.  (key, RSTs, majority, classifier right)."""
    out = []
    for key, members in groups(rows, without).items():
        if len({r.truth for r in members}) < 2 or any(r.verdict is None for r in members):
            continue
        top = max(Counter(r.truth for r in members).values())
        right = sum(r.verdict == r.truth for r in members)
        if right > top:
            out.append((key, len(members), top, right))
    return out


def report(rows: Sequence[Row], *, without: frozenset[str] = frozenset(),
           show_groups: bool = True) -> str:
    out = []

    def line(name: str, sub: Sequence[Row]) -> str:
        f = figures(sub, rows, without)
        cls = f"{100 * f.classifier:.1f} %" if f.classifier is not None else "–"
        return (f"| {name} | {f.rsts} | {f.twins} | {f.alone} | {100 * f.ceiling:.1f} % "
                f"| {cls} |")

    if without:
        out.append(f"Signature without: {', '.join(sorted(without))}")
        out.append("")
    out.append("| scenario | RSTs | twins | alone | ceiling | classifier |")
    out.append("|---|---:|---:|---:|---:|---:|")
    by_scn: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_scn[r.scenario].append(r)
    for scn in sorted(by_scn):
        out.append(line(scn, by_scn[scn]))
    for part in sorted({r.part for r in rows}):
        out.append(line(f"**{part}**", [r for r in rows if r.part == part]))
    if len({r.part for r in rows}) > 1:
        out.append(line("**all**", rows))
    if show_groups:
        out.append("")
        out.append("Twin groups (truths by scenario.vantage; the classifier's verdicts):")
        for key, members in sorted(groups(rows, without).items(), key=lambda kv: -len(kv[1])):
            if len({r.truth for r in members}) < 2:
                continue
            what = Counter(f"{r.truth} ({r.scenario}.{r.vantage})" for r in members)
            said = Counter(r.verdict for r in members if r.verdict is not None)
            out.append(f"- {key}\n    " + "; ".join(f"{n}× {w}" for w, n in what.most_common())
                       + ("\n    said: " + ", ".join(f"{n}× {v}" for v, n in said.most_common())
                          if said else ""))
    coarse = too_coarse(rows, without)
    out.append("")
    out.append(f"Twin groups the classifier gets right more often than their majority truth "
               f"(a signature too coarse): {len(coarse)}")
    for key, n, top, right in coarse:
        out.append(f"- {key}: {n} RSTs, majority {top}, classifier right {right}")
    return "\n".join(out)


def nearest_report(rows: Sequence[Row]) -> str:
    """Per miss of the classifier: the fields by which its signature differs from the
    nearest signature of another truth (fewest fields; ``=`` none: a wire twin), counted
    by scenario and vantage."""
    tally: Counter[tuple[str, str, tuple[str, ...], str]] = Counter()
    for m in rows:
        if m.verdict is None or m.verdict == m.truth:
            continue
        best: tuple[tuple[str, ...], set[str]] | None = None
        for o in rows:
            if o.truth == m.truth:
                continue
            diff = tuple(f for f in FIELDS if getattr(o.sig, f) != getattr(m.sig, f))
            if best is None or len(diff) < len(best[0]):
                best = (diff, set())
            if len(diff) == len(best[0]):
                best[1].add(f"{o.truth} ({o.scenario}.{o.vantage})")
        if best is not None:
            tally[(m.scenario, m.vantage, best[0], ", ".join(sorted(best[1])[:2]))] += 1
    out = ["| miss (scenario.vantage) | RSTs | differs only in | from |", "|---|---:|---|---|"]
    for (scn, van, diff, near), n in sorted(tally.items(), key=lambda kv: (kv[0][0], -kv[1])):
        out.append(f"| {scn}.{van} | {n} | {', '.join(diff) or '= (a twin)'} | {near} |")
    return "\n".join(out)


def doc_block(rows: Sequence[Row]) -> str:
    """The twins section of docs/verdicts.md: the figures and what sets each miss apart."""
    return (report(rows, show_groups=False) + "\n\nWhat sets each miss of the classifier "
            "apart from the nearest RST of another truth (signature fields):\n\n"
            + nearest_report(rows))


__all__ = ["FIELDS", "doc_block", "Figures", "Pkt", "Row", "Signature", "credit", "figures", "groups",
           "nearest_report", "read_flow", "reference_report", "reference_rows", "report", "rows_of", "signature", "too_coarse"]
