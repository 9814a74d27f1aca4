"""Real captures for the robustness and redaction tests, and ways to damage them.

``loopback_capture`` records real traffic with real tcpdump on the loopback
interface: a TLS-looking request/response on IPv4 and IPv6, a short silence,
then an abortive close (SO_LINGER 0, so the kernel sends the RST) and a
connection to a closed port (RST from the kernel).  Only 127.0.0.1 and ::1
are used.

The damage functions work on the bytes of classic pcap files (the record
walk is written here, independently of rstscope's readers).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

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
    """None if tcpdump on loopback can run here, else the reason."""
    if shutil.which("tcpdump") is None:
        return "tcpdump is not installed"
    if os.geteuid() != 0:
        return "capturing on loopback needs root"
    return None


def _free_port(family: socket.AddressFamily, host: str) -> int:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


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


def loopback_capture(out: Path, *, extra_args: tuple[str, ...] = (), idle_s: float = 0.2) -> Path:
    """Capture the scenario above with tcpdump on ``lo`` into ``out``."""
    p4 = _free_port(socket.AF_INET, "127.0.0.1")
    p6 = _free_port(socket.AF_INET6, "::1")
    closed = _free_port(socket.AF_INET, "127.0.0.1")
    bpf = f"port {p4} or port {p6} or port {closed}"
    # --immediate-mode: without it libpcap hands packets over in blocks and
    # tcpdump, stopped by SIGINT, can exit before writing the last block.
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-w", str(out), *extra_args, bpf],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        line = ""
        for _ in range(5):  # "listening on ..." once armed (after e.g. "data link type ...")
            line = proc.stderr.readline()
            if "listening on" in line or not line:
                break
        if "listening on" not in line:
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")
        _exchange(socket.AF_INET, "127.0.0.1", p4, idle_s)
        _exchange(socket.AF_INET6, "::1", p6, idle_s)
        _refused(socket.AF_INET, "127.0.0.1", closed)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return out


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
