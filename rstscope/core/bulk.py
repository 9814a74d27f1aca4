"""Vectorised per-batch aggregation for packets of quiet, established flows.

Theory of operation.  Most packets of a long capture belong to established flows
and change nothing but counters: packets, bytes, first/last time, the TTL
histogram, IP-ID steps, the highest sequence number, the last packet's header
fields, the longest silence and the first ClientHello/ServerHello times; and,
for flows without a timed handshake (first seen midstream), the RTT samples
Flow.packet takes from data/ACK pairs.  :func:`apply` computes those per
(flow, direction) with a few numpy sorts and reductions, then touches each
affected :class:`~rstscope.core.flow.Dir` once.  The tracker routes a flow's
packets here only when none of them needs ordered handling (see
``Flow.needs_packet_path`` and the control mask in the tracker), so the result
equals what the per-packet path would compute; a test feeds the same packets
both ways and compares.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import repeat

import numpy as np

from rstscope.core import states
from rstscope.core.flow import (
    BYTES,
    CONST,
    FIRST,
    HALF,
    HIST,
    HS_TIMED,
    INC,
    IPB,
    LAST,
    LASTID,
    LASTPL,
    MAXACK,
    NONRST_ACK,
    NONRST_FLAGS,
    NONRST_FRAME,
    NONRST_GAP_NS,
    NONRST_IPID,
    NONRST_PAYLOAD_LEN,
    NONRST_SEQ,
    NONRST_TS_NS,
    NONRST_TTL,
    NONRST_WIN,
    PKTS,
    RAND,
    RST_LAST,
    RXMIT,
    SEQ_MOD,
    SINCE,
    SNDNXT,
    TSOPT,
    UNACKED,
    WIN,
    ZERO,
    DirTable,
    Flow,
)
from rstscope.schema import TH_ACK

_POW10 = np.array([10**k for k in range(12)], dtype=np.int64)
_BIG = np.iinfo(np.int64).max
# x % SEQ_MOD for int64 x, as a mask (SEQ_MOD is 2**32): the same value, negative
# x included, for a tenth of the cost of an integer modulo.
_SEQ_MASK = SEQ_MOD - 1


# Fields apply() reads, as contiguous int64 columns: gathering from the packed
# (unaligned, 111-byte stride) records is several times slower, and a batch is
# gathered from once per round.
FIELDS_READ = ("ts_ns", "frame", "flags", "seq", "ack", "payload_len", "ip_len", "ttl", "ip_id",
               "win", "tsval", "tls_hs")


def columns(batch: np.ndarray) -> dict[str, np.ndarray]:
    """The fields apply() reads, each as a contiguous int64 array."""
    # astype, not np.array(..., dtype=): the latter takes a slow path for a
    # strided field that needs a conversion.
    return {name: batch[name].astype(np.int64) for name in FIELDS_READ}


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    n = len(sorted_keys)
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=brk[1:])
    return np.flatnonzero(brk)


def apply(batch: Mapping[str, np.ndarray] | np.ndarray, idx: np.ndarray, g: np.ndarray,
          direction: np.ndarray, flows: Sequence[Flow], slots: np.ndarray,
          table: DirTable) -> None:
    """Fold packets ``idx`` of ``batch`` (a PACKET_DTYPE array, or its
    :func:`columns`) of flows ``flows[g]``, sent in ``direction`` (0 by the flow's
    originator, 1 by its responder); ``slots[g, direction]`` is
    each direction's row in ``table``.  Each flow's packets
    must appear in ``idx`` in frame order; flows may be interleaved in any way
    (the tracker passes them grouped by flow, which saves a sort here)."""
    n = len(idx)
    if n == 0:
        return
    fd = g.astype(np.int64, copy=False) * 2 + direction
    # A stable sort on a two-byte key is a radix sort: much faster, same order.
    o = np.argsort(fd.astype(np.uint16) if len(flows) < 1 << 15 else fd, kind="stable")
    sfd = fd[o]
    starts = group_starts(sfd)
    ends = np.append(starts[1:], n) - 1
    ufd = sfd[starts]
    k = len(ufd)
    counts = np.diff(np.append(starts, n))
    grp = np.repeat(np.arange(k), counts)  # group ordinal per sorted position
    # Read each field once, already in (flow, direction) order: one gather per
    # field instead of copying whole records and gathering again.  ``*_sorted``
    # arrays are in that order; ``ts_in`` is in input order.
    rows = idx[o]
    ts_in = batch["ts_ns"][idx]
    ts_ns_sorted = ts_in[o]
    payload_len_sorted = batch["payload_len"][rows].astype(np.int64, copy=False)
    last = o[ends]  # input position of each direction's last packet
    lrow = rows[ends]  # that packet's row in the batch
    sl = slots[ufd >> 1, ufd & 1]
    opp_sl = slots[ufd >> 1, (ufd & 1) ^ 1]
    A = table.a
    # Each flow's packets in frame order (either direction): input already
    # grouped by flow (the tracker's case) needs no second sort.
    gi = g.astype(np.int64, copy=False)
    grouped = bool(np.all(gi[1:] >= gi[:-1]))
    if grouped:
        og = None
        gs = gi
        tsg = ts_in
    else:
        og = np.argsort(gi, kind="stable")
        gs = gi[og]
        tsg = ts_in[og]
    gstarts = group_starts(gs)
    gends = np.append(gstarts[1:], n) - 1
    ug_l = gs[gstarts].tolist()
    col = A[sl].T  # gathered copy, seen as (fields, k)
    # Flows without a timed handshake take RTT samples from data/ACK pairs
    # (Flow.packet); read the table for them before this fold changes it.
    if not col[HS_TIMED].all():
        cleared = _rtt_from_data(batch, idx if og is None else idx[og], gs, gstarts,
                                 direction if og is None else direction[og], flows, slots, A)
    else:
        cleared = None
    # Flows whose last packet may have been a RST (either direction's was).
    rst_last = ufd[(col[RST_LAST] | A[opp_sl, RST_LAST]) != 0] >> 1

    col[PKTS] += counts
    col[BYTES] += np.add.reduceat(payload_len_sorted, starts)
    col[IPB] += np.add.reduceat(batch["ip_len"][rows].astype(np.int64, copy=False), starts)
    col[FIRST] = np.where(col[FIRST] < 0, ts_ns_sorted[starts], col[FIRST])
    col[LAST] = ts_ns_sorted[ends]
    last_payload = np.maximum.reduceat(np.where(payload_len_sorted > 0, ts_ns_sorted, -1), starts)
    col[LASTPL] = np.where(last_payload >= 0, last_payload, col[LASTPL])
    col[UNACKED] = np.where(last_payload >= 0, last_payload, col[UNACKED])
    col[WIN] = batch["win"][lrow]
    col[TSOPT] |= np.maximum.reduceat(batch["tsval"][rows] >= 0, starts)
    col[RST_LAST] = 0  # no RST is folded

    # IP-ID steps (IPv4 only; -1 marks IPv6).
    ip_id_sorted = batch["ip_id"][rows].astype(np.int64, copy=False)
    prev = np.empty(n, dtype=np.int64)
    prev[1:] = ip_id_sorted[:-1]
    prev[starts] = col[LASTID]
    step = (ip_id_sorted - prev) & 0xFFFF
    # Each step's kind as flow.ipid_kind gives it (INC, ZERO, CONST, RAND are
    # consecutive columns), 4 where there is no step; counted in one bincount.
    kind = np.where(step == 0, CONST - INC, np.where(step <= 1024, 0, RAND - INC))
    kind[ip_id_sorted == 0] = ZERO - INC
    kind[(ip_id_sorted < 0) | (prev < 0)] = 4
    per_kind = np.bincount(grp * 5 + kind, minlength=k * 5).reshape(k, 5)
    col[INC:RAND + 1] += per_kind[:, :4].T
    ar = np.arange(n)
    last_valid = np.maximum.reduceat(np.where(ip_id_sorted >= 0, ar, -1), starts)
    col[LASTID] = np.where(last_valid >= 0, ip_id_sorted[np.maximum(last_valid, 0)], col[LASTID])

    # Highest sequence number and retransmissions, relative to a per-direction
    # reference half a sequence space below the previous high-water mark, so that
    # wrap-around within a batch is harmless.
    seq_sorted = batch["seq"][rows].astype(np.int64, copy=False)
    known = col[SNDNXT] >= 0
    ref = np.where(known, col[SNDNXT], seq_sorted[starts]) - HALF
    rel_end = ((seq_sorted - ref[grp]) & _SEQ_MASK) + payload_len_sorted
    prior0 = np.where(known, HALF, -1)
    keyed = grp * (1 << 34) + rel_end
    cm = np.maximum.accumulate(keyed)
    prior_in = np.empty(n, dtype=np.int64)
    prior_in[0] = -1
    prior_in[1:] = cm[:-1] - grp[1:] * (1 << 34)
    prior_in[starts] = -1
    prior = np.maximum(prior_in, prior0[grp])
    rx = (payload_len_sorted > 0) & (rel_end <= prior)
    max_end = np.maximum.reduceat(rel_end, starts)
    col[SNDNXT] = np.where(max_end > prior0, (ref + max_end) & _SEQ_MASK, col[SNDNXT])
    rx_pos = np.flatnonzero(rx)
    if len(rx_pos):
        rx_cum = np.cumsum(rx)
        rx_before = np.append(0, rx_cum[ends][:-1])
        rx_count = col[RXMIT][grp] + rx_cum - rx_before[grp]
        col[RXMIT] = rx_count[ends]
        # Only retransmissions can carry a 'T' letter: test just those counts.
        t_pos = rx_pos[np.isin(rx_count[rx_pos], _POW10)]
    else:
        t_pos = rx_pos

    ack_sorted = batch["ack"][rows].astype(np.int64, copy=False)
    has_ack = (batch["flags"][rows] & TH_ACK) != 0
    aknown = col[MAXACK] >= 0
    first_ack = np.minimum.reduceat(np.where(has_ack, ar, _BIG), starts)
    aref = np.where(aknown, col[MAXACK], ack_sorted[np.minimum(first_ack, n - 1)]) - HALF
    rel_ack = np.where(has_ack, (ack_sorted - aref[grp]) & _SEQ_MASK, -1)
    max_ack = np.maximum.reduceat(rel_ack, starts)
    col[MAXACK] = np.where((max_ack >= 0) & (~aknown | (max_ack > HALF)),
                           (aref + max_ack) & _SEQ_MASK, col[MAXACK])

    # Silences are per flow (either direction), in frame order within the flow.
    gapg = np.empty(n, dtype=np.int64)
    gapg[1:] = tsg[1:] - tsg[:-1]
    flow_last = np.array([flows[u].last_ts_ns for u in ug_l], dtype=np.int64)
    gapg[gstarts] = np.where(flow_last >= 0, tsg[gstarts] - flow_last, 0)
    maxgap = np.maximum.reduceat(gapg, gstarts)
    # The snapshot's silence counts from the flow's last non-RST packet (Flow.packet):
    # it differs from the above only for a flow whose last packet was a RST.
    if len(rst_last):
        after_rst = np.searchsorted(gs[gstarts], np.unique(rst_last))
        lnr = np.array([flows[ug_l[j]].last_non_rst_ts_ns for j in after_rst.tolist()],
                       dtype=np.int64)
        at = gstarts[after_rst]
        gapg[at] = np.where(lnr >= 0, tsg[at] - lnr, 0)
    if og is None:
        last_gap = gapg[last]
    else:
        inv_og = np.empty(n, dtype=np.int64)
        inv_og[og] = ar
        last_gap = gapg[inv_og[last]]

    # Each flow's first ClientHello / ServerHello (frame order) if it had none yet:
    # a later RST's context reads them.  Most runs hold no handshake record.
    hs_in = batch["tls_hs"][idx]
    if bool((hs_in > 0).any()):
        hsg = hs_in if og is None else hs_in[og]
        for tls_hs, attr in ((1, "client_hello_ts_ns"), (2, "server_hello_ts_ns")):
            first_hs = np.minimum.reduceat(np.where(hsg == tls_hs, ar, _BIG), gstarts)
            sel = np.flatnonzero(first_hs != _BIG)
            for u, hello_ts_ns in zip(gs[gstarts[sel]].tolist(), tsg[first_hs[sel]].tolist(),
                                      strict=True):
                flow = flows[u]
                if getattr(flow, attr) < 0:
                    setattr(flow, attr, hello_ts_ns)

    # Snapshot of each direction's last packet (a later RST's trigger candidate).
    col[NONRST_TS_NS] = ts_ns_sorted[ends]
    col[NONRST_FRAME] = batch["frame"][lrow]
    col[NONRST_SEQ] = batch["seq"][lrow]
    col[NONRST_ACK] = batch["ack"][lrow]
    col[NONRST_FLAGS] = batch["flags"][lrow]
    col[NONRST_PAYLOAD_LEN] = payload_len_sorted[ends]
    col[NONRST_TTL] = batch["ttl"][lrow]
    col[NONRST_IPID] = batch["ip_id"][lrow]
    col[NONRST_WIN] = batch["win"][lrow]
    col[NONRST_GAP_NS] = last_gap

    # Packets sent since the opposite direction was last heard (silent-drop tell).
    last_of = np.full(len(flows) * 2, -1, dtype=np.int64)
    last_of[ufd] = last
    opp_last = last_of[ufd ^ 1]
    has_opp = opp_last >= 0
    after_opp = np.add.reduceat(o > opp_last[grp], starts, dtype=np.int64)
    col[SINCE] = np.where(has_opp, after_opp, col[SINCE] + counts)

    # History letters, as (input position, flow*2 + direction, letter); positions
    # gathered per kind in one go rather than one numpy scalar per letter.
    letters: list[tuple[int, int, str]] = []
    # First pure ACK / first data packet ('A' / 'D'), looked for only when some
    # direction has not had both yet (most runs are of flows well past that).
    both = states.H_ACK | states.H_DATA
    if bool(((col[HIST] & both) != both).any()):
        first_pa = np.minimum.reduceat(np.where(has_ack & (payload_len_sorted == 0), ar, _BIG),
                                       starts)
        first_data = np.minimum.reduceat(np.where(payload_len_sorted > 0, ar, _BIG), starts)
        new_a = ((col[HIST] & states.H_ACK) == 0) & (first_pa != _BIG)
        new_d = ((col[HIST] & states.H_DATA) == 0) & (first_data != _BIG)
        col[HIST] |= np.where(new_a, states.H_ACK, 0) | np.where(new_d, states.H_DATA, 0)
        for mask, first, letter in ((new_a, first_pa, "A"), (new_d, first_data, "D")):
            sel = np.flatnonzero(mask)
            letters.extend(zip(o[first[sel]].tolist(), ufd[sel].tolist(), repeat(letter)))
    letters.extend(zip(o[t_pos].tolist(), sfd[t_pos].tolist(), repeat("T")))

    A[sl] = col.T
    if cleared is not None and len(cleared):
        A[cleared, UNACKED] = -1  # data an RTT sample has used up (Flow.packet)
    silent_opp = opp_sl[~has_opp]
    A[silent_opp, SINCE] = 0  # a direction that just spoke resets its peer's count

    # TTL histogram per (flow, direction), TTLs ascending within a direction.
    # Runs of equal TTL first (a direction's TTL rarely changes), then a sort of
    # the few runs only when some direction has more than one.
    tkey = sfd * 256 + batch["ttl"][rows]
    rb = group_starts(tkey)
    tk = tkey[rb]
    tc = np.diff(np.append(rb, n))
    if len(rb) != k:
        tk, tinv = np.unique(tk, return_inverse=True)
        tc = np.bincount(tinv, weights=tc).astype(np.int64)
    for u, ttl, cnt in zip((tk >> 8).tolist(), (tk & 0xFF).tolist(), tc.tolist(), strict=True):
        tc_ = flows[u >> 1].dirs[u & 1].ttl_counts
        tc_[ttl] = tc_.get(ttl, 0) + cnt

    for u, t_first, gap, t_last in zip(ug_l, tsg[gstarts].tolist(), maxgap.tolist(),
                                       tsg[gends].tolist(), strict=True):
        flow = flows[u]
        if flow.first_ts_ns < 0:
            flow.first_ts_ns = t_first
        if gap > flow.max_gap_ns:
            flow.max_gap_ns = gap
        flow.last_ts_ns = t_last
        flow.last_non_rst_ts_ns = t_last
    letters.sort(key=lambda x: x[0])  # stable: A, D, T on one packet stay in that order
    for _, u, letter in letters:
        flows[u >> 1].add_letter(u & 1, letter)


def _rtt_from_data(batch: Mapping[str, np.ndarray] | np.ndarray, rows: np.ndarray,
                   gs: np.ndarray, gstarts: np.ndarray, direction: np.ndarray, flows: Sequence[Flow],
                   slots: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Flow.packet's RTT samples from data/ACK pairs, for the fold's flows that have
    no complete handshake (flows first seen midstream); ``A`` is the table before
    the fold.  ``rows`` are the fold's packets in flow order (frame order within a
    flow), ``gs`` their flows (``gstarts`` where each starts), ``direction``
    their senders (0 originator, 1 responder).  Updates each flow's
    ``rtt_side_ns``; returns the table slots whose ``data_unacked_ts_ns`` the
    samples used up (to be set to -1 after the fold).

    Flow.packet, packet by packet: a packet whose ACK advances its sender's
    highest ACK and covers everything the peer has sent, while the peer's
    newest data is not yet timed, is a sample (its time minus that data's), and
    that data is then timed.  So each stretch between two data packets of the
    peer (its *epoch*) gives one sample at most: the first such packet in it.
    """
    n = len(rows)
    need = A[slots[gs[gstarts], 0], HS_TIMED] == 0
    if not need.all():
        keep = np.repeat(need, np.diff(np.append(gstarts, n)))
        rows, gs, direction = rows[keep], gs[keep], direction[keep]
        n = len(rows)
        gstarts = group_starts(gs)
    counts_f = np.diff(np.append(gstarts, n))
    fstart = np.repeat(gstarts, counts_f)  # each packet's flow's first position
    ar = np.arange(n)
    ts_ns = batch["ts_ns"][rows].astype(np.int64, copy=False)
    seq = batch["seq"][rows].astype(np.int64, copy=False)
    ack = batch["ack"][rows].astype(np.int64, copy=False)
    pl = batch["payload_len"][rows].astype(np.int64, copy=False)
    has_ack = (batch["flags"][rows] & TH_ACK) != 0
    d = direction.astype(np.int64, copy=False)
    own_sl = slots[gs, d]
    peer_sl = slots[gs, d ^ 1]

    # Running values per (flow, direction), as apply() computes their final ones:
    # relative to a reference half a sequence space below, so wrap is harmless.
    fd = gs * 2 + d
    o = np.argsort(fd, kind="stable")
    st = group_starts(fd[o])
    cnt = np.diff(np.append(st, n))
    grp = np.repeat(np.arange(len(st)), cnt)
    gslot = own_sl[o][st]
    # The sender's highest sequence number after each packet.
    nxt0 = A[gslot, SNDNXT]
    seq_o = seq[o]
    known = nxt0 >= 0
    ref = np.where(known, nxt0, seq_o[st]) - HALF
    rel_end = ((seq_o - ref[grp]) & _SEQ_MASK) + pl[o]
    rel_end = np.maximum(rel_end, np.where(known, HALF, -1)[grp])
    run_max = np.maximum.accumulate(grp * (1 << 34) + rel_end) - grp * (1 << 34)
    nxt_after = np.empty(n, dtype=np.int64)
    nxt_after[o] = (ref[grp] + run_max) & _SEQ_MASK
    # Whether each packet's ACK advances its sender's highest ACK.
    mack0 = A[gslot, MAXACK]
    ack_o = ack[o]
    ha_o = has_ack[o]
    aknown = mack0 >= 0
    first_ack = np.minimum.reduceat(np.where(ha_o, np.arange(n), _BIG), st)
    aref = np.where(aknown, mack0, ack_o[np.minimum(first_ack, n - 1)]) - HALF
    rel_ack = np.where(ha_o, (ack_o - aref[grp]) & _SEQ_MASK, -1)
    cm = np.maximum.accumulate(grp * (1 << 34) + rel_ack)
    before = np.empty(n, dtype=np.int64)
    before[0] = -1
    before[1:] = cm[:-1] - grp[1:] * (1 << 34)
    before[st] = -1
    adv = np.empty(n, dtype=bool)
    adv[o] = ha_o & (rel_ack > np.maximum(before, np.where(aknown, HALF, -1)[grp]))

    # The peer's last packet and last data packet before each packet (same flow).
    last_by = [np.maximum.accumulate(np.where(d == x, ar, -1)) for x in (0, 1)]
    data = pl > 0
    data_by = [np.maximum.accumulate(np.where((d == x) & data, ar, -1)) for x in (0, 1)]
    peer_last = np.where(d == 0, last_by[1], last_by[0])
    pnxt = np.where(peer_last >= fstart, nxt_after[np.maximum(peer_last, 0)], A[peer_sl, SNDNXT])
    epoch = np.where(d == 0, data_by[1], data_by[0])  # -1: the peer's data before the fold
    epoch = np.where(epoch >= fstart, epoch, -1)
    unacked = np.where(epoch >= 0, ts_ns[np.maximum(epoch, 0)], A[peer_sl, UNACKED])
    q = adv & (unacked >= 0) & (pnxt >= 0) & (((ack - pnxt + HALF) & _SEQ_MASK) >= HALF)
    if not q.any():
        return np.zeros(0, dtype=np.int64)
    # The first such packet of each (flow, direction, peer epoch) takes the sample.
    # In (flow, direction) order a direction's epochs never decrease: the first of
    # each is where the key changes.
    qo = o[q[o]]  # the candidates, by (flow, direction), frame order within
    ekey = fd[qo] * (n + 1) + epoch[qo] + 1
    new_epoch = np.empty(len(qo), dtype=bool)
    new_epoch[0] = True
    np.not_equal(ekey[1:], ekey[:-1], out=new_epoch[1:])
    spos = qo[new_epoch]
    sample = ts_ns[spos] - unacked[spos]
    sfd = fd[spos]
    sst = group_starts(sfd)
    mins = np.minimum.reduceat(sample, sst)
    bounds = np.append(sst, len(spos)).tolist()
    for j, (k, lo) in enumerate(zip(sfd[sst].tolist(), mins.tolist(), strict=True)):
        side = flows[k >> 1].rtt_side_ns
        if lo >= 0:
            cur = side[k & 1]
            if cur < 0 or lo < cur:
                side[k & 1] = lo
        else:  # time ran backwards somewhere: replay Flow.packet's test in order
            for v in sample[bounds[j]:bounds[j + 1]].tolist():
                if side[k & 1] < 0 or v < side[k & 1]:
                    side[k & 1] = v
    # A direction's data stays untimed after the fold unless the peer's last sample
    # in it timed that direction's newest data (its epochs never decrease).
    last = spos[np.append(sst[1:], len(spos)) - 1]  # each direction's last sample
    peer = (sfd[sst] & 1) ^ 1
    fend = np.repeat(np.append(gstarts[1:], n) - 1, counts_f)[last]
    newest = np.where(peer == 0, data_by[0][fend], data_by[1][fend])
    newest = np.where(newest >= fstart[last], newest, -1)
    hit = epoch[last] == newest
    return slots[gs[last][hit], peer[hit]]  # type: ignore[no-any-return]
