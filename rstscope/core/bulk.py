"""Vectorised per-batch aggregation for packets of quiet, established flows.

Theory of operation.  Most packets of a long capture belong to established flows
and change nothing but counters: packets, bytes, first/last time, the TTL
histogram, IP-ID steps, the highest sequence number, the last packet's header
fields and the longest silence.  :func:`apply` computes those per
(flow, direction) with a few numpy sorts and reductions, then touches each
affected :class:`~rstscope.core.flow.Dir` once.  The tracker routes a flow's
packets here only when none of them needs ordered handling (see
``Flow.needs_packet_path`` and the control mask in the tracker), so the result
equals what the per-packet path would compute; a test feeds the same packets
both ways and compares.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rstscope.core import states
from rstscope.core.flow import (
    BYTES,
    CONST,
    FIRST,
    HALF,
    HIST,
    INC,
    IPB,
    LAST,
    LASTID,
    LASTPL,
    MAXACK,
    NR_ACK,
    NR_FLAGS,
    NR_FRAME,
    NR_GAP,
    NR_IPID,
    NR_LEN,
    NR_SEQ,
    NR_TS,
    NR_TTL,
    NR_WIN,
    PKTS,
    RAND,
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


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    n = len(sorted_keys)
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=brk[1:])
    return np.flatnonzero(brk)


def apply(batch: np.ndarray, g: np.ndarray, d: np.ndarray, flows: Sequence[Flow],
          slots: np.ndarray, table: DirTable) -> None:
    """Fold packets ``batch`` (frame order) of flows ``flows[g]``, direction ``d``;
    ``slots[g, d]`` is each direction's column in ``table``."""
    n = len(batch)
    if n == 0:
        return
    ts = batch["ts_ns"]
    plen = batch["payload_len"].astype(np.int64)
    fd = g.astype(np.int64) * 2 + d
    o = np.argsort(fd, kind="stable")
    sfd = fd[o]
    starts = group_starts(sfd)
    ends = np.append(starts[1:], n) - 1
    ufd = sfd[starts]
    k = len(ufd)
    counts = np.diff(np.append(starts, n))
    grp = np.repeat(np.arange(k), counts)  # group ordinal per sorted position
    ts_s = ts[o]
    plen_s = plen[o]
    last = o[ends]
    ufd_l = ufd.tolist()
    sl = slots[ufd >> 1, ufd & 1]
    opp_sl = slots[ufd >> 1, (ufd & 1) ^ 1]
    A = table.a
    col = A[:, sl]  # gathered copy: (fields, k)

    col[PKTS] += counts
    col[BYTES] += np.add.reduceat(plen_s, starts)
    col[IPB] += np.add.reduceat(batch["ip_len"][o].astype(np.int64), starts)
    col[FIRST] = np.where(col[FIRST] < 0, ts_s[starts], col[FIRST])
    col[LAST] = ts[last]
    last_payload = np.maximum.reduceat(np.where(plen_s > 0, ts_s, -1), starts)
    col[LASTPL] = np.where(last_payload >= 0, last_payload, col[LASTPL])
    col[UNACKED] = np.where(last_payload >= 0, last_payload, col[UNACKED])
    col[WIN] = batch["win"][last]
    col[TSOPT] |= np.maximum.reduceat((batch["tsval"][o] >= 0).astype(np.int64), starts)

    # IP-ID steps (IPv4 only; -1 marks IPv6).
    ipid_s = batch["ip_id"][o].astype(np.int64)
    prev = np.empty(n, dtype=np.int64)
    prev[1:] = ipid_s[:-1]
    prev[starts] = col[LASTID]
    valid = (ipid_s >= 0) & (prev >= 0)
    step = (ipid_s - prev) & 0xFFFF
    zero = valid & (ipid_s == 0)
    nonzero = valid & ~zero
    col[INC] += np.add.reduceat((nonzero & (step > 0) & (step <= 1024)).astype(np.int64), starts)
    col[ZERO] += np.add.reduceat(zero.astype(np.int64), starts)
    col[CONST] += np.add.reduceat((nonzero & (step == 0)).astype(np.int64), starts)
    col[RAND] += np.add.reduceat((nonzero & (step > 1024)).astype(np.int64), starts)
    last_valid = np.maximum.reduceat(np.where(ipid_s >= 0, np.arange(n), -1), starts)
    col[LASTID] = np.where(last_valid >= 0, ipid_s[np.maximum(last_valid, 0)], col[LASTID])

    # Highest sequence number and retransmissions, relative to a per-direction
    # reference half a sequence space below the previous high-water mark, so that
    # wrap-around within a batch is harmless.
    seq_s = batch["seq"][o].astype(np.int64)
    known = col[SNDNXT] >= 0
    ref = np.where(known, col[SNDNXT], seq_s[starts]) - HALF
    rel_end = (seq_s - ref[grp]) % SEQ_MOD + plen_s
    prior0 = np.where(known, HALF, -1)
    keyed = grp * (1 << 34) + rel_end
    cm = np.maximum.accumulate(keyed)
    prior_in = np.empty(n, dtype=np.int64)
    prior_in[0] = -1
    prior_in[1:] = cm[:-1] - grp[1:] * (1 << 34)
    prior_in[starts] = -1
    prior = np.maximum(prior_in, prior0[grp])
    rx = (plen_s > 0) & (rel_end <= prior)
    max_end = np.maximum.reduceat(rel_end, starts)
    col[SNDNXT] = np.where(max_end > prior0, (ref + max_end) % SEQ_MOD, col[SNDNXT])
    rx_cum = np.cumsum(rx)
    rx_before = np.append(0, rx_cum[ends][:-1])
    rx_count = col[RXMIT][grp] + rx_cum - rx_before[grp]
    rx_letter = rx & np.isin(rx_count, _POW10)
    col[RXMIT] = rx_count[ends]

    ack_s = batch["ack"][o].astype(np.int64)
    has_ack = (batch["flags"][o] & TH_ACK) != 0
    aknown = col[MAXACK] >= 0
    first_ack = np.minimum.reduceat(np.where(has_ack, np.arange(n), _BIG), starts)
    aref = np.where(aknown, col[MAXACK], ack_s[np.minimum(first_ack, n - 1)]) - HALF
    rel_ack = np.where(has_ack, (ack_s - aref[grp]) % SEQ_MOD, -1)
    max_ack = np.maximum.reduceat(rel_ack, starts)
    col[MAXACK] = np.where((max_ack >= 0) & (~aknown | (max_ack > HALF)),
                           (aref + max_ack) % SEQ_MOD, col[MAXACK])

    # Silences are per flow (either direction): sort by flow alone.
    og = np.argsort(g, kind="stable")
    gs = g[og]
    gstarts = group_starts(gs)
    gends = np.append(gstarts[1:], n) - 1
    tsg = ts[og]
    gapg = np.empty(n, dtype=np.int64)
    gapg[1:] = tsg[1:] - tsg[:-1]
    ug_l = gs[gstarts].tolist()
    flow_last = np.array([flows[u].last_ts for u in ug_l], dtype=np.int64)
    gapg[gstarts] = np.where(flow_last >= 0, tsg[gstarts] - flow_last, 0)
    maxgap = np.maximum.reduceat(gapg, gstarts)
    inv_og = np.empty(n, dtype=np.int64)
    inv_og[og] = np.arange(n)

    # Snapshot of each direction's last packet (a later RST's trigger candidate).
    col[NR_TS] = ts[last]
    col[NR_FRAME] = batch["frame"][last].astype(np.int64)
    col[NR_SEQ] = batch["seq"][last]
    col[NR_ACK] = batch["ack"][last]
    col[NR_FLAGS] = batch["flags"][last]
    col[NR_LEN] = plen[last]
    col[NR_TTL] = batch["ttl"][last]
    col[NR_IPID] = batch["ip_id"][last]
    col[NR_WIN] = batch["win"][last]
    col[NR_GAP] = gapg[inv_og[last]]

    # Packets sent since the opposite direction was last heard (silent-drop tell).
    last_of = np.full(len(flows) * 2, -1, dtype=np.int64)
    last_of[ufd] = last
    opp_last = last_of[ufd ^ 1]
    has_opp = opp_last >= 0
    after_opp = np.add.reduceat((o > opp_last[grp]).astype(np.int64), starts)
    col[SINCE] = np.where(has_opp, after_opp, col[SINCE] + counts)

    # First pure ACK / first data packet (history letters 'A' / 'D').
    ar = np.arange(n)
    first_pa = np.minimum.reduceat(np.where(has_ack & (plen_s == 0), ar, _BIG), starts)
    first_data = np.minimum.reduceat(np.where(plen_s > 0, ar, _BIG), starts)
    new_a = ((col[HIST] & states.H_ACK) == 0) & (first_pa != _BIG)
    new_d = ((col[HIST] & states.H_DATA) == 0) & (first_data != _BIG)
    col[HIST] |= np.where(new_a, states.H_ACK, 0) | np.where(new_d, states.H_DATA, 0)

    A[:, sl] = col
    silent_opp = opp_sl[~has_opp]
    A[SINCE, silent_opp] = 0  # a direction that just spoke resets its peer's count

    letters: list[tuple[int, Flow, int, str]] = []
    for i in np.flatnonzero(new_a).tolist():
        u = ufd_l[i]
        letters.append((int(o[first_pa[i]]), flows[u >> 1], u & 1, "A"))
    for i in np.flatnonzero(new_d).tolist():
        u = ufd_l[i]
        letters.append((int(o[first_data[i]]), flows[u >> 1], u & 1, "D"))
    for t_pos, t_fd in zip(np.flatnonzero(rx_letter).tolist(), sfd[rx_letter].tolist(), strict=True):
        letters.append((int(o[t_pos]), flows[t_fd >> 1], t_fd & 1, "T"))

    # TTL histogram per (flow, direction).
    tk, tc = np.unique(sfd * 256 + batch["ttl"][o], return_counts=True)
    pos = np.searchsorted(ufd, tk >> 8)
    for key_, cnt, p in zip(tk.tolist(), tc.tolist(), pos.tolist(), strict=True):
        u = ufd_l[p]
        tc_ = flows[u >> 1].dirs[u & 1].ttl_counts
        ttl = key_ & 0xFF
        tc_[ttl] = tc_.get(ttl, 0) + cnt

    for u, t_first, gap, t_last in zip(ug_l, tsg[gstarts].tolist(), maxgap.tolist(),
                                       tsg[gends].tolist(), strict=True):
        flow = flows[u]
        if flow.first_ts < 0:
            flow.first_ts = t_first
        if gap > flow.max_gap_ns:
            flow.max_gap_ns = gap
        flow.last_ts = t_last
        flow.nr_last_ts = t_last
    letters.sort(key=lambda x: x[0])
    for _, flow, dd, letter in letters:
        flow.add_letter(dd, letter)
