"""Real captures for the robustness and redaction tests, and ways to damage them.

``loopback_capture`` records real traffic with real tcpdump on the loopback
interface: a TLS-looking request/response on IPv4 and IPv6, a short silence,
then an abortive close (SO_LINGER 0, so the kernel sends the RST) and a
connection to a closed port (RST from the kernel).  Only 127.0.0.1 and ::1
are used, on the ``lo`` of a private network namespace (``tests.loopback``).

The damage functions work on the bytes of classic pcap files (the record
walk is written here, independently of rstscope's readers).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import threading
import time
from pathlib import Path

from tests.loopback import Tcpdump, free_port, in_private_netns, private_netns_problem

CLIENT_HELLO = bytes.fromhex("160301002a") + b"\x01" + bytes(41)  # record + handshake type
SERVER_DATA = bytes.fromhex("1703030100") + b"s" * 256


def shared_dir() -> Path:
    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("RSTSCOPE_SHARED", root.parent / "shared"))


def shared_captures() -> list[Path]:
    d = shared_dir() / "captures"
    if not d.is_dir():
        return []
    return sorted(p for p in d.rglob("*") if p.is_file() and ".pcap" in p.name)


def can_capture() -> str | None:
    """None if tcpdump on a loopback can run here, else the reason."""
    if shutil.which("tcpdump") is None:
        return "tcpdump is not installed"
    if private_netns_problem() is not None and os.geteuid() != 0:
        return f"capturing on loopback needs root here ({private_netns_problem()})"
    return None


def _exchange(family: socket.AddressFamily, host: str, port: int, idle_s: float) -> None:
    """One connection: request, response, silence, more data, then the server aborts."""
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        conn.recv(4096)
        conn.sendall(SERVER_DATA)
        conn.recv(4096)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # SO_LINGER 0: the kernel sends RST

    t = threading.Thread(target=serve)
    t.start()
    cli = socket.socket(family, socket.SOCK_STREAM)
    cli.settimeout(5)
    cli.connect((host, port))
    cli.sendall(CLIENT_HELLO)
    cli.recv(4096)
    time.sleep(idle_s)
    cli.sendall(b"more")
    try:
        while cli.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError):
        pass
    cli.close()
    t.join(5)
    srv.close()


def _refused(family: socket.AddressFamily, host: str, port: int) -> None:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect((host, port))
    except OSError:
        pass
    finally:
        s.close()


def _loopback_capture(out: Path, *, extra_args: tuple[str, ...] = (), idle_s: float = 0.2) -> Path:
    p4 = free_port(socket.AF_INET, "127.0.0.1")
    p6 = free_port(socket.AF_INET6, "::1")
    closed = free_port(socket.AF_INET, "127.0.0.1")
    bpf = f"port {p4} or port {p6} or port {closed}"
    with Tcpdump(out, bpf, extra_args=extra_args):
        _exchange(socket.AF_INET, "127.0.0.1", p4, idle_s)
        _exchange(socket.AF_INET6, "::1", p6, idle_s)
        _refused(socket.AF_INET, "127.0.0.1", closed)
    return out


def loopback_capture(out: Path, *, extra_args: tuple[str, ...] = (), idle_s: float = 0.2) -> Path:
    """Capture the scenario above with tcpdump on ``lo`` into ``out`` (a private
    network namespace's ``lo``: no root needed, see ``tests.loopback``)."""
    result: Path = in_private_netns(_loopback_capture, out, extra_args=extra_args, idle_s=idle_s)
    return result


# -- classic pcap walking and damage -------------------------------------------


def pcap_records(data: bytes) -> tuple[str, list[tuple[int, int]]]:
    """Byte order and (offset, length) of every record (header included) of a classic pcap."""
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = []
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from(endian + "I", data, pos + 8)[0]
        out.append((pos, 16 + incl))
        pos += 16 + incl
    return endian, out


def damage(data: bytes, kind: str, seed: int = 0) -> bytes:
    """A damaged copy of classic pcap ``data``; ``kind`` names the fault."""
    rng = random.Random(seed)
    endian, recs = pcap_records(data)
    buf = bytearray(data)
    mid_off, mid_len = recs[len(recs) // 2]
    if kind == "truncated-last-record":
        return data[: len(data) - max(1, recs[-1][1] // 2)]
    if kind == "truncated-header":
        return data[:20]
    if kind == "truncated-in-record-header":
        return data[: recs[-1][0] + 7]
    if kind == "zero-length":
        return b""
    if kind == "wrong-magic":
        buf[0:4] = b"\xde\xad\xbe\xef"
        return bytes(buf)
    if kind == "text-file":
        return b"this is not a capture\n" * 20
    if kind == "huge-caplen":
        struct.pack_into(endian + "I", buf, mid_off + 8, 0x7FFFFFF0)
        return bytes(buf)
    if kind == "zero-caplen":
        # Every record claims 0 captured bytes: the data bytes become garbage headers.
        struct.pack_into(endian + "I", buf, mid_off + 8, 0)
        return bytes(buf)
    if kind == "caplen-gt-wirelen":
        incl = struct.unpack_from(endian + "I", buf, mid_off + 8)[0]
        struct.pack_into(endian + "I", buf, mid_off + 12, max(0, incl - 10))
        return bytes(buf)
    if kind == "garbage-middle":
        return data[: mid_off] + bytes(rng.getrandbits(8) for _ in range(333)) + data[mid_off:]
    if kind == "corrupt-ip-headers":
        for off, length in recs:
            # Flip bytes in the link/IP header region of every packet.
            for _ in range(3):
                i = off + 16 + rng.randrange(0, min(60, length - 16))
                buf[i] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if kind == "random-bytes-everywhere":
        for _ in range(len(buf) // 50):
            i = rng.randrange(24, len(buf))
            buf[i] = rng.getrandbits(8)
        return bytes(buf)
    if kind == "out-of-order-timestamps":
        pieces = [data[o : o + n] for o, n in recs]
        rng.shuffle(pieces)
        return data[:24] + b"".join(pieces)
    if kind == "duplicated-packets":
        pieces = [data[o : o + n] for o, n in recs]
        return data[:24] + b"".join(p + p for p in pieces)
    if kind == "snaplen-65535-header":
        struct.pack_into(endian + "I", buf, 16, 65535)
        return bytes(buf)
    if kind == "snaplen-zero-header":
        struct.pack_into(endian + "I", buf, 16, 0)
        return bytes(buf)
    if kind == "unsupported-linktype":
        struct.pack_into(endian + "I", buf, 20, 147)  # LINKTYPE_USER0
        return bytes(buf)
    raise ValueError(kind)


DAMAGE_KINDS = (
    "truncated-last-record", "truncated-header", "truncated-in-record-header", "zero-length",
    "wrong-magic", "text-file", "huge-caplen", "zero-caplen", "caplen-gt-wirelen",
    "garbage-middle", "corrupt-ip-headers", "random-bytes-everywhere",
    "out-of-order-timestamps", "duplicated-packets", "snaplen-65535-header",
    "snaplen-zero-header", "unsupported-linktype",
)


def _ipv6_extension_capture(out: Path) -> Path:
    port = free_port(socket.AF_INET6, "::1")
    # A port filter would miss the client's packets: BPF's "port" only looks at
    # TCP right after the fixed IPv6 header, not behind extension headers.
    with Tcpdump(out, "ip6"):
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("::1", port))
        srv.listen(1)

        def serve() -> None:
            conn, _ = srv.accept()
            conn.recv(100)
            conn.sendall(SERVER_DATA)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        cli = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        pad = b"\x00\x00\x01\x04\x00\x00\x00\x00"  # next header, length 0, PadN of 4 bytes
        cli.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, pad)
        cli.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, pad)
        cli.settimeout(5)
        cli.connect(("::1", port))
        cli.sendall(CLIENT_HELLO)
        time.sleep(0.1)
        try:
            cli.sendall(b"late")
            cli.recv(4096)
        except OSError:
            pass
        cli.close()
        t.join(5)
        srv.close()
    return out


def ipv6_extension_capture(out: Path) -> Path:
    """Real kernel TCP over ::1 whose client packets carry hop-by-hop and
    destination-options headers (sticky IPV6_HOPOPTS / IPV6_DSTOPTS), then a RST
    (in a private network namespace: no root needed)."""
    result: Path = in_private_netns(_ipv6_extension_capture, out)
    return result


# -- pcapng walking and damage -----------------------------------------------------------


def pcapng_blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, total length) of each block of a little-endian pcapng file."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        btype, total = struct.unpack_from("<II", data, pos)
        out.append((pos, btype, total))
        if total < 12:
            break
        pos += total
    return out


def damage_pcapng(data: bytes, kind: str, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    blocks = pcapng_blocks(data)
    pkts = [b for b in blocks if b[1] in (3, 6)]
    buf = bytearray(data)
    mid = pkts[len(pkts) // 2]
    if kind == "ng-truncated-last-block":
        return data[: len(data) - pkts[-1][2] // 2]
    if kind == "ng-corrupt-block-length":
        struct.pack_into("<I", buf, mid[0] + 4, 0x7FFFFFFC)
        return bytes(buf)
    if kind == "ng-odd-block-length":
        struct.pack_into("<I", buf, mid[0] + 4, 13)
        return bytes(buf)
    if kind == "ng-garbage-between-blocks":
        return data[: mid[0]] + bytes(rng.getrandbits(8) for _ in range(101)) + data[mid[0]:]
    if kind == "ng-bad-interface-id":
        struct.pack_into("<I", buf, mid[0] + 8, 77)
        return bytes(buf)
    if kind == "ng-caplen-beyond-block":
        struct.pack_into("<I", buf, mid[0] + 20, 0xFFFF)
        return bytes(buf)
    if kind == "ng-unsupported-linktype":
        for off, btype, _ in blocks:
            if btype == 1:
                struct.pack_into("<H", buf, off + 8, 147)
        return bytes(buf)
    if kind == "ng-no-section-header":
        return data[blocks[1][0]:]
    if kind == "ng-second-section":
        # Two sections back to back: interface numbering restarts in the second one.
        return data + data
    raise ValueError(kind)


NG_DAMAGE_KINDS = (
    "ng-truncated-last-block", "ng-corrupt-block-length", "ng-odd-block-length",
    "ng-garbage-between-blocks", "ng-bad-interface-id", "ng-caplen-beyond-block",
    "ng-unsupported-linktype", "ng-no-section-header", "ng-second-section",
)
