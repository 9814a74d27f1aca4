"""Make a capture shareable: strip payloads, anonymise addresses, zero MACs.

What survives is exactly what rstscope's verdicts need: timestamps, IP and
TCP headers (TTL, IP ID, DF, lengths, seq/ack, flags, window, options) and,
optionally, the first bytes of TLS records (content type and handshake type).

Payload removal works like a small snaplen: each frame is cut right after the
TCP header, the captured length shrinks, and the original wire length and
the IP total-length field stay as they were.  The packet then reads as
honestly truncated, and every analyser (tshark's ``tcp.len``, rstscope's
``payload_len``) still derives the payload length from the IP header, so
sequence-space reasoning is unchanged.

Addresses are mapped with Crypto-PAn (prefix-preserving, keyed): the same
key gives the same mapping across files.  The IPv4 header checksum is
recomputed and TCP/UDP checksums are updated incrementally (RFC 1624) for
the new pseudo-header addresses, so they stay valid for the original,
untruncated segment.
"""

from __future__ import annotations

import gzip
import os
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, cast

from rstscope.errors import InputMissingError, OutputError, UsageError
from rstscope.redact.container import Frame, RawReader, RawWriter, SectionStart
from rstscope.redact.cryptopan import KEY_LEN, CryptoPAn
from rstscope.wire.linktypes import (
    ET_IPV4,
    ET_IPV6,
    ET_MPLS,
    ET_PPPOE_SESSION,
    ETHERTYPE_MIN,
    LINK_LAYERS,
    NX_ETHER,
    NX_IPVER,
    NX_LLC,
    NX_NONE,
    NX_PPP,
    NX_WLAN,
    PPP_TO_ETHERTYPE,
    PPPOE_HEADER_LEN,
    VLAN_TAG_LEN,
    VLAN_TPIDS,
    first_layer,
)
from rstscope.wire.opener import open_input
from rstscope.wire.pcapng import Interface

GRE_ARUBA_WLAN: Final = 0x8200  # Aruba controllers tunnel raw 802.11 frames in GRE
GRE_PPP: Final = 0x880B  # PPTP's enhanced GRE
GRE_ERSPAN: Final = 0x88BE  # type I without a sequence number, type II with one
GRE_ERSPAN3: Final = 0x22EB
GRE_TEB: Final = 0x6558  # transparent Ethernet bridging
TLS_KEEP: Final = 5  # record header: type, version (2), length (2)
UDP_TEREDO: Final = 3544
UDP_VXLAN: Final = 4789
UDP_GENEVE: Final = 6081
_MAX_NEST: Final = 4  # tunnels inside tunnels: stop somewhere sane


@dataclass(slots=True)
class RedactStats:
    """Counts from one redaction run."""

    fmt: str = ""
    frames: int = 0
    tcp_segments: int = 0
    addresses_v4: int = 0
    addresses_v6: int = 0
    blanked: dict[str, int] = field(default_factory=dict)  # frames emptied, by reason
    bytes_in: int = 0
    bytes_out: int = 0
    dropped_blocks: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# -- keys ---------------------------------------------------------------------


def parse_key_hex(text: str) -> bytes:
    """A 32-byte key from 64 hex digits."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError as exc:
        raise UsageError("the Crypto-PAn key must be 64 hex digits") from exc
    if len(key) != KEY_LEN:
        raise UsageError(f"the Crypto-PAn key must be {KEY_LEN} bytes (64 hex digits), got {len(key)}")
    return key


def load_key(path: str | os.PathLike[str]) -> bytes:
    """A key file: 32 raw bytes, or 64 hex digits as text."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise InputMissingError(f"{os.fspath(path)}: key file not found") from exc
    except OSError as exc:
        raise InputMissingError(f"{os.fspath(path)}: cannot read key file: {exc.strerror}") from exc
    if len(raw) == KEY_LEN:
        return raw
    try:
        return parse_key_hex(raw.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise UsageError("a key file holds 32 raw bytes or 64 hex digits") from exc


def new_key() -> bytes:
    """A fresh random key."""
    return secrets.token_bytes(KEY_LEN)


# -- checksums ----------------------------------------------------------------


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _ip_checksum(hdr: bytes | bytearray) -> int:
    if len(hdr) % 2:
        hdr = bytes(hdr) + b"\x00"
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    return ~_fold(s) & 0xFFFF


def _adjust_checksum(old_ck: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over the changed 16-bit words."""
    s = ~old_ck & 0xFFFF
    for (o,), (n,) in zip(struct.iter_unpack("!H", old), struct.iter_unpack("!H", new), strict=True):
        s += (~o & 0xFFFF) + n
    return ~_fold(s) & 0xFFFF


# -- frames -------------------------------------------------------------------


class FrameRedactor:
    """Rewrites one frame at a time; holds the key and the counters."""

    def __init__(self, cpan: CryptoPAn, *, keep_tls_headers: bool = False) -> None:
        self.cpan = cpan
        self.keep_tls_headers = keep_tls_headers
        self.stats = RedactStats()
        self._seen4: set[bytes] = set()
        self._seen6: set[bytes] = set()

    def redact(self, linktype: int, data: bytes) -> bytes:
        """The redacted frame: a prefix of ``data`` with addresses and MACs rewritten."""
        buf = bytearray(data)
        cut = self._link(linktype, buf)
        if cut is None:
            key = f"linktype-{linktype}-unsupported"
            self.stats.blanked[key] = self.stats.blanked.get(key, 0) + 1
            return b""
        return bytes(buf[: min(cut, len(buf))])

    def _link(self, linktype: int, buf: bytearray) -> int | None:
        # The same link-layer table and first step as ingest's decoder
        # (rstscope.wire.linktypes): every link type analyze reads is redacted.
        step = first_layer(linktype, buf)
        if step is None:
            return None
        for start, end in LINK_LAYERS[linktype].address_spans:
            buf[start:end] = bytes(len(buf[start:end]))
        pos, nxt = step
        return self._next(buf, pos, nxt, 0)

    def _next(self, buf: bytearray, pos: int, nxt: int, depth: int) -> int:
        """Follow a "what comes next" code of the wire layer's tables."""
        n = len(buf)
        if pos >= n or nxt == NX_NONE:
            return min(pos, n)
        if nxt == NX_ETHER:
            return self._ether(buf, pos, depth)
        if nxt in (NX_IPVER, ET_IPV4, ET_IPV6):
            return self._ip_by_version(buf, pos, depth)
        if nxt == NX_LLC:
            return self._llc(buf, pos, depth)
        if nxt == NX_WLAN:
            return self._wlan(buf, pos, depth)
        if nxt == NX_PPP:
            return self._ppp(buf, pos, depth)
        if nxt < 0:
            return pos
        return self._ethertype(buf, pos, nxt, depth)

    def _ether(self, buf: bytearray, off: int, depth: int) -> int:
        buf[off : off + 12] = bytes(len(buf[off : off + 12]))  # destination and source MAC
        if off + 14 > len(buf):
            return len(buf)
        etype = int.from_bytes(buf[off + 12 : off + 14], "big")
        if etype < ETHERTYPE_MIN:  # IEEE 802.3 length field: an LLC header follows
            return self._llc(buf, off + 14, depth)
        return self._ethertype(buf, off + 14, etype, depth)

    def _ppp(self, buf: bytearray, pos: int, depth: int) -> int:
        n = len(buf)
        if buf[pos : pos + 2] == b"\xff\x03":  # HDLC-like framing: address and control
            pos += 2
        if pos >= n:
            return n
        if buf[pos] & 1:  # protocol-field compression: a 1-byte protocol
            proto, plen = buf[pos], 1
        else:
            proto, plen = int.from_bytes(buf[pos : pos + 2], "big"), 2
        et = PPP_TO_ETHERTYPE.get(proto)
        if et is None:
            return min(pos + plen, n)  # LCP, IPCP, ...: keep the protocol field only
        return self._ip_by_version(buf, pos + plen, depth)

    def _llc(self, buf: bytearray, off: int, depth: int) -> int:
        """LLC; only SNAP with an EtherType (aa aa 03 + OUI + type) leads on to IP."""
        if off + 8 <= len(buf) and buf[off : off + 3] == b"\xaa\xaa\x03":
            return self._ethertype(buf, off + 8, int.from_bytes(buf[off + 6 : off + 8], "big"), depth)
        return min(off + 3, len(buf))

    def _wlan(self, buf: bytearray, off: int, depth: int) -> int:
        """IEEE 802.11: zero every address; only data frames lead on (via LLC) to IP."""
        n = len(buf)
        if off + 24 > n:
            buf[off + 4 : n] = bytes(max(0, n - off - 4))
            return n
        fc0, fc1 = buf[off], buf[off + 1]
        ftype, subtype = (fc0 >> 2) & 0x3, fc0 >> 4
        buf[off + 4 : off + 22] = bytes(18)  # addresses 1-3
        if ftype != 2:
            return off + 24  # management/control frames carry SSIDs and names, not TCP
        pos = off + 24
        if fc1 & 0x03 == 0x03:  # to-DS and from-DS: a fourth address
            buf[pos : min(pos + 6, n)] = bytes(min(6, n - pos))
            pos += 6
        if subtype & 0x8:  # QoS data: QoS control, and HT control when the order bit is set
            pos += 2 + (4 if fc1 & 0x80 else 0)
        if fc1 & 0x40 or subtype & 0x4:  # protected (encrypted) or no-data frames
            return min(pos, n)
        return self._llc(buf, pos, depth)

    def _ethertype(self, buf: bytearray, off: int, etype: int, depth: int) -> int:
        n = len(buf)
        if etype in (ET_IPV4, ET_IPV6):
            return self._ip_by_version(buf, off, depth)
        if etype in VLAN_TPIDS:  # tag control, then the next ethertype
            if off + VLAN_TAG_LEN > n:
                return n
            inner = int.from_bytes(buf[off + 2 : off + 4], "big")
            return self._ethertype(buf, off + VLAN_TAG_LEN, inner, depth)
        if etype == ET_PPPOE_SESSION:  # the session id is not an address; keep it
            return self._ppp(buf, off + PPPOE_HEADER_LEN, depth) if off + PPPOE_HEADER_LEN < n \
                else n
        if etype in ET_MPLS:  # labels down to the bottom of the stack, then IP by version
            pos = off
            while pos + 4 <= n:
                bottom = buf[pos + 2] & 1
                pos += 4
                if bottom:
                    return self._ip_by_version(buf, pos, depth)
            return n
        # ARP, LLC, LLDP, ...: they carry addresses or names and no TCP; keep the link header.
        return off

    def _ip_by_version(self, buf: bytearray, off: int, depth: int) -> int:
        if off >= len(buf) or depth > _MAX_NEST:
            return off
        version = buf[off] >> 4
        if version == 4:
            return self._ipv4(buf, off, depth)
        if version == 6:
            return self._ipv6(buf, off, depth)
        return off

    def _anon(self, buf: bytearray, start: int, size: int) -> None:
        """Anonymise the address at buf[start:start+size]; zero it if only partly captured."""
        if start + size > len(buf):
            if start < len(buf):
                buf[start:] = bytes(len(buf) - start)
            return
        old = bytes(buf[start : start + size])
        seen = self._seen4 if size == 4 else self._seen6
        if old not in seen and len(seen) < 1 << 20:
            seen.add(old)
            if size == 4:
                self.stats.addresses_v4 += 1
            else:
                self.stats.addresses_v6 += 1
        buf[start : start + size] = self.cpan.anonymize_bytes(old)

    def _ipv4(self, buf: bytearray, off: int, depth: int) -> int:
        n = len(buf)
        if n < off + 20:
            self._anon(buf, off + 12, 4)
            self._anon(buf, off + 16, 4)
            return n
        ihl = (buf[off] & 0x0F) * 4
        if ihl < 20:
            return off + 12  # malformed: keep nothing that could hold an address
        old_pair = bytes(buf[off + 12 : off + 20])
        self._anon(buf, off + 12, 4)
        self._anon(buf, off + 16, 4)
        new_pair = bytes(buf[off + 12 : off + 20])
        # Options (record route, timestamps, source routes) can carry addresses:
        # overwrite them with NOPs so the header length, and all offsets, stay.
        opt_end = min(off + ihl, n)
        if opt_end > off + 20:
            buf[off + 20 : opt_end] = b"\x01" * (opt_end - off - 20)
        if n >= off + ihl:
            buf[off + 10 : off + 12] = b"\x00\x00"
            buf[off + 10 : off + 12] = _ip_checksum(buf[off : off + ihl]).to_bytes(2, "big")
        l4 = off + ihl
        frag = int.from_bytes(buf[off + 6 : off + 8], "big") & 0x1FFF
        if frag or l4 > n:
            return min(l4, n)
        total = int.from_bytes(buf[off + 2 : off + 4], "big")
        return self._l4(buf, buf[off + 9], l4, total - ihl, old_pair, new_pair, depth)

    def _ipv6(self, buf: bytearray, off: int, depth: int) -> int:
        n = len(buf)
        if n < off + 40:
            self._anon(buf, off + 8, 16)
            self._anon(buf, off + 24, 16)
            return n
        old_pair = bytes(buf[off + 8 : off + 40])
        self._anon(buf, off + 8, 16)
        self._anon(buf, off + 24, 16)
        new_pair = bytes(buf[off + 8 : off + 40])
        nh = buf[off + 6]
        remaining = int.from_bytes(buf[off + 4 : off + 6], "big")
        pos = off + 40
        while nh in (0, 43, 60, 44, 51, 50):
            if nh == 50:  # ESP: SPI and sequence number, the rest is encrypted payload
                return min(pos + 8, n)
            if pos + 8 > n:
                return pos
            if nh == 44:
                hlen = 8
                if int.from_bytes(buf[pos + 2 : pos + 4], "big") >> 3:
                    return pos + hlen  # not the first fragment: no transport header
            elif nh == 51:
                hlen = (buf[pos + 1] + 2) * 4
            else:
                hlen = (buf[pos + 1] + 1) * 8
            if pos + hlen > n:
                return pos
            if nh == 43:
                self._routing(buf, pos, hlen)
            elif nh == 60:
                self._dest_options(buf, pos, hlen)
            nh = buf[pos]
            pos += hlen
            remaining -= hlen
        return self._l4(buf, nh, pos, remaining, old_pair, new_pair, depth)

    def _routing(self, buf: bytearray, pos: int, hlen: int) -> None:
        rtype = buf[pos + 2]
        if rtype in (0, 2, 4):  # source route, mobile home address, segment routing
            count = (hlen - 8) // 16
            if rtype == 4:
                count = min(count, buf[pos + 4] + 1)  # last entry + 1 segments
            for i in range(count):
                self._anon(buf, pos + 8 + 16 * i, 16)
            tail = pos + 8 + 16 * count
            buf[tail : pos + hlen] = bytes(pos + hlen - tail)  # SRH TLVs
        else:
            buf[pos + 4 : pos + hlen] = bytes(hlen - 4)

    def _dest_options(self, buf: bytearray, pos: int, hlen: int) -> None:
        p, end = pos + 2, pos + hlen
        while p < end:
            otype = buf[p]
            if otype == 0:  # Pad1
                p += 1
                continue
            if p + 2 > end:
                return
            olen = buf[p + 1]
            if otype == 0xC9 and olen == 16 and p + 18 <= end:  # home address option
                self._anon(buf, p + 2, 16)
            p += 2 + olen

    def _l4(
        self,
        buf: bytearray,
        proto: int,
        l4: int,
        l4_len: int,
        old_pair: bytes,
        new_pair: bytes,
        depth: int,
    ) -> int:
        n = len(buf)
        if proto == 6:
            self.stats.tcp_segments += 1
            return self._tcp(buf, l4, l4_len, old_pair, new_pair)
        if proto == 17:
            self._fix_l4_checksum(buf, l4 + 6, old_pair, new_pair, zero_means_none=True)
            end = min(l4 + 8, n)
            if l4 + 8 <= n:
                sport = int.from_bytes(buf[l4 : l4 + 2], "big")
                dport = int.from_bytes(buf[l4 + 2 : l4 + 4], "big")
                if UDP_TEREDO in (sport, dport):
                    return self._teredo(buf, l4 + 8, depth)
                if UDP_VXLAN in (sport, dport) and l4 + 16 <= n:
                    return self._ether(buf, l4 + 16, depth + 1)
                if UDP_GENEVE in (sport, dport) and l4 + 16 <= n:
                    opt_len = (buf[l4 + 8] & 0x3F) * 4
                    inner = int.from_bytes(buf[l4 + 10 : l4 + 12], "big")
                    nxt = NX_ETHER if inner == GRE_TEB else inner
                    return self._next(buf, l4 + 16 + opt_len, nxt, depth + 1)
            return end
        if proto in (4, 41):  # IPv4 / IPv6 encapsulated in IP
            return self._ip_by_version(buf, l4, depth + 1)
        if proto == 47:
            return self._gre(buf, l4, depth)
        if proto in (1, 58):
            # Type, code, checksum, 4 bytes; errors quote the offending packet after it.
            return min(l4 + 8, n)
        return min(l4, n)

    def _tcp(self, buf: bytearray, l4: int, l4_len: int, old_pair: bytes, new_pair: bytes) -> int:
        n = len(buf)
        self._fix_l4_checksum(buf, l4 + 16, old_pair, new_pair, zero_means_none=False)
        if n < l4 + 13:
            return n
        doff = (buf[l4 + 12] >> 4) * 4
        if doff < 20:
            return min(l4 + 20, n)
        end = l4 + doff
        if self.keep_tls_headers and l4_len > doff and end + TLS_KEEP <= n:
            ct, major = buf[end], buf[end + 1]
            if 20 <= ct <= 23 and major == 3:
                end += TLS_KEEP
                if ct == 22 and end < n:
                    end += 1  # handshake type (ClientHello, ServerHello...), no content
        return min(end, n)

    def _fix_l4_checksum(
        self, buf: bytearray, at: int, old: bytes, new: bytes, *, zero_means_none: bool
    ) -> None:
        if at + 2 > len(buf) or old == new:
            return
        ck = int.from_bytes(buf[at : at + 2], "big")
        if ck == 0 and zero_means_none:
            return  # UDP over IPv4 without a checksum
        buf[at : at + 2] = _adjust_checksum(ck, old, new).to_bytes(2, "big")

    def _gre(self, buf: bytearray, off: int, depth: int) -> int:
        n = len(buf)
        if off + 4 > n:
            return n
        flags = int.from_bytes(buf[off : off + 2], "big")
        ptype = int.from_bytes(buf[off + 2 : off + 4], "big")
        version = flags & 0x7
        seq = bool(flags & 0x1000)
        if version == 1 and ptype == GRE_PPP:  # enhanced GRE (PPTP): the key is always there
            pos = off + 8 + 4 * seq + 4 * bool(flags & 0x0080)
        elif version == 0 and not flags & 0x4000:
            pos = off + 4 + 4 * bool(flags & 0x8000) + 4 * bool(flags & 0x2000) + 4 * seq
        else:
            return off + 4
        if pos > n:
            return n
        if ptype == GRE_TEB or (ptype == GRE_ERSPAN and not seq):
            return self._ether(buf, pos, depth + 1)
        if ptype == GRE_ARUBA_WLAN:
            return self._wlan(buf, pos, depth + 1)
        if ptype == GRE_PPP:
            return self._ppp(buf, pos, depth + 1)
        if ptype == GRE_ERSPAN:  # type II: an 8-byte header
            return self._ether(buf, pos + 8, depth + 1) if pos + 8 <= n else n
        if ptype == GRE_ERSPAN3:  # type III: 12 bytes, 8 more with the platform subheader
            if pos + 12 > n:
                return n
            return self._ether(buf, pos + 12 + 8 * (buf[pos + 11] & 1), depth + 1)
        return self._ethertype(buf, pos, ptype, depth + 1)

    def _teredo(self, buf: bytearray, pos: int, depth: int) -> int:
        n = len(buf)
        # Optional authentication indicator (0x0001) then origin indicator (0x0000),
        # which holds the client's obfuscated public address and port: zero it.
        if pos + 4 <= n and buf[pos : pos + 2] == b"\x00\x01":
            id_len, au_len = buf[pos + 2], buf[pos + 3]
            auth_end = pos + 4 + id_len + au_len + 9
            if auth_end > n:
                return pos
            buf[pos + 4 : auth_end] = bytes(auth_end - pos - 4)
            pos = auth_end
        if pos + 8 <= n and buf[pos : pos + 2] == b"\x00\x00":
            buf[pos + 2 : pos + 8] = bytes(6)
            pos += 8
        if pos < n and buf[pos] >> 4 == 6:
            return self._ipv6(buf, pos, depth + 1)
        return pos


# -- files --------------------------------------------------------------------


def redact_capture(
    source: str | os.PathLike[str] | IO[bytes],
    out: str | os.PathLike[str] | IO[bytes],
    key: bytes,
    *,
    keep_tls_headers: bool = False,
) -> RedactStats:
    """Write a redacted copy of ``source`` to ``out`` in the same container format.

    Every frame is kept (so frame numbers match the original); frames of link
    types that cannot be parsed are emptied (caplen 0) and counted.  A path
    ``out`` ending in ``.gz`` is gzip-compressed.

    Raises:
        InputMissingError, CaptureError: the input is missing or not a capture.
        OutputError: the output cannot be written.
    """
    red = FrameRedactor(CryptoPAn(key), keep_tls_headers=keep_tls_headers)
    opened = open_input(source)
    try:
        reader = RawReader(opened.buffered())
        if isinstance(out, (str, os.PathLike)):
            try:
                # Closed in the finally below (it may also be the caller's stream).
                if os.fspath(out).endswith(".gz"):
                    raw_dst: object = gzip.open(out, "wb")  # noqa: SIM115
                else:
                    raw_dst = open(out, "wb")  # noqa: SIM115
                dst = cast(IO[bytes], raw_dst)
            except OSError as exc:
                raise OutputError(f"{os.fspath(out)}: cannot write: {exc.strerror}") from exc
            close_dst = True
        else:
            dst, close_dst = out, False
        try:
            _copy(reader, RawWriter(dst, reader), red)
        finally:
            if close_dst:
                try:
                    dst.close()
                except OSError as exc:
                    raise OutputError(f"cannot finish the redacted capture: {exc}") from exc
    finally:
        opened.close()
    stats = red.stats
    stats.fmt = reader.stats.fmt
    stats.frames = reader.stats.frames
    stats.dropped_blocks = dict(reader.stats.dropped_blocks)
    stats.warnings = list(reader.stats.warnings)
    return stats


def _copy(reader: RawReader, writer: RawWriter, red: FrameRedactor) -> None:
    for item in reader:
        if isinstance(item, SectionStart):
            writer.section()
        elif isinstance(item, Interface):
            writer.interface(item)
        else:
            _redact_frame(item, red)
            writer.frame(item)


def _redact_frame(fr: Frame, red: FrameRedactor) -> None:
    red.stats.bytes_in += len(fr.data)
    new = red.redact(fr.linktype, fr.data)
    if fr.fixed_length:
        # A simple packet block has no captured-length field: blank the cut
        # bytes instead of dropping them, so the frame keeps its size.
        new = new + bytes(len(fr.data) - len(new))
    red.stats.bytes_out += len(new)
    fr.data = new
