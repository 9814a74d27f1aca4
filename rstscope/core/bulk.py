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
from rstscope.core.flow import HALF, SEQ_MOD, Flow
from rstscope.schema import TH_ACK

_POW10 = np.array([10**k for k in range(12)], dtype=np.int64)
_BIG = np.iinfo(np.int64).max


def _starts(sorted_keys: np.ndarray) -> np.ndarray:
    n = len(sorted_keys)
    brk = np.empty(n, dtype=bool)
    brk[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=brk[1:])
    return np.flatnonzero(brk)


def apply(batch: np.ndarray, g: np.ndarray, d: np.ndarray, flows: Sequence[Flow]) -> None:
    """Fold packets ``batch`` (frame order) of flows ``flows[g]``, direction ``d``."""
    n = len(batch)
    if n == 0:
        return
    ts = batch["ts_ns"]
    plen = batch["payload_len"].astype(np.int64)
    fd = g.astype(np.int64) * 2 + d
    o = np.argsort(fd, kind="stable")
    sfd = fd[o]
    starts = _starts(sfd)
    ends = np.append(starts[1:], n) - 1
    ufd = sfd[starts]
    k = len(ufd)
    grp = np.repeat(np.arange(k), np.diff(np.append(starts, n)))  # group ordinal per sorted pos
    ts_s = ts[o]
    plen_s = plen[o]
    counts = np.diff(np.append(starts, n))
    sum_plen = np.add.reduceat(plen_s, starts)
    sum_ip = np.add.reduceat(batch["ip_len"][o].astype(np.int64), starts)
    last_payload = np.maximum.reduceat(np.where(plen_s > 0, ts_s, -1), starts)
    last = o[ends]
    dirs = [flows[int(u) >> 1].dirs[int(u) & 1] for u in ufd.tolist()]

    # TTL histogram per (flow, direction).
    tkey = sfd * 256 + batch["ttl"][o]
    tk, tc = np.unique(tkey, return_counts=True)
    pos = np.searchsorted(ufd, tk >> 8)

    # IP-ID steps (IPv4 only; -1 marks IPv6).
    ipid_s = batch["ip_id"][o].astype(np.int64)
    prev = np.empty(n, dtype=np.int64)
    prev[1:] = ipid_s[:-1]
    prev[starts] = np.array([dr.last_ip_id for dr in dirs], dtype=np.int64)
    valid = (ipid_s >= 0) & (prev >= 0)
    step = (ipid_s - prev) & 0xFFFF
    zero = valid & (ipid_s == 0)
    const = valid & ~zero & (step == 0)
    inc = valid & ~zero & (step > 0) & (step <= 1024)
    rand = valid & ~zero & (step > 1024)
    kinds = [np.add.reduceat(m.astype(np.int64), starts) for m in (inc, zero, const, rand)]
    last_valid_id = np.maximum.reduceat(np.where(ipid_s >= 0, np.arange(n), -1), starts)

    # Highest sequence number and retransmissions, relative to a per-direction
    # reference half a sequence space below the previous high-water mark, so that
    # wrap-around within a batch is harmless.
    seq_s = batch["seq"][o].astype(np.int64)
    known = np.array([dr.snd_nxt is not None for dr in dirs])
    ref = np.array([dr.snd_nxt if dr.snd_nxt is not None else 0 for dr in dirs],
                   dtype=np.int64)
    ref = np.where(known, ref, seq_s[starts]) - HALF
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
    rx_cum = np.cumsum(rx)
    rx_before = np.append(0, rx_cum[ends][:-1])
    rx_prev = np.array([dr.rxmit for dr in dirs], dtype=np.int64)
    rx_count = rx_prev[grp] + rx_cum - rx_before[grp]
    rx_letter = rx & np.isin(rx_count, _POW10)

    ack_s = batch["ack"][o].astype(np.int64)
    has_ack = (batch["flags"][o] & TH_ACK) != 0
    aknown = np.array([dr.max_ack is not None for dr in dirs])
    aref = np.array([dr.max_ack if dr.max_ack is not None else 0 for dr in dirs],
                    dtype=np.int64)
    first_ack = np.minimum.reduceat(np.where(has_ack, np.arange(n), _BIG), starts)
    aref = np.where(aknown, aref, ack_s[np.minimum(first_ack, n - 1)]) - HALF
    rel_ack = np.where(has_ack, (ack_s - aref[grp]) % SEQ_MOD, -1)
    max_ack = np.maximum.reduceat(rel_ack, starts)

    # First pure ACK / first data packet (history letters 'A' / 'D').
    ar = np.arange(n)
    first_pa = np.minimum.reduceat(np.where(has_ack & (plen_s == 0), ar, _BIG), starts)
    first_data = np.minimum.reduceat(np.where(plen_s > 0, ar, _BIG), starts)
    has_ts = np.maximum.reduceat((batch["tsval"][o] >= 0).astype(np.int8), starts)

    # Silences are per flow (either direction): sort by flow alone.
    og = np.argsort(g, kind="stable")
    gs = g[og]
    gstarts = _starts(gs)
    gends = np.append(gstarts[1:], n) - 1
    tsg = ts[og]
    gapg = np.empty(n, dtype=np.int64)
    gapg[1:] = tsg[1:] - tsg[:-1]
    ug = gs[gstarts]
    flow_last = np.array([flows[int(u)].last_ts for u in ug.tolist()], dtype=np.int64)
    gapg[gstarts] = np.where(flow_last >= 0, tsg[gstarts] - flow_last, 0)
    maxgap = np.maximum.reduceat(gapg, gstarts)
    inv_og = np.empty(n, dtype=np.int64)
    inv_og[og] = np.arange(n)
    gap_at_last = gapg[inv_og[last]]

    frame = batch["frame"]
    seqc = batch["seq"]
    ackc = batch["ack"]
    flagsc = batch["flags"]
    ttlc = batch["ttl"]
    ipidc = batch["ip_id"]
    winc = batch["win"]
    letters: list[tuple[int, Flow, int, str]] = []
    last_pos = {int(u): int(p) for u, p in zip(ufd.tolist(), last.tolist())}
    for i, dr in enumerate(dirs):
        u = int(ufd[i])
        flow = flows[u >> 1]
        dd = u & 1
        li = int(last[i])
        dr.pkts += int(counts[i])
        dr.bytes += int(sum_plen[i])
        dr.ip_bytes += int(sum_ip[i])
        if dr.first_ts < 0:
            dr.first_ts = int(ts_s[starts[i]])
        dr.last_ts = int(ts[li])
        if last_payload[i] >= 0:
            dr.last_payload_ts = int(last_payload[i])
            dr.data_unacked_ts = int(last_payload[i])
        c = dr.ipid_counts
        for j in range(4):
            c[j] += int(kinds[j][i])
        if last_valid_id[i] >= 0:
            dr.last_ip_id = int(ipid_s[last_valid_id[i]])
        dr.win = int(winc[li])
        if max_end[i] > prior0[i]:
            dr.snd_nxt = int((ref[i] + max_end[i]) % SEQ_MOD)
        dr.rxmit += int(rx_count[ends[i]] - rx_prev[i])
        if max_ack[i] >= 0 and (not aknown[i] or max_ack[i] > HALF):
            dr.max_ack = int((aref[i] + max_ack[i]) % SEQ_MOD)
        if has_ts[i]:
            dr.ts_opt = True
        dr.nr_ts = int(ts[li])
        dr.nr_frame = int(frame[li])
        dr.nr_seq = int(seqc[li])
        dr.nr_ack = int(ackc[li])
        dr.nr_flags = int(flagsc[li])
        dr.nr_len = int(plen[li])
        dr.nr_ttl = int(ttlc[li])
        dr.nr_ip_id = int(ipidc[li])
        dr.nr_win = int(winc[li])
        dr.nr_gap_ns = int(gap_at_last[i])
        opp = last_pos.get(u ^ 1)
        seg = o[starts[i]:ends[i] + 1]
        if opp is None:
            dr.since_peer += int(counts[i])
            flow.dirs[dd ^ 1].since_peer = 0
        else:
            dr.since_peer = int(len(seg) - np.searchsorted(seg, opp, side="right"))
        if not dr.hist & states.H_ACK and first_pa[i] != _BIG:
            dr.hist |= states.H_ACK
            letters.append((int(o[first_pa[i]]), flow, dd, "A"))
        if not dr.hist & states.H_DATA and first_data[i] != _BIG:
            dr.hist |= states.H_DATA
            letters.append((int(o[first_data[i]]), flow, dd, "D"))
    for t_pos, t_fd in zip(np.flatnonzero(rx_letter).tolist(), sfd[rx_letter].tolist()):
        letters.append((int(o[t_pos]), flows[t_fd >> 1], t_fd & 1, "T"))
    for key_, cnt, p in zip(tk.tolist(), tc.tolist(), pos.tolist()):
        tc_ = dirs[p].ttl_counts
        ttl = key_ & 0xFF
        tc_[ttl] = tc_.get(ttl, 0) + cnt
    for j, u in enumerate(ug.tolist()):
        flow = flows[int(u)]
        if flow.first_ts < 0:
            flow.first_ts = int(tsg[gstarts[j]])
        if maxgap[j] > flow.max_gap_ns:
            flow.max_gap_ns = int(maxgap[j])
        flow.last_ts = int(tsg[gends[j]])
        flow.nr_last_ts = flow.last_ts
    letters.sort(key=lambda x: x[0])
    for _, flow, dd, letter in letters:
        flow.add_letter(dd, letter)
