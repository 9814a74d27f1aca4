"""Generate a deterministic synthetic port-443 capture for reader benchmarks.

    python benchmarks/make_capture.py 1000000 out.pcap [--format pcapng] [--seed 443]

Standard library and numpy only.  Same arguments -> byte-identical file.

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
import struct
import sys

import numpy as np

ETH = bytes.fromhex("020000000002" "020000000001" "0800")
MSS = 1448
SYN_OPTS_LEN = 20
TS_OPTS_LEN = 12


def _flow_packets(rng: random.Random, fid: int, t0: float, n_target: int, kind: str,
                  has_ts: bool, idle: float) -> list[tuple]:
    """Packets of one flow as tuples (ts, dir, flags, seq, ack, plen, opt, tls, ttl_kind)."""
    cseq = rng.getrandbits(32)
    sseq = rng.getrandbits(32)
    rtt = rng.uniform(0.002, 0.08)
    t = t0
    out: list[tuple] = []
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


def generate(n: int, seed: int) -> tuple[list[tuple], list[dict]]:
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


def write(path: str, n: int, seed: int, fmt: str, truth_path: str | None) -> int:
    rng = random.Random(seed + 1)
    pkts, truth, flows = generate(n, seed)  # type: ignore[misc]
    # Per-flow constants: addresses, ports, TTLs, IP ID counters.
    fid_of = np.concatenate([np.full(len(pk), i, dtype=np.int64) for i, pk in enumerate(flows)])
    ts = np.array([p[0] for p in pkts])
    order = np.argsort(ts, kind="stable")
    n_flows = len(flows)
    caddr = [bytes((198, 51, 100, 1 + rng.randrange(250))) for _ in range(n_flows)]
    saddr = [bytes((203, 0, 113, 1 + rng.randrange(60))) for _ in range(n_flows)]
    cport = [rng.randrange(1024, 65535) for _ in range(n_flows)]
    sttl = {s: rng.choice((64, 128)) - rng.randrange(5, 25) for s in set(saddr)}
    ipid = [[rng.getrandbits(16), rng.getrandbits(16)] for _ in range(n_flows)]
    base_epoch = 1_700_000_000
    ip_hdr = struct.Struct("!BBHHHBBH4s4s")
    tcp_hdr = struct.Struct("!HHIIBBHHH")
    syn_opts = struct.Struct("!BBHBBBBIIBBBB")
    ts_opts = struct.Struct("!BBBBII")
    nsec = fmt == "pcapng"
    with open(path, "wb") as f:
        if fmt == "pcap":
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
            rec = struct.Struct("<IIII")
        else:
            shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
            idb = struct.pack("<IIHHI", 1, 20, 1, 0, 262144) + struct.pack("<I", 20)
            f.write(shb + idb)
            rec = struct.Struct("<IIIIIII")
        out = bytearray(72 << 20)
        pos = 0
        for i in order.tolist():
            t, d, flags, seq, ack, plen, opt, tls, ttl_kind = pkts[i]
            fid = int(fid_of[i])
            olen = SYN_OPTS_LEN if opt == 1 else TS_OPTS_LEN if opt == 2 else 0
            thl = 20 + olen
            ip_len = 20 + thl + plen
            frame_len = 14 + ip_len
            if pos + frame_len + 64 > len(out):
                f.write(memoryview(out)[:pos])
                out[:pos] = bytes(pos)
                pos = 0
            tsec = base_epoch + t
            sec = int(tsec)
            usec = int(round((tsec - sec) * 1e6))
            if usec >= 1_000_000:
                sec, usec = sec + 1, usec - 1_000_000
            if fmt == "pcap":
                rec.pack_into(out, pos, sec, usec, frame_len, frame_len)
                pos += 16
            else:
                blen = 32 + ((frame_len + 3) & ~3)
                tsu = sec * 1_000_000 + usec
                rec.pack_into(out, pos, 6, blen, 0, tsu >> 32, tsu & 0xFFFFFFFF, frame_len,
                              frame_len)
                pos += 28
            start = pos
            out[pos:pos + 14] = ETH
            pos += 14
            if d == 0:
                src, dst, sp, dp, ttl = caddr[fid], saddr[fid], cport[fid], 443, 64
            else:
                src, dst, sp, dp = saddr[fid], caddr[fid], 443, cport[fid]
                ttl = sttl[saddr[fid]]
            if ttl_kind:  # injected: a middlebox a different distance away, random IP ID
                ttl = (ttl + 7 + fid % 9) & 0xFF
                ident = rng.getrandbits(16)
            else:
                ident = ipid[fid][d] = (ipid[fid][d] + 1) & 0xFFFF
            ip_hdr.pack_into(out, pos, 0x45, 0, ip_len, ident, 0x4000, ttl, 6, 0, src, dst)
            pos += 20
            tcp_hdr.pack_into(out, pos, sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                              (thl // 4) << 4, flags, 502 if flags != 2 else 64240, 0, 0)
            pos += 20
            tsval = int(t * 1000) & 0xFFFFFFFF
            if opt == 1:
                syn_opts.pack_into(out, pos, 2, 4, 1460, 4, 2, 8, 10, tsval,
                                   0 if flags == 2 else tsval, 1, 3, 3, 7)
            elif opt == 2:
                ts_opts.pack_into(out, pos, 1, 1, 8, 10, tsval, tsval - 1 & 0xFFFFFFFF)
            pos += olen
            if tls and plen >= 6:
                ct = 22 if tls in (1, 2) else 23
                out[pos:pos + 6] = bytes((ct, 3, 3, (plen - 5) >> 8, (plen - 5) & 0xFF,
                                          tls if tls in (1, 2) else 0))
            pos += plen
            if fmt == "pcapng":
                pos = start + ((frame_len + 3) & ~3)
                struct.pack_into("<I", out, pos, 32 + ((frame_len + 3) & ~3))
                pos += 4
        f.write(memoryview(out)[:pos])
    del nsec
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
    a = ap.parse_args(argv)
    n = write(a.output, a.packets, a.seed, a.format, a.truth)
    print(f"wrote {n} packets to {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
