"""Generate a deterministic synthetic port-443 capture for reader benchmarks.

    python benchmarks/make_capture.py 1000000 out.pcap [--format pcapng] [--seed 443]
                                      [--payload tls|zeros] [--params]

Standard library and numpy only.  Same arguments -> byte-identical file (on any
PYTHONHASHSEED).  The packet list is built per flow in Python; the bytes are laid
out with numpy, 65,536 packets at a time (5.5-6 s of CPU for 1M packets).

Shape (per the project's performance anchors): N/200 flows between clients in
198.51.100.0/24 and servers in 203.0.113.0/24 port 443, each with a
SYN/SYN-ACK/ACK handshake carrying MSS, SACK-permitted, timestamps and window
scale (80% of flows keep the timestamp option on every segment, so header
lengths vary), a TLS ClientHello/ServerHello exchange, then request/response
rounds of mixed sizes, MSS-segmented with delayed ACKs; ~900 B average frame.
Some flows pause 30-400 s.  2% of flows end in resets: about half from the
server itself (its TTL, next IP ID), half injected (1-3 RSTs with a TTL that
differs from the server's, unrelated IP IDs, no timestamp option, stepped
sequence numbers).  Every other flow closes with FIN.  Checksums are left zero
(no reader verifies them).  ``--truth`` writes the reset flows as JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any

import numpy as np

from rstscope.wire import pcap as wire_pcap
from rstscope.wire import pcapng

ETH = bytes.fromhex("020000000002" "020000000001" "0800")
MSS = 1448
SYN_OPTS_LEN = 20
TS_OPTS_LEN = 12


def _flow_packets(rng: random.Random, fid: int, t0: float, n_target: int, kind: str,
                  has_ts: bool, idle: float) -> list[tuple[Any, ...]]:
    """Packets of one flow as tuples (ts, dir, flags, seq, ack, plen, opt, tls, ttl_kind)."""
    cseq = rng.getrandbits(32)
    sseq = rng.getrandbits(32)
    rtt = rng.uniform(0.002, 0.08)
    t = t0
    out: list[tuple[Any, ...]] = []
    # dir 0 = client->server, 1 = server->client; opt: 0 none, 1 SYN options, 2 TS.
    ts_opt = 2 if has_ts else 0
    out.append((t, 0, 0x02, cseq, 0, 0, 1, 0, 0))
    t += rtt / 2
    out.append((t, 1, 0x12, sseq, cseq + 1, 0, 1, 0, 0))
    t += rtt / 2
    cseq += 1
    sseq += 1
    out.append((t, 0, 0x10, cseq, sseq, 0, ts_opt, 0, 0))
    ch = 517
    out.append((t + 0.0001, 0, 0x18, cseq, sseq, ch, ts_opt, 1, 0))
    cseq += ch
    t += rtt / 2
    sh = 1400
    out.append((t, 1, 0x18, sseq, cseq, sh, ts_opt, 2, 0))
    sseq += sh
    t += rtt / 2
    n_inj = rng.randint(1, 3)
    tail = {"fin": 3, "server-rst": 2}.get(kind, 1 + n_inj)
    body = n_target - tail
    idle_at = rng.randint(4, max(5, n_target - 10)) if idle else -1
    while len(out) < body - 2:
        if len(out) >= idle_at > 0:
            t += idle
            idle_at = -1
        req = rng.choice((90, 200, 350, 520, 800))
        out.append((t, 0, 0x18, cseq, sseq, req, ts_opt, 3, 0))
        cseq += req
        t += rtt / 2
        room = body - len(out)
        segs = min(rng.choice((1, 2, 4, 8, 16)), max(1, (room - 1) * 2 // 3))
        for i in range(segs):
            plen = MSS if i < segs - 1 else rng.randint(200, MSS)
            out.append((t, 1, 0x18 if i == segs - 1 else 0x10, sseq, cseq, plen, ts_opt, 3, 0))
            sseq += plen
            t += 0.00012
            if i % 2 == 1 or i == segs - 1:
                out.append((t, 0, 0x10, cseq, sseq, 0, ts_opt, 0, 0))
        t += rng.uniform(0.01, 0.5)
    while len(out) < body:  # pad to the exact size with window updates
        out.append((t, 0, 0x10, cseq, sseq, 0, ts_opt, 0, 0))
        t += 0.001
    del out[body:]
    if kind == "fin":
        out.append((t, 0, 0x11, cseq, sseq, 0, ts_opt, 0, 0))
        t += rtt / 2
        out.append((t, 1, 0x11, sseq, cseq + 1, 0, ts_opt, 0, 0))
        t += rtt / 2
        out.append((t, 0, 0x10, cseq + 1, sseq + 1, 0, ts_opt, 0, 0))
    elif kind == "server-rst":
        out.append((t, 0, 0x18, cseq, sseq, 120, ts_opt, 3, 0))
        t += rtt / 2
        out.append((t, 1, 0x14, sseq, cseq + 120, 0, 0, 0, 0))
    else:  # injected: 1-3 RSTs toward the client with a foreign TTL and stepped seq
        out.append((t, 0, 0x18, cseq, sseq, 120, ts_opt, 3, 0))
        t += rtt / 8
        for k in range(n_inj):
            out.append((t + k * 0.00005, 1, 0x14, sseq + k * 1460, cseq + 120, 0, 0, 0, 1))
    return out


def generate(n: int, seed: int) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    n_flows = max(1, n // 200)
    span = max(60.0, n / 680.0)
    flows = []
    truth = []
    remaining = n
    for fid in range(n_flows):
        left_flows = n_flows - fid
        target = remaining // left_flows
        target = max(12, int(target * rng.uniform(0.5, 1.5))) if left_flows > 1 else remaining
        target = min(target, remaining - 12 * (left_flows - 1)) if left_flows > 1 else target
        r = rng.random()
        kind = "fin"
        if fid % 50 == 7:
            kind = "server-rst" if rng.random() < 0.48 else "injected"
        idle = rng.uniform(30, 400) if (r < 0.05 or (kind != "fin" and rng.random() < 0.8)) else 0.0
        t0 = rng.uniform(0, span)
        pk = _flow_packets(rng, fid, t0, target, kind, rng.random() < 0.8, idle)
        remaining -= len(pk)
        flows.append(pk)
        if kind != "fin":
            truth.append({"flow": fid, "kind": kind, "rst_packets": sum(1 for p in pk if p[2] & 4),
                          "idle_s": round(idle, 3)})
    return [p for pk in flows for p in pk], truth, flows  # type: ignore[return-value]


# Frame bytes written per packet besides the (zero) payload: Ethernet 14, IPv4 20,
# TCP 20, options up to 20, and 6 bytes of a TLS record header.
_HEAD = 80
_CHUNK = 65536  # packets assembled per write


def _head_dtype() -> np.dtype:
    f = [("eth", "V14", 0), ("vihl", "u1", 14), ("tot", ">u2", 16), ("id", ">u2", 18),
         ("frag", ">u2", 20), ("ttl", "u1", 22), ("proto", "u1", 23), ("src", "V4", 26),
         ("dst", "V4", 30), ("sport", ">u2", 34), ("dport", ">u2", 36), ("seq", ">u4", 38),
         ("ack", ">u4", 42), ("doff", "u1", 46), ("flags", "u1", 47), ("win", ">u2", 48)]
    return np.dtype({"names": [x[0] for x in f], "formats": [x[1] for x in f],
                     "offsets": [x[2] for x in f], "itemsize": _HEAD})


def _be32(col: np.ndarray, v: np.ndarray) -> None:
    """Write uint32 values big-endian into 4 columns of a uint8 block."""
    col[:] = v.astype(">u4").view(np.uint8).reshape(-1, 4)


def write(path: str, n: int, seed: int, fmt: str, truth_path: str | None,
          tls_records: bool = True) -> int:
    """Lay the packets out with numpy, a chunk of packets at a time.

    Same bytes as a per-packet ``struct.pack`` loop: the random draws happen in the
    same order (per-flow constants first, then one IP ID per injected packet in
    file order), and the float timestamp arithmetic is the same IEEE arithmetic.
    """
    rng = random.Random(seed + 1)
    pkts, truth, flows = generate(n, seed)  # type: ignore[misc]
    fid_of = np.concatenate([np.full(len(pk), i, dtype=np.int64) for i, pk in enumerate(flows)])
    cols = list(zip(*pkts, strict=True))
    ts = np.array(cols[0], dtype=np.float64)
    order = np.argsort(ts, kind="stable")
    t = ts[order]
    d, flags, seq, ack, plen, opt, tls, ttl_kind = (
        np.array(c, dtype=np.int64)[order] for c in cols[1:])
    fid = fid_of[order]
    if not tls_records:
        tls = np.zeros_like(tls)  # same packets and sizes; payload bytes all zero
    m = len(pkts)
    del cols, fid_of, ts, order  # the tuples' columns are arrays now; keep the peak down
    # Per-flow constants: addresses, ports, TTLs, IP ID counters.
    n_flows = len(flows)
    c_last = np.array([1 + rng.randrange(250) for _ in range(n_flows)], dtype=np.uint8)
    s_last = np.array([1 + rng.randrange(60) for _ in range(n_flows)], dtype=np.uint8)
    cport = np.array([rng.randrange(1024, 65535) for _ in range(n_flows)], dtype=np.int64)
    # A server's TTL is drawn per distinct server, in address order (iterating a set
    # of bytes here once made the file depend on PYTHONHASHSEED).
    saddr = [bytes((203, 0, 113, int(x))) for x in s_last]
    sttl_of = {s: rng.choice((64, 128)) - rng.randrange(5, 25) for s in sorted(set(saddr))}
    sttl = np.array([sttl_of.get(bytes((203, 0, 113, k)), 0) for k in range(256)],
                    dtype=np.int64)
    ipid0 = np.array([[rng.getrandbits(16), rng.getrandbits(16)] for _ in range(n_flows)],
                     dtype=np.int64)
    inj = ttl_kind != 0
    ident = np.zeros(m, dtype=np.int64)
    ident[inj] = [rng.getrandbits(16) for _ in range(int(inj.sum()))]
    # Each (flow, direction) counts its own packets up from its initial IP ID.
    own = np.nonzero(~inj)[0]
    key = fid[own] * 2 + d[own]
    by = np.argsort(key, kind="stable")
    ks = key[by]
    starts = np.r_[0, np.nonzero(ks[1:] != ks[:-1])[0] + 1]
    rank = np.arange(ks.size) - np.repeat(starts, np.diff(np.r_[starts, ks.size]))
    k_in_flow = np.empty(ks.size, dtype=np.int64)
    k_in_flow[by] = rank + 1
    ident[own] = (ipid0[fid[own], d[own]] + k_in_flow) & 0xFFFF

    srv_last = s_last[fid].astype(np.int64)
    ttl = np.where(d == 0, 64, sttl[srv_last])
    ttl = np.where(inj, (ttl + 7 + fid % 9) & 0xFF, ttl)
    olen = np.select([opt == 1, opt == 2], [SYN_OPTS_LEN, TS_OPTS_LEN], 0)
    thl = 20 + olen
    ip_len = 20 + thl + plen
    frame_len = 14 + ip_len
    tsec = 1_700_000_000 + t
    sec = np.floor(tsec).astype(np.int64)
    usec = np.rint((tsec - sec) * 1e6).astype(np.int64)
    carry = usec >= 1_000_000
    sec[carry] += 1
    usec[carry] -= 1_000_000
    tsval = np.floor(t * 1000).astype(np.int64) & 0xFFFFFFFF

    hd = _head_dtype()
    rec_len = 16 if fmt == "pcap" else 28
    with open(path, "wb") as f:
        if fmt == "pcap":
            f.write(wire_pcap.file_header(1, 262144, nanos=False, endian="<"))
        else:
            f.write(pcapng.section_header(endian="<")
                    + pcapng.interface_block(pcapng.Interface(linktype=1, snaplen=262144), "<"))
        buf = np.zeros(0, dtype=np.uint8)
        for lo in range(0, m, _CHUNK):
            sl = slice(lo, min(m, lo + _CHUNK))
            k = sl.stop - sl.start
            fl = frame_len[sl]
            padded = (fl + 3) & ~3
            size = rec_len + (fl if fmt == "pcap" else padded + 4)
            pos = np.zeros(k, dtype=np.int64)
            np.cumsum(size[:-1], out=pos[1:])
            # Record header + the frame's head, one row per packet.
            blk = np.zeros((k, rec_len + _HEAD), dtype=np.uint8)
            if fmt == "pcap":
                rh = np.stack([sec[sl], usec[sl], fl, fl], axis=1).astype("<u4")
            else:
                tsu = sec[sl] * 1_000_000 + usec[sl]
                rh = np.stack([np.full(k, pcapng.EPB), 32 + padded, np.zeros(k, dtype=np.int64),
                               tsu >> 32, tsu & 0xFFFFFFFF, fl, fl], axis=1).astype("<u4")
            blk[:, :rec_len] = rh.view(np.uint8).reshape(k, rec_len)
            head = blk[:, rec_len:]
            h = np.zeros(k, dtype=hd)
            dd = d[sl]
            fsl = fid[sl]
            h["eth"] = np.frombuffer(ETH, dtype="V14")[0]
            h["vihl"] = 0x45
            h["tot"] = ip_len[sl]
            h["id"] = ident[sl]
            h["frag"] = 0x4000
            h["ttl"] = ttl[sl]
            h["proto"] = 6
            cl = np.zeros((k, 4), dtype=np.uint8)
            cl[:] = (198, 51, 100, 0)
            cl[:, 3] = c_last[fsl]
            sv = np.zeros((k, 4), dtype=np.uint8)
            sv[:] = (203, 0, 113, 0)
            sv[:, 3] = s_last[fsl]
            c_is_src = (dd == 0)[:, None]
            h["src"] = np.where(c_is_src, cl, sv).view("V4").ravel()
            h["dst"] = np.where(c_is_src, sv, cl).view("V4").ravel()
            h["sport"] = np.where(dd == 0, cport[fsl], 443)
            h["dport"] = np.where(dd == 0, 443, cport[fsl])
            h["seq"] = seq[sl] & 0xFFFFFFFF
            h["ack"] = ack[sl] & 0xFFFFFFFF
            h["doff"] = (thl[sl] // 4) << 4
            fg = flags[sl]
            h["flags"] = fg
            h["win"] = np.where(fg != 2, 502, 64240)
            head[:] = h.view(np.uint8).reshape(k, _HEAD)
            tv = tsval[sl]
            o = opt[sl]
            syn = o == 1
            if syn.any():
                r = head[syn]
                r[:, 54:58] = (2, 4, 0x05, 0xB4)  # MSS 1460
                r[:, 58:60] = (4, 2)  # SACK permitted
                r[:, 60:62] = (8, 10)
                _be32(r[:, 62:66], tv[syn])
                _be32(r[:, 66:70], np.where(fg[syn] == 2, 0, tv[syn]))
                r[:, 70:74] = (1, 3, 3, 7)  # NOP, window scale 7
                head[syn] = r
            tso = o == 2
            if tso.any():
                r = head[tso]
                r[:, 54:58] = (1, 1, 8, 10)
                _be32(r[:, 58:62], tv[tso])
                _be32(r[:, 62:66], (tv[tso] - 1) & 0xFFFFFFFF)
                head[tso] = r
            tl = tls[sl]
            pl = plen[sl]
            rec_tls = (tl != 0) & (pl >= 6)
            for ol in (0, TS_OPTS_LEN, SYN_OPTS_LEN):
                sel = rec_tls & (olen[sl] == ol)
                if not sel.any():
                    continue
                c0 = 54 + ol
                r = head[sel]
                hs = (tl[sel] == 1) | (tl[sel] == 2)
                r[:, c0] = np.where(hs, 22, 23)
                r[:, c0 + 1] = 3
                r[:, c0 + 2] = 3
                r[:, c0 + 3] = (pl[sel] - 5) >> 8
                r[:, c0 + 4] = (pl[sel] - 5) & 0xFF
                r[:, c0 + 5] = np.where(hs, tl[sel], 0)
                head[sel] = r
            # Each row goes to its record's place in one fancy assignment through a
            # byte-strided view ("the W bytes at offset i" is one row).  A row longer
            # than its record spills zeros into the next record, which is written
            # after it and overwrites them; rows too close to the end are copied
            # one by one.
            total = int(pos[-1] + size[-1])
            if buf.size < total:
                buf = np.zeros(total + (total >> 2), dtype=np.uint8)
            out = buf[:total]
            out[:] = 0
            width = rec_len + _HEAD
            fits = pos <= total - width
            if total >= width:
                win = np.lib.stride_tricks.as_strided(out, shape=(total - width + 1, width),
                                                      strides=(1, 1))
                win[pos[fits]] = blk[fits]
            for i in np.nonzero(~fits)[0].tolist():
                c = int(rec_len + min(int(fl[i]), _HEAD))
                out[pos[i]:pos[i] + c] = blk[i, :c]
            if fmt == "pcapng":
                trail = (32 + padded).astype("<u4").view(np.uint8).reshape(k, 4)
                at = pos + rec_len + padded
                for j in range(4):
                    out[at + j] = trail[:, j]
            f.write(memoryview(out))  # type: ignore[arg-type]
    if truth_path:
        with open(truth_path, "w") as tf:
            json.dump({"packets": len(pkts), "rst_flows": truth}, tf, indent=1)
    return len(pkts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("packets", type=int)
    ap.add_argument("output")
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    ap.add_argument("--seed", type=int, default=443)
    ap.add_argument("--truth", help="write the reset flows as JSON here")
    ap.add_argument("--payload", choices=("tls", "zeros"), default="tls",
                    help="tls: first records carry TLS record headers (default); zeros: all "
                         "payload bytes zero, like the performance anchors' reference file")
    ap.add_argument("--params", action="store_true",
                    help="also write these parameters to OUTPUT.params.json (benchmarks print "
                         "them with their figures)")
    a = ap.parse_args(argv)
    n = write(a.output, a.packets, a.seed, a.format, a.truth, a.payload == "tls")
    params = {"generator": "benchmarks/make_capture.py", "packets": a.packets, "seed": a.seed,
              "format": a.format, "payload": a.payload, "flows": max(1, a.packets // 200),
              "written": n}
    if a.params:  # benchmarks print these next to their figures (harness.params_line)
        with open(a.output + ".params.json", "w") as pf:
            json.dump(params, pf)
    print(f"wrote {n} packets to {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
