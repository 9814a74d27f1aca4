"""The sans-IO flow tracker: ``feed(batch)``, ``advance(now_ns)``, ``finish()``.

Theory of operation.  ``feed`` groups a batch's packets by canonical 5-tuple
with one ``np.lexsort`` over the key's words.  A flow's packets take the
per-packet path (:meth:`Flow.packet`) when order matters for it in this batch:
it is new, in its handshake, awaiting a RST verdict, a side of it still silent
speaks, or the packet carries SYN, FIN, RST, a TLS alert record or a zero
window.  All other packets are folded in by :func:`rstscope.core.bulk.apply`
with vectorised numpy, in rounds between each flow's control packets (see
``feed``).  Each RST
becomes a pending :class:`ResetContext`; it collects the packets of its settle
window and is classified when packet time (or ``advance``) passes the window,
or at ``finish``.  The packet path (``TrackerConfig(packet_path_only=True)``)
is the reference: whatever the rounds do, flows, verdicts and their order come
out as it leaves them (the records and verdicts a round adds are put back in
packet order, see ``_frame_order``).  The tracker never reads a clock or does I/O.
"""

from __future__ import annotations

import dataclasses
import heapq
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from rstscope.core import bulk
from rstscope.core.causes import name_path
from rstscope.core.classify import classify
from rstscope.core.config import TrackerConfig
from rstscope.core.events import Event, FlowEvicted, FlowOpened, IdleWarning, ResetVerdict
from rstscope.core.flow import (
    BYTES,
    INC,
    IPB,
    PKTS,
    RAND,
    UNACKED,
    WIN,
    DirTable,
    Flow,
    ResetContext,
)
from rstscope.core.hosts import HostBaselines
from rstscope.core.records import FlowRecord, FlowSpan, ResetRecord, records_by_id, spans_of
from rstscope.core.stalls import StallRecord, find_stalls
from rstscope.core.states import INACTIVE, conn_state
from rstscope.core.tails import TailLedger
from rstscope.core.timeouts import nearing
from rstscope.core.ttl import hops, initial_ttl, ttl_mode_spread
from rstscope.core.vantage import flow_vantage, vantage_from
from rstscope.schema import PACKET_DTYPE, TH_ACK, TH_FIN, TH_RST, TH_SYN, addr_text

NS = 1_000_000_000
# Canonical flow key: lower (address, port) end first; padded to 40 bytes so it can
# be viewed as five uint64 words for sorting.
_KEY_DTYPE = np.dtype({"names": ["a", "b", "pa", "pb"],
                       "formats": ["V16", "V16", ">u2", ">u2"],
                       "offsets": [0, 16, 32, 34], "itemsize": 40})
_KEY_LEN = 36
_KEY_WORDS = _KEY_DTYPE.itemsize // 8
_CONTROL = TH_SYN | TH_FIN | TH_RST
_EVICT_CHECK_NS = 60 * NS
_COLS = ("ts_ns", "frame", "file_id", "flags", "seq", "ack", "payload_len", "ip_len", "ttl",
         "ip_id", "df", "win", "wscale", "tsval", "tls_ct", "tls_hs", "sport", "dport", "ip_v")
_MAX_ROUNDS = 32  # flows with more control packets in one batch go one by one
_LAST_ROUND = _MAX_ROUNDS + 1  # the batch's closing fold (see feed)
_HEAD = 3  # packets per hot flow read eagerly in a run
_T = TypeVar("_T")


def canonical_keys(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(swap, words) of a PACKET_DTYPE batch: ``swap`` is True where the sender is
    the key's B end (its (address, port) sorts after the receiver's, addresses
    compared bytewise); ``words`` is the canonical key (:data:`_KEY_DTYPE`: A, B,
    then both ports big-endian) as five native uint64 words per packet (an (n, 5)
    view of word-major storage: the tracker reads it a word at a time)."""
    n = len(batch)
    # Each address as its two native 8-byte words, one contiguous row per word,
    # and the ports, copied out of the packed records once: every test and
    # selection below then reads contiguous memory (several times faster).
    src = np.ascontiguousarray(np.ascontiguousarray(batch["src"]).view(np.uint64)
                               .reshape(n, 2).T)
    dst = np.ascontiguousarray(np.ascontiguousarray(batch["dst"]).view(np.uint64)
                               .reshape(n, 2).T)
    sport = np.ascontiguousarray(batch["sport"])
    dport = np.ascontiguousarray(batch["dport"])
    # Big-endian words compare like the bytes (much faster than comparing S16
    # strings).
    s0, s1 = src.byteswap() if sys.byteorder == "little" else src
    d0, d1 = dst.byteswap() if sys.byteorder == "little" else dst
    swap = (s0 > d0) | ((s0 == d0) & ((s1 > d1) | ((s1 == d1) & (sport > dport))))
    words = np.empty((_KEY_WORDS, n), dtype=np.uint64)
    words[0:2] = np.where(swap, dst, src)
    words[2:4] = np.where(swap, src, dst)
    pa = np.where(swap, dport, sport).astype(">u2").view(np.uint16).astype(np.uint64)
    pb = np.where(swap, sport, dport).astype(">u2").view(np.uint16).astype(np.uint64)
    if sys.byteorder == "little":
        words[4] = pa | (pb << np.uint64(16))
    else:
        words[4] = (pa << np.uint64(48)) | (pb << np.uint64(32))
    return swap, words.T


@dataclass(frozen=True, slots=True)
class TrackerStats:
    packets: int
    flows: int
    active_flows: int
    evicted: int
    resets: int
    pending_resets: int
    packet_path: int  # packets handled one by one
    bulk_path: int  # packets folded in by the vectorised path


def _orientation(flags: int, sport: int, dport: int) -> tuple[bool, str]:
    """(first packet's sender is the originator, why)."""
    if flags & TH_SYN:
        return (False, "synack") if flags & TH_ACK else (True, "syn")
    if sport < 1024 <= dport:
        return False, "inferred:well-known-port"
    if dport < 1024 <= sport:
        return True, "inferred:well-known-port"
    if sport < 49152 <= dport:
        return False, "inferred:ephemeral-port"
    if dport < 49152 <= sport:
        return True, "inferred:ephemeral-port"
    return True, "inferred:first-packet"


class Tracker:
    """Flow table, Zeek conn_state/history, per-direction baselines, RST verdicts."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._flows: dict[bytes, Flow] = {}
        self._hosts = HostBaselines(self.config.max_flows)
        self._done: list[FlowRecord] = []
        self._resets: list[ResetRecord] = []
        # Counters that stay right when records are not kept (keep_records=False).
        self._n_done = 0
        self._n_resets = 0
        self._done_votes: Counter[str] = Counter()
        # Events raised while handling a packet (flow-table overflow) and returned by
        # the next feed()/advance().
        self._side_events: list[Event] = []
        # (deadline, packet position, seq, ctx).  Equal deadlines settle in packet
        # order ((file_id, frame) as one int), not in the order the packets were
        # handled: rounds handle a flow's k-th control packet with every other
        # flow's, and verdicts must not depend on that.
        self._pending: list[tuple[int, int, int, ResetContext]] = []
        self._seq = 0
        self._next_id = 1
        self._packets = 0
        self._evicted = 0
        self._n_packet = 0
        self._n_bulk = 0
        self._now = -1
        self._last_evict_check = -1
        self._gen: dict[bytes, int] = {}  # generations seen per 5-tuple key
        self._created: list[tuple[tuple[int, int], Flow]] = []  # see _renumber
        # (file_id, frame) of the packet behind each record, verdict and event that
        # retiring or creating a flow added during this batch's rounds (see _frame_order).
        self._keys_done: list[tuple[int, int]] = []
        self._keys_resets: list[tuple[int, int]] = []
        self._keys_events: list[tuple[int, int]] = []
        self._b_orient = np.zeros(0, dtype=bool)  # per batch group: orig is key end A
        self._b_slots = np.zeros((0, 2), dtype=np.int64)  # per batch group: table slots
        self._table = DirTable()
        self._cols: dict[str, np.ndarray] | None = None  # this batch's bulk.columns()
        # Records of the live flows as of the last flows() call; only feed(),
        # advance() and finish() change flows, and they drop it.
        self._live_records: list[FlowRecord] | None = None
        # The last packets of each flow, for stalls and path causes (issue 17);
        # only when records are kept (batch mode keeps no per-flow detail).
        self._tails = TailLedger() if self.config.keep_records else None

    # -- public API ------------------------------------------------------------
    def note_handshakes(self, handshakes: np.ndarray) -> None:
        """Note SYNs and SYN/ACKs (fields ``src``, ``file_id``, ``frame``, ``ttl``) for
        the per-address TTL baselines, without tracking them.

        A tracker that sees only some of the capture's flows (one shard of it) is
        given every handshake of the capture up front: a RST's baseline counts only
        the handshakes earlier than it, so it is the one the whole stream gives.
        Noting one handshake twice counts it once."""
        self._hosts.note_many(handshakes["src"].tolist(), handshakes["file_id"].tolist(),
                              handshakes["frame"].tolist(), handshakes["ttl"].tolist())

    def feed(self, batch: np.ndarray) -> list[Event]:
        """Consume one batch of PACKET_DTYPE records (file order); return new events."""
        if batch.dtype != PACKET_DTYPE:
            raise TypeError("feed() expects a PACKET_DTYPE batch")
        n = len(batch)
        events: list[Event] = []
        if n == 0:
            return events
        self._packets += n
        self._cols = None
        self._live_records = None
        swap, words = canonical_keys(batch)
        # Group by key with a lexsort over the words (much faster than np.unique on
        # 36-byte void records); o lists packets by flow, frame order.  Words equal
        # throughout the batch (the zero upper halves of IPv4-mapped addresses)
        # cannot change the order and are left out.
        cols = [words[:, j] for j in range(_KEY_WORDS - 1, -1, -1)]
        varying = [c for c in cols if c[0] != c[-1] or bool((c != c[0]).any())]
        o = np.lexsort(varying) if varying else np.arange(n)
        # A group starts where any varying word changes (one 1-D test per word:
        # comparing whole sorted rows costs several times more).
        brk = np.zeros(n, dtype=bool)
        brk[0] = True
        for c in varying:
            cs = c[o]
            brk[1:] |= cs[1:] != cs[:-1]
        gst = np.flatnonzero(brk)
        ng = len(gst)
        inv = np.empty(n, dtype=np.int64)
        inv[o] = np.cumsum(brk) - 1
        kb = words[o[gst]].tobytes()
        key_bytes = [kb[j:j + _KEY_LEN] for j in range(0, ng * _KEY_DTYPE.itemsize,
                                                         _KEY_DTYPE.itemsize)]
        if self._tails is not None:
            self._tails.feed(batch, o, gst, swap, key_bytes)
        flags = np.ascontiguousarray(batch["flags"])  # read twice below: copied out once
        # Every handshake of the batch before any of its packets: a RST's per-address
        # baseline then reads the handshakes before it whatever the batch cuts.
        hs = np.flatnonzero(((flags & TH_SYN) != 0) & ((flags & TH_RST) == 0))
        if len(hs):
            self.note_handshakes(batch[hs])
        # TLS handshake records (ct 22) are not control packets: they only time a
        # flow's first ClientHello/ServerHello, which bulk.apply does too, so the
        # hellos right after the handshake need no per-packet step.
        ctl = ((flags & _CONTROL) != 0) | (batch["tls_ct"] == 21)
        ctl |= (batch["win"] == 0)
        flows: list[Flow | None] = [self._flows.get(k) for k in key_bytes]
        self._created = []  # flows (and generations) this batch creates: renumbered below
        self._keys_done, self._keys_resets, self._keys_events = [], [], []
        done0, resets0 = len(self._done), len(self._resets)
        # Per-group orientation and table slots, kept current as flows are created.
        self._b_orient = np.array([f.orig_is_a if f is not None else True for f in flows])
        self._b_slots = np.array([(f.dirs[0].slot, f.dirs[1].slot) if f is not None
                                  else (-1, -1) for f in flows], dtype=np.int64).reshape(-1, 2)

        # Segment number of each packet inside its flow: how many of the flow's
        # control packets precede it in this batch.  Round r folds every flow's
        # segment-r packets (vectorised where allowed), then handles every flow's
        # r-th control packet one by one: each flow keeps its packet order while
        # flows interleave freely (they do not interact).
        cs = ctl[o].astype(np.int64)
        cum = np.cumsum(cs) - cs
        seg_sorted = cum - np.repeat(cum[gst], np.diff(np.append(gst, n)))
        seg = np.empty(n, dtype=np.int64)
        seg[o] = seg_sorted
        nctl = np.bincount(inv, weights=ctl, minlength=ng).astype(np.int64)
        # A flow's packets after its last control packet of the batch wait for one
        # fold at the end of the batch instead of a fold per round: nothing in
        # between touches that flow.  Only for flows that exist by then anyway
        # (tracked already, or opened by a control packet of this batch), so that
        # flows are still created in the same order, and only while no flow can
        # be evicted to make room in this batch (the victim is chosen by every
        # flow's last packet time).
        if len(self._flows) + ng <= self.config.max_flows:
            known = np.array([f is not None for f in flows], dtype=bool) | ctl[o[gst]]
            seg[known[inv] & ~ctl & (seg == nctl[inv])] = _LAST_ROUND
        forced_g = nctl > _MAX_ROUNDS  # RST storms etc.: the whole flow goes one by one
        if self.config.packet_path_only:
            forced_g[:] = True
        forced = forced_g[inv]
        if forced.any():
            events.extend(self._packet_path(batch, np.flatnonzero(forced), inv, swap,
                                            key_bytes, flows))
        # Rounds take packets grouped by flow (frame order within a flow), which
        # is all that order means inside a round and spares bulk.apply a sort.
        rest = o[~forced[o]]
        if len(rest):
            # seg <= _LAST_ROUND here: a one-byte key makes the stable sort a radix sort.
            order = rest[np.argsort(seg[rest].astype(np.uint8), kind="stable")]
            seg_r = seg[order]
            ctl_r = ctl[order]
            rounds = int(seg_r[-1]) + 1
            bounds = np.searchsorted(seg_r, np.arange(rounds + 1))
            for r in range(rounds):
                lo, hi = int(bounds[r]), int(bounds[r + 1])
                if lo == hi:
                    continue
                sl = order[lo:hi]
                c = ctl_r[lo:hi]
                run = sl[~c]
                if len(run):
                    events.extend(self._fold_run(batch, run, inv, swap, key_bytes, flows))
                cps = np.sort(sl[c])  # control packets of different flows: frame order
                if len(cps):
                    events.extend(self._packet_path(batch, cps, inv, swap, key_bytes, flows))
        events = self._frame_order(events, done0, resets0)
        self._now = max(self._now, int(batch["ts_ns"].max()))
        events.extend(self._settle(self._now))
        events.extend(self._maybe_evict(self._now))
        events.extend(self._drain_side_events())
        if len(self._created) > 1:
            events = self._renumber(events)
        if self._created:
            opened: list[Event] = [FlowOpened(f.flow_id, int(pos[0]), int(pos[1]))
                                   for pos, f in sorted(self._created, key=lambda pf: pf[0])]
            events = opened + events
        self._created = []
        self._cols = None
        return events

    def _frame_order(self, events: list[Event], done0: int, resets0: int) -> list[Event]:
        """Put what the rounds added in packet order, as the packet path leaves it.

        Rounds keep each flow's packets in order, but take every flow's k-th
        control packet together: a generation retired by its flow's third SYN
        comes after one retired by another flow's first, even when that came
        later.  So the records, verdicts and events that retiring (or creating)
        flows added go back in the order of the packets that caused them, and
        this batch's new live flows in the order of their first packets (the
        flow table's order is flows()' order and the eviction scan's)."""
        _by_packet(self._done, done0, self._keys_done)
        _by_packet(self._resets, resets0, self._keys_resets)
        _by_packet(events, 0, self._keys_events)
        created = self._created
        if len(created) > 1:
            # This batch's new flows sit at the end of the table (only creating a
            # flow inserts into it): re-insert the live ones by first packet.
            live = [(pos, f) for pos, f in created if self._flows.get(f.key) is f]
            if _unsorted([pos for pos, _ in live]):
                for _, f in sorted(live, key=lambda pf: pf[0]):
                    self._flows[f.key] = self._flows.pop(f.key)
        return events

    def _renumber(self, events: list[Event]) -> list[Event]:
        """Give this batch's new flows their ids in the order of their first packet.

        The rounds above create flows in an order that depends on how the input
        was cut into batches (and on which flows have control packets), so the ids
        they handed out are reshuffled here, inside the batch's own id range, to
        first-packet order.  Flow ids then never depend on batch layout: live
        capture (tiny batches) and offline analysis agree.  Records and events made
        during this batch carry the provisional ids and are rewritten too.
        """
        ids = sorted(f.flow_id for _, f in self._created)
        ordered = [f for _, f in sorted(self._created, key=lambda pf: pf[0])]
        remap = {f.flow_id: new for f, new in zip(ordered, ids, strict=True)
                 if f.flow_id != new}
        if not remap:
            return events
        for f in ordered:
            f.flow_id = remap.get(f.flow_id, f.flow_id)
        lo = ids[0]

        def fix(rec: Any) -> Any:
            fid = rec.flow_id
            return dataclasses.replace(rec, flow_id=remap[fid]) if fid in remap else rec

        # Records of this batch sit at the ends of the lists (ids >= lo).
        for store in (self._resets, self._done):
            for i in range(len(store) - 1, -1, -1):
                if store[i].flow_id < lo:
                    continue
                store[i] = fix(store[i])
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, ResetVerdict):
                ev = ResetVerdict(fix(ev.reset))
            elif isinstance(ev, FlowEvicted):
                ev = FlowEvicted(fix(ev.flow), ev.reason)
            out.append(ev)
        self._live_records = None  # cached live records carry the old ids
        return out

    def _drain_side_events(self) -> list[Event]:
        out, self._side_events = self._side_events, []
        return out

    def advance(self, now_ns: int) -> list[Event]:
        """Time passed without packets (live capture tick)."""
        self._live_records = None
        self._now = max(self._now, now_ns)
        events = self._settle(self._now)
        events.extend(self._idle_warnings(self._now))
        events.extend(self._maybe_evict(self._now))
        events.extend(self._drain_side_events())
        return events

    def finish(self) -> list[Event]:
        """End of input: settle every pending verdict."""
        self._live_records = None
        return self._settle(None) + self._drain_side_events()

    def flows(self) -> list[FlowRecord]:
        """Every flow seen (finished and evicted generations first, then live ones)."""
        if self._live_records is None:
            self._live_records = [self._record(f) for f in self._flows.values()]
        return self._done + self._live_records

    def flow_spans(self) -> list[FlowSpan]:
        """Every flow's id, first and last packet time, in flows()' order, without
        building the live flows' records (a report shows a few of thousands)."""
        live = self._live_records
        return spans_of(self._done) + (spans_of(live) if live is not None
                                       else [_span(f) for f in self._flows.values()])

    def flows_by_id(self, ids: Iterable[int]) -> list[FlowRecord]:
        """The records of these flows, in flows()' order, equal to the ones flows()
        gives; only these live flows' records are built (when flows() has not)."""
        if self._live_records is not None:
            return records_by_id(self.flows(), ids)
        wanted = set(ids)
        return (records_by_id(self._done, wanted)
                + [self._record(f) for f in self._flows.values() if f.flow_id in wanted])

    def resets(self) -> list[ResetRecord]:
        return list(self._resets)

    def stalls(self, *, reference: bool = False) -> list[StallRecord]:
        """Findings for live flows that stalled without a RST to explain it
        (rstscope.core.stalls); empty when records are not kept.  ``reference``:
        the plain per-flow path the vectorised one is tested against."""
        if self._tails is None:
            return []
        return find_stalls(self._flows.values(), self._tails, self._now, reference=reference)

    @property
    def stats(self) -> TrackerStats:
        return TrackerStats(
            packets=self._packets, flows=self._n_done + len(self._flows),
            active_flows=len(self._flows), evicted=self._evicted, resets=self._n_resets,
            pending_resets=len(self._pending), packet_path=self._n_packet,
            bulk_path=self._n_bulk)

    @property
    def vantage(self) -> tuple[str, str]:
        """(client|server|middle, reason) for the capture as a whole (majority of flows)."""
        if self.config.vantage != "auto":
            return self.config.vantage, "set by the user"
        votes: Counter[str] = Counter()
        reasons: dict[str, str] = {}
        for f in self._flows.values():
            v, why = flow_vantage(f)
            votes[v] += 1
            reasons.setdefault(v, why)
        votes.update(self._done_votes)
        if not votes:
            return "middle", "no flows"
        v, cnt = votes.most_common(1)[0]
        total = sum(votes.values())
        return v, f"{cnt} of {total} flows; e.g. {reasons.get(v, 'finished flows')}"

    # -- internals -------------------------------------------------------------
    def _fold_run(self, batch: np.ndarray, run: np.ndarray, inv: np.ndarray,
                  swap: np.ndarray, key_bytes: list[bytes],
                  flows: list[Flow | None]) -> list[Event]:
        """Packets without control flags (grouped by flow, frame order within each):
        bulk-fold them, except each
        flow's leading packets while that flow still needs ordered handling
        (creation, the handshake's last ACK, a silent side's first packet, the
        settle window of a RST)."""
        g = inv[run]
        nf = len(flows)
        orient = self._b_orient
        direction = (swap[run] == orient[g]).astype(np.int64)
        first = bulk.group_starts(g)  # each flow's first packet in the run
        orig_ack = ((direction[first] == 0)
                    & ((batch["flags"][run[first]] & TH_ACK) != 0)).tolist()
        unacked = self._table.a[:, UNACKED]
        inactive = np.full(nf, -1, dtype=np.int64)  # side still INACTIVE: 0/1, 2 = both
        cand = np.zeros(nf, dtype=bool)
        for u, ts_ns, is_ack in zip(g[first].tolist(), batch["ts_ns"][run[first]].tolist(),
                                    orig_ack, strict=True):
            f = flows[u]
            if f is None or f.holds_order(ts_ns):
                cand[u] = True
                continue
            o_in = f.dirs[0].ep.state == INACTIVE
            r_in = f.dirs[1].ep.state == INACTIVE
            if f.awaits_handshake_ack():
                # A run that opens with that ACK: all Flow.packet would add to the
                # fold is timing it, as long as no side wakes with it, no RST is
                # collecting evidence and the responder has no data in flight (an
                # RTT sample).  Then time it here and fold the whole run; the
                # flow's state is the same as the per-packet path leaves it.
                if (is_ack and not (o_in or r_in or f.pending)
                        and unacked[f.dirs[1].slot] < 0):
                    f.handshake_acked(ts_ns)
                else:
                    cand[u] = True
                    continue
            if o_in or r_in:
                inactive[u] = 2 if (o_in and r_in) else (0 if o_in else 1)
        ia = inactive[g]
        wakes = (ia == 2) | (ia == direction)  # a silent side's first packet changes its state
        if wakes.any():
            cand[g[wakes]] = True
        # Per flow: the run position up to which packets go one by one, because a
        # still-silent side speaks there (found by _hot_prefix as it goes: a flow
        # created in this run has a silent side only once it exists).
        wake = np.full(nf, -1, dtype=np.int64)
        sw = swap[run]
        pkt_cand = cand[g]
        events: list[Event] = []
        to_bulk = ~pkt_cand  # by position in run: a mask keeps run order without a sort
        if pkt_cand.any():
            cpos = np.flatnonzero(pkt_cand)
            cpos = cpos[np.argsort(g[cpos], kind="stable")]  # by flow, frame order within
            cg = g[cpos]
            brk = bulk.group_starts(cg)
            ends = np.append(brk[1:], len(cpos))
            # Most flows cool down after a packet or two: read the fields of a short
            # head per flow first and the rest only for flows that stay hot.
            heads = np.minimum(ends, brk + _HEAD)
            head_idx = np.concatenate([cpos[a:b] for a, b in zip(brk.tolist(), heads.tolist(), strict=True)])
            rows = self._rows(batch, run[head_idx], swap)
            k = 0
            unfinished: list[tuple[int, int]] = []
            for b0, h, b1 in zip(brk.tolist(), heads.tolist(), ends.tolist(), strict=True):
                u = int(cg[b0])
                done = self._hot_prefix(rows, k, b0, h, cpos, u, wake, sw, key_bytes,
                                        flows, events, to_bulk, b1)
                k += h - b0
                if not done and h < b1:
                    unfinished.append((h, b1))
            for h, b1 in unfinished:
                u = int(cg[h])
                # In growing chunks: a flow usually cools down within a few more
                # packets (a midstream flow once its silent side has spoken), and
                # reading all of a long flow's rows would cost more than the rest.
                a, step = h, 8
                while a < b1:
                    z = min(b1, a + step)
                    rows2 = self._rows(batch, run[cpos[a:z]], swap)
                    if self._hot_prefix(rows2, 0, a, z, cpos, u, wake, sw, key_bytes, flows,
                                        events, to_bulk, b1):
                        break
                    a, step = z, step * 4
        rest = np.flatnonzero(to_bulk)
        if len(rest):
            gr = g[rest]
            dr = (swap[run[rest]] == self._b_orient[gr]).astype(np.int64)
            if self._cols is None:
                self._cols = bulk.columns(batch)
            bulk.apply(self._cols, run[rest], gr, dr, flows,  # type: ignore[arg-type]
                       self._b_slots, self._table)
            self._n_bulk += len(rest)
        return events

    def _hot_prefix(self, rows: list[tuple[Any, ...]], k0: int, b0: int, b1: int,
                    cpos: np.ndarray, u: int, wake: np.ndarray, sw: np.ndarray,
                    key_bytes: list[bytes], flows: list[Flow | None], events: list[Event],
                    to_bulk: np.ndarray, end: int) -> bool:
        """Packets cpos[b0:b1] of flow u one by one until the flow cools down; then
        hand cpos[j:end] to the bulk path (mark them in ``to_bulk``) and return True.
        ``sw``: whether each run packet's sender is its key's B end; ``wake[u]``:
        the run position of the flow's last packet that must go one by one."""
        for j in range(b0, b1):
            f = flows[u]
            row = rows[k0 + j - b0]
            if (f is not None and int(cpos[j]) > wake[u]
                    and not f.needs_packet_path(row[0])):
                k = _first_wake(f, sw, cpos, j, end)
                if k < 0:
                    to_bulk[cpos[j:end]] = True
                    return True
                wake[u] = cpos[k]
            self._one(row, u, key_bytes, flows, events)
        return False

    @staticmethod
    def _rows(batch: np.ndarray, idx: np.ndarray, swap: np.ndarray) -> list[tuple[Any, ...]]:
        """Plain-Python rows: the _COLS fields, src and dst bytes, then whether the
        sender is the key's B end."""
        # Field by field: gathering whole records (batch[idx]) is several times slower.
        cols = [batch[name][idx].tolist() for name in _COLS]
        cols.append(batch["src"][idx].tolist())
        cols.append(batch["dst"][idx].tolist())
        cols.append(swap[idx].tolist())
        return list(zip(*cols, strict=True))

    def _packet_path(self, batch: np.ndarray, idx: np.ndarray, inv: np.ndarray,
                     swap: np.ndarray, key_bytes: list[bytes],
                     flows: list[Flow | None]) -> list[Event]:
        events: list[Event] = []
        one = self._one
        for row, u in zip(self._rows(batch, idx, swap), inv[idx].tolist(), strict=True):
            one(row, u, key_bytes, flows, events)
        return events

    def _one(self, row: tuple[Any, ...], u: int, key_bytes: list[bytes],
             flows: list[Flow | None], events: list[Event]) -> None:
        """One packet through :meth:`Flow.packet` (creating/renewing its flow)."""
        self._n_packet += 1
        fl = row[3]
        from_a = not row[21]  # the sender is the key's A end
        flow = flows[u]
        if flow is None or (fl & TH_SYN and not fl & TH_ACK and self._new_generation(
                flow, row[4])):
            self._one_new(row, u, key_bytes, flows, events)
            flow = flows[u]
            assert flow is not None
        direction = 0 if from_a == flow.orig_is_a else 1
        ctx = flow.packet(direction, *row[:16])
        if ctx is not None:
            if not ctx.s_ttl_counts:
                # Nothing of the sender's in this flow: its address's handshakes earlier
                # in the capture are the next best baseline.
                ctx.host_ttl_counts = self._hosts.baseline(
                    flow.orig_raw if direction == 0 else flow.resp_raw, row[2], row[1])
            self._seq += 1
            deadline = row[0] + int(self.config.settle_s * NS)
            flow.hot_until_ns = max(flow.hot_until_ns, deadline)
            heapq.heappush(self._pending, (deadline, (row[2] << 40) | row[1], self._seq, ctx))

    def _one_new(self, row: tuple[Any, ...], u: int, key_bytes: list[bytes],
                 flows: list[Flow | None], events: list[Event]) -> None:
        """Create the flow (or its next generation, retiring the current one) that
        packet ``row`` opens, noting what that adds for :meth:`_frame_order`."""
        fl = row[3]
        sport, dport, ip_v, src, dst, swapped = row[16:]
        pos = (row[2], row[1])  # (file_id, frame) of its first packet
        old = flows[u]
        # Only retiring a generation, or evicting a flow to make room, adds records,
        # verdicts or events.
        noted = old is not None or len(self._flows) >= self.config.max_flows
        if noted:
            n_done, n_resets, n_events = len(self._done), len(self._resets), len(events)
        if old is not None:
            events.extend(self._retire(old))
        first_is_orig, why = _orientation(fl, sport, dport)
        flow = self._new_flow(key_bytes[u], (not swapped) == first_is_orig, why,
                              not first_is_orig, ip_v, src, sport, dst, dport, first_is_orig)
        flows[u] = flow
        self._created.append((pos, flow))
        self._b_orient[u] = flow.orig_is_a
        self._b_slots[u] = (flow.dirs[0].slot, flow.dirs[1].slot)
        if noted:
            self._keys_done.extend([pos] * (len(self._done) - n_done))
            self._keys_resets.extend([pos] * (len(self._resets) - n_resets))
            self._keys_events.extend([pos] * (len(events) - n_events))

    def _new_generation(self, flow: Flow, seq: int) -> bool:
        """A SYN starts a new generation after the flow ended or with a new ISN."""
        if flow.ended():
            return True
        return flow.syn_seq is not None and seq != flow.syn_seq

    def _new_flow(self, key: bytes, orig_is_a: bool, why: str, flipped: bool, ip_v: int,
                  src: bytes, sport: int, dst: bytes, dport: int,
                  sender_is_orig: bool) -> Flow:
        if sender_is_orig:
            o_raw, o_p, r_raw, r_p = src, sport, dst, dport
        else:
            o_raw, o_p, r_raw, r_p = dst, dport, src, sport
        gen = self._gen.get(key, 0) + 1
        self._gen[key] = gen
        flow_id = self._next_id
        self._next_id += 1
        flow = Flow(self._table, flow_id, gen, key, orig_is_a, why, flipped, ip_v,
                    o_raw, o_p, r_raw, r_p)
        # Make room first: the new flow has no packets yet, so it would look the
        # least recently seen and be evicted itself.
        while len(self._flows) >= self.config.max_flows:
            if not self._evict_oldest():
                break
        self._flows[key] = flow
        return flow

    def _retire(self, flow: Flow) -> list[Event]:
        """Close a generation: settle its RSTs now and keep its record."""
        events: list[Event] = []
        if flow.pending:
            keep: list[tuple[int, int, int, ResetContext]] = []
            mine: list[tuple[int, int, int, ResetContext]] = []
            for item in self._pending:
                (mine if item[3].flow is flow else keep).append(item)
            # In the order their windows would have closed (the heap's list order
            # depends on how the pushes and pops were interleaved).
            for item in sorted(mine, key=lambda it: it[:3]):
                events.append(self._verdict(item[3]))
            heapq.heapify(keep)
            self._pending = keep
        flow.pending.clear()
        self._keep_flow(self._record(flow))
        self._flows.pop(flow.key, None)
        flow.release()
        return events

    def _verdict(self, ctx: ResetContext) -> Event:
        rec = classify(ctx, self.config)
        if self._tails is not None:
            fl = ctx.flow
            rec = name_path(rec, self._tails.tail(fl.key), fl.orig_is_a,
                            self._tails.max_payload_len(fl.key))
        self._n_resets += 1
        if self.config.keep_records:
            self._resets.append(rec)
        if ctx in ctx.flow.pending:
            ctx.flow.pending.remove(ctx)
        return ResetVerdict(rec)

    def _settle(self, now: int | None) -> list[Event]:
        events: list[Event] = []
        # Strictly past the deadline: a packet stamped exactly at the deadline still
        # belongs to the window (facts take ``o.ts_ns - ctx.ts_ns <= settle``), and the next
        # batch may hold more packets with that same timestamp.  Settling at ``<=``
        # made a verdict depend on where the batches were cut.
        while self._pending and (now is None or self._pending[0][0] < now):
            ctx = heapq.heappop(self._pending)[3]
            events.append(self._verdict(ctx))
        return events

    def _idle_warnings(self, now: int) -> list[Event]:
        if not self.config.timeouts:
            return []
        events: list[Event] = []
        for f in self._flows.values():
            if f.last_ts_ns < 0 or f.ended():
                continue
            idle_s = (now - f.last_ts_ns) / NS
            if idle_s < self.config.idle_warn_min_s * self.config.idle_warn_fraction:
                f.warned_s = 0.0
                continue
            hits = nearing(self.config, idle_s)
            fresh = [e for e in hits if e.timeout_s > f.warned_s]
            if fresh:
                f.warned_s = max(e.timeout_s for e in fresh)
                events.append(IdleWarning(f.flow_id, round(idle_s, 3), tuple(
                    f"{e.timeout_s:g} s: {e.label} ({e.expiry_behaviour})" for e in fresh)))
        return events

    def _maybe_evict(self, now: int) -> list[Event]:
        if self._last_evict_check >= 0 and now - self._last_evict_check < _EVICT_CHECK_NS:
            return []
        self._last_evict_check = now
        limit = int(self.config.evict_idle_s * NS)
        # The time test first: it rules out almost every flow.
        stale = [f for f in self._flows.values()
                 if now - f.last_ts_ns > limit and f.last_ts_ns >= 0 and not f.pending]
        return [self._evict(f, "idle") for f in stale]

    def _evict_oldest(self) -> bool:
        victim = min((f for f in self._flows.values() if not f.pending),
                     key=lambda f: f.last_ts_ns, default=None)
        if victim is None:
            return False
        self._side_events.append(self._evict(victim, "max_flows"))
        return True

    def _keep_flow(self, rec: FlowRecord) -> None:
        self._n_done += 1
        self._done_votes[rec.vantage] += 1
        if self.config.keep_records:
            self._done.append(rec)

    def _evict(self, flow: Flow, reason: str) -> Event:
        flow.evicted = True
        self._evicted += 1
        if self._tails is not None:
            self._tails.drop(flow.key)
        rec = self._record(flow)
        self._keep_flow(rec)
        self._flows.pop(flow.key, None)
        flow.release()
        return FlowEvicted(rec, reason)

    def _record(self, f: Flow) -> FlowRecord:
        o, r = f.dirs
        # Each direction's table row read once (flows() builds thousands of records).
        oc = self._table.a[o.slot].tolist()
        rc = self._table.a[r.slot].tolist()
        om = ttl_mode_spread(o.ttl_counts)
        rm = ttl_mode_spread(r.ttl_counts)
        v = (self.config.vantage if self.config.vantage != "auto"
             else vantage_from(om, rm, f.rtt_side_ns)[0])
        ro, rr = f.rtt_side_ns
        span = _span(f)
        first, last = span.first_ts_ns, span.last_ts_ns
        history = "".join(f.history)
        return FlowRecord(
            flow_id=f.flow_id, generation=f.generation,
            orig_h=addr_text(f.orig_raw, f.ip_v), orig_p=f.orig_p,
            resp_h=addr_text(f.resp_raw, f.ip_v), resp_p=f.resp_p, ip_v=f.ip_v,
            orientation=f.orientation, first_ts_ns=first, last_ts_ns=last,
            duration_s=(last - first) / NS, orig_pkts=oc[PKTS], resp_pkts=rc[PKTS],
            orig_bytes=oc[BYTES], resp_bytes=rc[BYTES], orig_ip_bytes=oc[IPB],
            resp_ip_bytes=rc[IPB], conn_state=conn_state(o.ep, r.ep, history, oc[BYTES], rc[BYTES]),
            history=history,
            orig_state=o.ep.state, resp_state=r.ep.state,
            orig_ttl_mode=om[0] if om else None, orig_ttl_spread=om[1] if om else None,
            orig_initial_ttl=initial_ttl(om[0]) if om else None,
            orig_hops=hops(om[0]) if om else None,
            resp_ttl_mode=rm[0] if rm else None, resp_ttl_spread=rm[1] if rm else None,
            resp_initial_ttl=initial_ttl(rm[0]) if rm else None,
            resp_hops=hops(rm[0]) if rm else None,
            orig_ip_id=_ipid_label(oc[INC:RAND + 1], f.ip_v),
            resp_ip_id=_ipid_label(rc[INC:RAND + 1], f.ip_v),
            orig_win=oc[WIN] if oc[WIN] >= 0 else None, resp_win=rc[WIN] if rc[WIN] >= 0 else None,
            rtt_s=(ro + rr) / NS if ro >= 0 and rr >= 0 else None,
            rtt_orig_side_s=ro / NS if ro >= 0 else None,
            rtt_resp_side_s=rr / NS if rr >= 0 else None,
            vantage=v, max_idle_gap_s=f.max_gap_ns / NS, resets=f.resets, evicted=f.evicted)


def _span(f: Flow) -> FlowSpan:
    # A flow not yet given a packet's time reads as 0 (first) and its first (last);
    # _record puts the same times in the flow's record.
    first = f.first_ts_ns if f.first_ts_ns >= 0 else 0
    return FlowSpan(f.flow_id, first, f.last_ts_ns if f.last_ts_ns >= 0 else first)


def _unsorted(keys: list[tuple[int, int]]) -> bool:
    return any(a > b for a, b in zip(keys, keys[1:], strict=False))


def _by_packet(store: list[_T], start: int, keys: list[tuple[int, int]]) -> None:
    """Sort ``store[start:]`` (in place, stably) by ``keys``, one per item."""
    if len(store) - start == len(keys) and _unsorted(keys):
        tail = store[start:]
        store[start:] = [tail[i] for i in sorted(range(len(keys)), key=keys.__getitem__)]


def _first_wake(f: Flow, sw: np.ndarray, cpos: np.ndarray, j: int, end: int) -> int:
    """Index in ``cpos[j:end]`` (flow f's remaining run packets) of the first packet
    from a side of f still INACTIVE, -1 if none: its state moves with that packet
    (Flow.packet), after which plain packets change no state and may be folded."""
    o_in = f.dirs[0].ep.state == INACTIVE
    r_in = f.dirs[1].ep.state == INACTIVE
    if not (o_in or r_in):
        return -1
    if o_in and r_in:
        return j
    # The responder sends with swap == orig_is_a (direction 1; see _one).
    hits = np.flatnonzero(sw[cpos[j:end]] == (f.orig_is_a if r_in else not f.orig_is_a))
    return j + int(hits[0]) if len(hits) else -1


def _ipid_label(counts: list[int], ip_v: int) -> str:
    if ip_v != 4:
        return "n/a"
    total = sum(counts)
    if total == 0:
        return "n/a"
    inc, zero, const, rand = counts
    for label, c in (("incrementing", inc), ("zero", zero), ("constant", const),
                     ("random", rand)):
        if c >= 0.6 * total:
            return label
    return "random"
