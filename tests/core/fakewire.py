"""FakeWire: build PACKET_DTYPE batches of one TCP conversation by hand.

Like h11's ConnectionPair, it lets core tests run without files or sockets.  It
keeps both sides' sequence numbers, IP-ID counters and TTLs, and every packet
can override any field (ttl, ip_id, seq, ack, win, df, flags) to stage
middlebox and injection scenarios.
"""

from __future__ import annotations

import numpy as np

from rstscope.schema import (
    TH_ACK,
    TH_FIN,
    TH_PUSH,
    TH_RST,
    TH_SYN,
    addr_bytes,
    empty_batch,
)

NS = 1_000_000_000


class FakeWire:
    def __init__(self, client: str = "198.51.100.10", server: str = "203.0.113.20",
                 cport: int = 40000, sport: int = 443, *, client_ttl: int = 64,
                 server_ttl: int = 52, t0_s: float = 1_700_000_000.0,
                 client_isn: int = 1000, server_isn: int = 5_000_000,
                 client_ip_id: int = 100, server_ip_id: int = 20000, ip_v: int = 4) -> None:
        self.addr = {"c": client, "s": server}
        self.port = {"c": cport, "s": sport}
        self.ttl = {"c": client_ttl, "s": server_ttl}
        self.nxt = {"c": client_isn, "s": server_isn}
        self.ip_id = {"c": client_ip_id, "s": server_ip_id}
        self.win = {"c": 502, "s": 509}
        self.ip_v = ip_v
        self.t_ns = int(t0_s * NS)
        self.rows: list[dict[str, object]] = []

    # time
    def wait(self, seconds: float) -> FakeWire:
        self.t_ns += int(round(seconds * NS))
        return self

    # packets
    def pkt(self, side: str, flags: int, payload: int = 0, **over: object) -> dict[str, object]:
        peer = "s" if side == "c" else "c"
        seq = self.nxt[side]
        row: dict[str, object] = dict(
            ts_ns=self.t_ns, ip_v=self.ip_v, src=self.addr[side], dst=self.addr[peer],
            ttl=self.ttl[side], ip_id=self.ip_id[side] if self.ip_v == 4 else -1,
            df=self.ip_v == 4, ip_len=(20 if self.ip_v == 4 else 40) + 32 + payload,
            sport=self.port[side], dport=self.port[peer], seq=seq,
            ack=self.nxt[peer] if flags & TH_ACK else 0, flags=flags, win=self.win[side],
            payload_len=payload)
        row.update(over)
        consumes = payload + (1 if flags & TH_SYN else 0) + (1 if flags & TH_FIN else 0)
        if not flags & TH_RST and "seq" not in over:
            self.nxt[side] = (seq + consumes) % (1 << 32)
        if self.ip_v == 4 and "ip_id" not in over:
            self.ip_id[side] = (self.ip_id[side] + 1) & 0xFFFF
        self.rows.append(row)
        return row

    def handshake(self, client_side_rtt_s: float = 0.001, server_side_rtt_s: float = 0.040,
                  *, wscale: int = 7) -> FakeWire:
        """SYN, SYN/ACK after the server-side RTT, ACK after the client-side RTT."""
        self.pkt("c", TH_SYN, mss=1460, wscale=wscale, sack_ok=True)
        self.wait(server_side_rtt_s)
        self.pkt("s", TH_SYN | TH_ACK, mss=1460, wscale=wscale, sack_ok=True)
        self.wait(client_side_rtt_s)
        self.pkt("c", TH_ACK)
        return self

    def data(self, side: str, n: int = 100, **over: object) -> dict[str, object]:
        return self.pkt(side, TH_ACK | TH_PUSH, n, **over)

    def ack(self, side: str, **over: object) -> dict[str, object]:
        return self.pkt(side, TH_ACK, **over)

    def fin(self, side: str, **over: object) -> dict[str, object]:
        return self.pkt(side, TH_FIN | TH_ACK, **over)

    def rst(self, side: str, *, with_ack: bool = True, **over: object) -> dict[str, object]:
        return self.pkt(side, TH_RST | (TH_ACK if with_ack else 0), **over)

    def exchange(self, rounds: int = 3, gap_s: float = 0.05, rtt_s: float = 0.04) -> FakeWire:
        """Request/response rounds: client data, server ACK+data, client ACK."""
        for _ in range(rounds):
            self.data("c", 200)
            self.wait(rtt_s)
            self.data("s", 1000)
            self.wait(0.001)
            self.ack("c")
            self.wait(gap_s)
        return self

    def batch(self, start: int = 0, stop: int | None = None, *, file_id: int = 0) -> np.ndarray:
        rows = self.rows[start:stop]
        b = empty_batch(len(rows))
        for i, row in enumerate(rows):
            for k, v in row.items():
                b[k][i] = addr_bytes(str(v)) if k in ("src", "dst") else v
            b["frame"][i] = start + i + 1
            b["file_id"][i] = file_id
        return b


def merge(*batches: np.ndarray) -> np.ndarray:
    """Concatenate batches and renumber frames in time order (several wires, one capture)."""
    b = np.concatenate(batches)
    b = b[np.argsort(b["ts_ns"], kind="stable")]
    b["frame"] = np.arange(1, len(b) + 1)
    return b
