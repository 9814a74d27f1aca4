"""On-path RST injector (a DPI box), written with scapy.

Runs in a transit namespace, watches forwarded traffic, and when it sees a TLS
ClientHello carrying the chosen SNI it forges RSTs toward both ends, while the
kernel keeps forwarding the real packets (an on-path, not in-path, injector:
the injection race is real).  ``single`` sends one RST each way with the exact
expected sequence number; ``storm`` sends three each way with stepped sequence
numbers, as some national firewalls do.

Prints ``{"event": "ready"}`` once sniffing, and one line per forged packet.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

#: Sequence-number steps for the storm style (in bytes past the expected value).
STORM_STEPS = (0, 1460, 4380)


def client_hello_sni(payload: bytes) -> str | None:
    """The server_name of a TLS ClientHello at the start of ``payload``, if any."""
    # record header (5) + handshake header (4) + version (2) + random (32)
    if len(payload) < 44 or payload[0] != 0x16 or payload[5] != 0x01:
        return None
    i = 43
    try:
        i += 1 + payload[i]  # session id
        i += 2 + int.from_bytes(payload[i:i + 2], "big")  # cipher suites
        i += 1 + payload[i]  # compression methods
        end = i + 2 + int.from_bytes(payload[i:i + 2], "big")
        i += 2
        while i + 4 <= min(end, len(payload)):
            ext_type = int.from_bytes(payload[i:i + 2], "big")
            ext_len = int.from_bytes(payload[i + 2:i + 4], "big")
            if ext_type == 0:  # server_name: list len (2), type (1), name len (2), name
                name_len = int.from_bytes(payload[i + 7:i + 9], "big")
                return payload[i + 9:i + 9 + name_len].decode("ascii", "replace")
            i += 4 + ext_len
    except IndexError:
        return None
    return None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.injector")
    ap.add_argument("--iface", required=True, help="interface the client's packets arrive on")
    ap.add_argument("--sni", required=True, help="inject when a ClientHello names this host")
    ap.add_argument("--style", choices=("single", "storm"), default="single")
    ap.add_argument("--ttl", type=int, default=64, help="TTL/hop limit of forged packets")
    args = ap.parse_args(argv)

    # lazy: scapy takes seconds to import; only capture and the lab use it
    from scapy.config import conf
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.sendrecv import AsyncSniffer, send

    conf.verb = 0
    # Sockets opened once: scapy's send() opening one per packet costs milliseconds,
    # and the injector must beat the real server's answer to the client.
    sock4, sock6 = conf.L3socket(), conf.L3socket6()
    done: set[tuple[Any, ...]] = set()

    def forge(src: str, dst: str, sport: int, dport: int, seq: int, v6: bool) -> Any:
        ip = IPv6(src=src, dst=dst, hlim=args.ttl) if v6 else IP(src=src, dst=dst, ttl=args.ttl)
        return ip / TCP(sport=sport, dport=dport, flags="R", seq=seq % 2**32, window=0)

    def on_packet(pkt: Any) -> None:
        if TCP not in pkt:
            return
        v6 = IPv6 in pkt
        ip = pkt[IPv6] if v6 else pkt[IP]
        tcp = pkt[TCP]
        payload = bytes(tcp.payload)
        sni = client_hello_sni(payload)
        key = (ip.src, tcp.sport, ip.dst, tcp.dport)
        if sni != args.sni or key in done:
            return
        done.add(key)
        steps = STORM_STEPS if args.style == "storm" else (0,)
        for step in steps:
            # Toward the client, pretending to be the server: its next seq is our ack.
            to_client = forge(ip.dst, ip.src, tcp.dport, tcp.sport, tcp.ack + step, v6)
            # Toward the server, pretending to be the client: just past the ClientHello.
            to_server = forge(ip.src, ip.dst, tcp.sport, tcp.dport,
                              tcp.seq + len(payload) + step, v6)
            sock = sock6 if v6 else sock4
            send(to_client, socket=sock)
            send(to_server, socket=sock)
            print(json.dumps({"event": "injected", "ts_ns": time.time_ns(), "sni": sni,
                              "to_client_seq": int(to_client[TCP].seq),
                              "to_server_seq": int(to_server[TCP].seq)}), flush=True)

    sniffer = AsyncSniffer(iface=args.iface, filter="tcp", prn=on_packet, store=False,
                           started_callback=lambda: print(json.dumps({"event": "ready"}),
                                                          flush=True))
    sniffer.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if sniffer.running:
            sniffer.stop()


if __name__ == "__main__":
    main()
