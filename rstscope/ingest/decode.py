"""Vectorised frame decoding: link layer -> IP (and tunnels) -> TCP header record.

Input is a buffer plus a :class:`RecordTable`; output is a PACKET_DTYPE batch
(one row per TCP segment) and a count of every other frame by kind.

How it stays fast: frames are grouped by what comes next ("an Ethernet frame
at these offsets", "an IPv4 header at these offsets") and each group is
handled with a handful of vectorised gathers.  In an ordinary capture there
is one group per layer, so a batch costs ~a dozen numpy passes; rare shapes
(VLAN stacks, IP options, IPv6 extension headers, tunnels) just create more,
smaller groups through the same code.

Semantics follow Wireshark/tshark so counts can be checked against it:

- a frame is a TCP segment when its innermost IP header is complete, says
  TCP, is not a fragment, and at least the 4 port bytes were captured
  (tshark's ``tcp`` filter matches from exactly that point);
- ``payload_len`` is tshark's ``tcp.len``: the IP length (or, for an IPv4
  total length of 0 written by TSO, the frame's wire length) minus headers,
  capped by the frame's wire length; Ethernet padding and trailers never count;
  ``ip_len`` is likewise the header's total length except for those TSO zeros;
- IP fragments are not reassembled: every fragment is counted as
  ``ipv4-fragment``/``ipv6-fragment`` (tshark, which reassembles, shows one
  TCP segment on the frame that completes a datagram);
- TCP carried in ICMP error quotes is counted as ``icmp``/``icmpv6``;
- tunnels (IP-in-IP, 6in4, GRE incl. Aruba WLAN and ERSPAN, VXLAN, GENEVE,
  Teredo, MPLS, PPPoE) are decoded and the row describes the innermost IP.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import cast

import numpy as np

from rstscope.ingest.record_table import RecordTable
from rstscope.schema import PACKET_DTYPE, TH_RST, empty_batch
from rstscope.wire.gather import be16, be32, byte_at, gather

# Link types, "what comes next" codes, ethertypes and the link-layer table live in
# the wire layer, which redaction reads too.
from rstscope.wire.linktypes import (
    ET_IPV4,
    ET_IPV6,
    ET_MPLS,
    ET_PPPOE_SESSION,
    LT_ETHERNET,
    LT_FDDI,
    LT_IPV4,
    LT_LOOP,
    LT_NULL,
    LT_RAW,
    LT_RAW_12,
    LT_RAW_14,
    LT_SLL,
    LT_SLL2,
    NX_ERSPAN2,
    NX_ERSPAN3,
    NX_ETHER,
    NX_GRE,
    NX_IPVER,
    NX_LLC,
    NX_NONE,
    NX_PPP,
    NX_TCP,
    NX_UDP,
    NX_WLAN,
    PPP_TO_ETHERTYPE,
    PPPOE_HEADER_LEN,
    SUPPORTED_LINKTYPES,
    VLAN_TAG_LEN,
    VLAN_TPIDS,
    first_layers,
)

# Frame-kind codes.  0 is TCP; fixed kinds below; computed kinds are offset ranges.
K_TCP = 0
_FIXED_KINDS = (
    "tcp", "truncated", "arp", "llc", "ipv4-fragment", "ipv6-fragment", "udp", "icmp",
    "icmpv6", "bad-ip-header", "wlan-mgmt", "wlan-ctrl", "wlan-nodata", "wlan-protected",
    "wlan-amsdu", "gre-other", "ipv6-no-next-header", "ppp-other", "fddi-other", "too-deep",
    "null-unknown-af",
)
_K = {name: i for i, name in enumerate(_FIXED_KINDS)}
_K_ETHERTYPE = 0x10000
_K_IPPROTO = 0x20000
_K_LINKTYPE = 0x30000

_IP_PROTO_NAMES = {2: "igmp", 50: "esp", 132: "sctp", 89: "ospf", 112: "vrrp", 103: "pim"}
_ETHERTYPE_NAMES = {0x0806: "arp", 0x8035: "arp", 0x88CC: "lldp", 0x8137: "ipx",
                    0x888E: "eapol", 0x86DD: "ipv6-bad", 0x0800: "ipv4-bad"}

# A link header followed by nothing rstscope reads: what to count the frame as.
_NOTHING_NEXT = {LT_NULL: _K["null-unknown-af"], LT_LOOP: _K["null-unknown-af"],
                 LT_FDDI: _K["fddi-other"]}

_V6_EXT = (0, 43, 60, 44, 51, 135, 139, 140)
_MAX_PASSES = 24


def kind_name(code: int) -> str:
    if code < _K_ETHERTYPE:
        return _FIXED_KINDS[code]
    if code < _K_IPPROTO:
        et = code - _K_ETHERTYPE
        return _ETHERTYPE_NAMES.get(et, f"ethertype-0x{et:04x}")
    if code < _K_LINKTYPE:
        p = code - _K_IPPROTO
        return _IP_PROTO_NAMES.get(p, f"ip-proto-{p}")
    return f"linktype-{code - _K_LINKTYPE}-unsupported"


@dataclass(frozen=True, slots=True)
class Decoded:
    """One decoded batch: TCP rows plus counts of what every other frame was."""

    batch: np.ndarray  # PACKET_DTYPE, TCP segments only, in frame order
    non_tcp: Counter[str]
    linktypes: Counter[int]
    rst: int


def decode_records(buf: np.ndarray, rec: RecordTable, *, frame0: int, file_id: int) -> Decoded:
    """Decode every frame of ``rec``; frame numbers are ``frame0, frame0+1, ...``."""
    n = len(rec)
    fast_idx: np.ndarray | None = None
    fast_out: np.ndarray | None = None
    rest = np.arange(n)
    linktypes: Counter[int] | None = None
    if n:
        lt0 = int(rec.linktype[0])
        if (rec.linktype == lt0).all():
            linktypes = Counter({lt0: n})
        if lt0 in _FAST_L2 and linktypes is not None:
            fast_idx, fast_out = _fast_path(buf, rec, lt0)
            if fast_idx.size == n:
                rest = rest[:0]
            elif fast_idx.size:
                keep = np.ones(n, dtype=bool)
                keep[fast_idx] = False
                rest = np.nonzero(keep)[0]
    if rest.size == n:
        run = _Run(buf, rec, rest)
        dec = run.finish(frame0, file_id)
        return Decoded(dec.batch, dec.non_tcp, linktypes or _linktypes(rec), dec.rst)
    assert fast_idx is not None and fast_out is not None
    fast_out["frame"] = fast_idx.astype(np.uint64) + np.uint64(frame0)
    fast_out["file_id"] = file_id
    non_tcp: Counter[str] = Counter()
    batch = fast_out
    if rest.size:
        sub = RecordTable(*(getattr(rec, f)[rest] for f in _REC_FIELDS))
        dec = _Run(buf, sub, rest).finish(frame0, file_id)
        non_tcp = dec.non_tcp
        if len(dec.batch):
            both = np.concatenate([fast_out, dec.batch])
            batch = both[np.argsort(both["frame"], kind="stable")]
    rst = int(np.count_nonzero(batch["flags"] & TH_RST))
    return Decoded(batch, non_tcp, linktypes or _linktypes(rec), rst)


_REC_FIELDS = ("off", "caplen", "wirelen", "ts_ns", "linktype", "iface")
# Link types with a fixed-length header before IP: (header length, ethertype offset or
# None when the header has no protocol field).
_FAST_L2: dict[int, tuple[int, int | None]] = {
    LT_ETHERNET: (14, 12), LT_RAW: (0, None), LT_RAW_12: (0, None), LT_RAW_14: (0, None),
    LT_IPV4: (0, None), LT_SLL: (16, 14), LT_SLL2: (20, 0),
}
_FAST_DTYPES: dict[int, np.dtype] = {}


# Bytes the fast path reads after the link header: IPv4 (20) + TCP (20) + the usual
# NOP,NOP,Timestamps option block (12) + 6 bytes of a TLS record header.
_FAST_SPAN = 58
_NOP_NOP_TS = 0x0101080A
# A numpy scalar, not a Python int, so np.where promotes unsigned fields to int64
# instead of wrapping -1 around.
_ABSENT = np.int64(-1)


def _fast_dtype(l2: int) -> np.dtype:
    dt = _FAST_DTYPES.get(l2)
    if dt is None:
        # Big-endian view of the gathered bytes.  The TLS fields overlap the option
        # fields on purpose: which ones mean something depends on the header length.
        f = [("vihl", "u1", 0), ("tot", ">u2", 2), ("id", ">u2", 4), ("frag", ">u2", 6),
             ("ttl", "u1", 8), ("proto", "u1", 9), ("src", "V4", 12), ("dst", "V4", 16),
             ("sport", ">u2", 20), ("dport", ">u2", 22), ("seq", ">u4", 24),
             ("ack", ">u4", 28), ("offfl", ">u2", 32), ("win", ">u2", 34),
             ("opt", ">u4", 40), ("tsval", ">u4", 44), ("tsecr", ">u4", 48),
             ("ct20", "u1", 40), ("maj20", "u1", 41), ("min20", "u1", 42), ("hs20", "u1", 45),
             ("ct32", "u1", 52), ("maj32", "u1", 53), ("min32", "u1", 54), ("hs32", "u1", 57)]
        dt = np.dtype({"names": [x[0] for x in f], "formats": [x[1] for x in f],
                       "offsets": [x[2] + l2 for x in f], "itemsize": l2 + _FAST_SPAN})
        _FAST_DTYPES[l2] = dt
    return dt


def _addr_bytes(out: np.ndarray, name: str) -> np.ndarray:
    """An ``(n, 16)`` uint8 view of the 16-byte address column ``name`` of ``out``."""
    off = PACKET_DTYPE.fields[name][1]  # type: ignore[index]
    return np.ndarray(shape=(len(out), 16), dtype=np.uint8, buffer=out, offset=off,
                      strides=(out.strides[0], 1))


def _fast_path(buf: np.ndarray, rec: RecordTable, lt: int) -> tuple[np.ndarray, np.ndarray]:
    """The common shape in one gather: L2 + IPv4 without options + TCP, not fragmented.

    Returns the record indices handled and their finished rows; every other
    record goes through the general layer-by-layer decoder.  The TCP
    timestamp option in its usual NOP,NOP,TS layout and a TLS record header
    right after a 20- or 32-byte TCP header are read from the same gather;
    the other option layouts and header lengths go through :func:`_options`
    and :func:`_tls`, which give the same values for the common rows.
    """
    l2, et_off = _FAST_L2[lt]
    width = l2 + 40
    g = gather(buf, rec.off, l2 + _FAST_SPAN)
    h = g.view(_fast_dtype(l2)).ravel()
    caplen = rec.caplen
    ok = (h["vihl"] == 0x45) & (h["proto"] == 6) & ((h["frag"] & 0x3FFF) == 0) & \
        (h["tot"] >= 40) & (caplen >= width)
    if et_off is not None:
        ok &= (g[:, et_off] == 0x08) & (g[:, et_off + 1] == 0x00)
    if ok.all():
        idx = np.arange(len(rec))
        off = rec.off
        wirelen = rec.wirelen
        ts_ns = rec.ts_ns
        iface = rec.iface
    else:
        idx = np.nonzero(ok)[0]
        h = h[idx]
        off = rec.off[idx]
        caplen = caplen[idx]
        wirelen = rec.wirelen[idx]
        ts_ns = rec.ts_ns[idx]
        iface = rec.iface[idx]
    m = idx.size
    out = np.empty(m, dtype=PACKET_DTYPE)
    if not m:
        return idx, out
    hb = h.view(np.uint8).reshape(m, l2 + _FAST_SPAN)  # h is contiguous: gathered or copied
    for name, col in (("src", l2 + 12), ("dst", l2 + 16)):
        a = _addr_bytes(out, name)
        a[:, :10] = 0
        a[:, 10:12] = 0xFF
        a[:, 12:16] = hb[:, col:col + 4]
    out["ts_ns"] = ts_ns
    out["iface"] = iface
    out["ip_v"] = 4
    out["ttl"] = h["ttl"]
    out["ip_id"] = h["id"]
    frag = h["frag"]
    out["df"] = (frag & 0x4000) != 0
    tot = h["tot"]
    out["ip_len"] = tot
    out["sport"] = h["sport"]
    out["dport"] = h["dport"]
    out["seq"] = h["seq"]
    out["ack"] = h["ack"]
    offfl = h["offfl"]
    out["flags"] = offfl & 0x1FF
    out["win"] = h["win"]
    hlen = (offfl >> 12).astype(np.int64) << 2
    # Bytes captured from the TCP header on, and the payload: the IP length capped
    # by what was on the wire (never counting Ethernet padding).
    avail = caplen - (l2 + 20)
    rep = np.minimum(np.maximum(wirelen, caplen) - (l2 + 20), tot.astype(np.int64) - 20)
    pay = rep - hlen
    np.maximum(pay, 0, out=pay)
    pay[hlen < 20] = 0
    out["payload_len"] = pay
    out["truncated"] = avail < hlen
    out["mss"] = -1
    out["wscale"] = -1
    out["sack_ok"] = False
    # NOP,NOP,TS in a 32-byte header: the option layout of most data segments.
    ts_fast = (hlen == 32) & (avail >= 32) & (h["opt"] == _NOP_NOP_TS)
    out["tsval"] = np.where(ts_fast, h["tsval"], _ABSENT)
    out["tsecr"] = np.where(ts_fast, h["tsecr"], _ABSENT)
    h20 = hlen == 20
    h32 = hlen == 32
    cap_pay = avail - hlen
    cand = (pay >= 5) & (cap_pay >= 5)
    ct = np.where(h20, h["ct20"], h["ct32"])
    tls = cand & (h20 | h32) & (ct >= 20) & (ct <= 23) & \
        (np.where(h20, h["maj20"], h["maj32"]) == 3) & (np.where(h20, h["min20"], h["min32"]) <= 4)
    out["tls_ct"] = np.where(tls, ct, _ABSENT)
    hs = tls & (ct == 22) & (pay >= 6) & (cap_pay >= 6)
    out["tls_hs"] = np.where(hs, np.where(h20, h["hs20"], h["hs32"]), _ABSENT)
    # The rest (SYNs with their option sets, other layouts, odd header lengths):
    # the general walkers, on those rows only.
    slow_opt = (hlen > 20) & (avail > 20) & ~ts_fast
    slow_tls = cand & ~(h20 | h32)
    if slow_opt.any() or slow_tls.any():
        p = off + (l2 + 20)
        if slow_opt.any():
            _options(out, buf, p, np.where(slow_opt, hlen, 20), avail)
        if slow_tls.any():
            _tls(out, buf, p, hlen, avail, np.where(slow_tls, pay, 0))
    return idx, out


def _linktypes(rec: RecordTable) -> Counter[int]:
    lts, counts = np.unique(rec.linktype, return_counts=True)
    return Counter(dict(zip(lts.tolist(), counts.tolist(), strict=True)))


class _Run:
    """State for decoding one record table (arrays indexed by record)."""

    def __init__(self, buf: np.ndarray, rec: RecordTable, index: np.ndarray) -> None:
        n = len(rec)
        self.buf = buf
        self.rec = rec
        self.index = index  # each record's position in the caller's table (frame order)
        self.n = n
        self.cap_end = rec.off + rec.caplen
        # Wireshark's "reported length": what was on the wire, never less than captured.
        self.rep_end = rec.off + np.maximum(rec.wirelen, rec.caplen)
        self.why = np.full(n, -1, dtype=np.int64)
        self.ip_v = np.zeros(n, dtype=np.uint8)
        self.ttl = np.zeros(n, dtype=np.uint8)
        self.ip_id = np.full(n, -1, dtype=np.int32)
        self.df = np.zeros(n, dtype=bool)
        self.ip_len = np.zeros(n, dtype=np.uint32)
        self.src = np.zeros((n, 16), dtype=np.uint8)
        self.dst = np.zeros((n, 16), dtype=np.uint8)
        self.tcp_pos = np.zeros(n, dtype=np.int64)
        self.queue: list[tuple[np.ndarray, np.ndarray, int]] = []
        self._link_layer()
        self._drain()

    # ---------------------------------------------------------------- helpers
    def _kind(self, idx: np.ndarray, code: int) -> None:
        if idx.size:
            self.why[idx] = code

    def _need(self, idx: np.ndarray, pos: np.ndarray, nbytes: int | np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Keep rows with ``nbytes`` captured at ``pos``; the rest are 'truncated'."""
        ok = pos + nbytes <= self.cap_end[idx]
        if ok.all():
            return idx, pos
        self._kind(idx[~ok], _K["truncated"])
        return idx[ok], pos[ok]

    def _push(self, idx: np.ndarray, pos: np.ndarray, nxt: int | np.ndarray) -> None:
        if not idx.size:
            return
        if isinstance(nxt, (int, np.integer)):
            self.queue.append((idx, pos, int(nxt)))
            return
        vals = np.unique(nxt)
        if vals.size == 1:
            self.queue.append((idx, pos, int(vals[0])))
            return
        for v in vals.tolist():
            m = nxt == v
            self.queue.append((idx[m], pos[m], int(v)))

    # ------------------------------------------------------------- link layer
    def _link_layer(self) -> None:
        lt = self.rec.linktype
        if self.n == 0:
            return
        lts = np.unique(lt)
        for v in lts.tolist():
            idx = np.arange(self.n) if lts.size == 1 else np.nonzero(lt == v)[0]
            pos = self.rec.off[idx]
            self._link(int(v), idx, pos)

    def _link(self, lt: int, idx: np.ndarray, pos: np.ndarray) -> None:
        if lt not in SUPPORTED_LINKTYPES:
            self._kind(idx, _K_LINKTYPE + lt)
            return
        ok, nxt_pos, nxt = first_layers(lt, self.buf, pos, self.cap_end[idx])
        self._kind(idx[~ok], _K["truncated"])
        idx, nxt_pos, nxt = idx[ok], nxt_pos[ok], nxt[ok]
        none = nxt == NX_NONE
        if none.any():
            self._kind(idx[none], _NOTHING_NEXT.get(lt, _K["truncated"]))
            idx, nxt_pos, nxt = idx[~none], nxt_pos[~none], nxt[~none]
        self._push(idx, nxt_pos, nxt)

    # ---------------------------------------------------------------- dispatch
    def _drain(self) -> None:
        passes = 0
        while self.queue:
            passes += 1
            batch, self.queue = self.queue, []
            if passes > _MAX_PASSES:
                for idx, _pos, _nx in batch:
                    self._kind(idx, _K["too-deep"])
                return
            for idx, pos, nx in batch:
                self._step(idx, pos, nx)

    def _step(self, idx: np.ndarray, pos: np.ndarray, nx: int) -> None:
        if nx == ET_IPV4:
            self._ipv4(idx, pos)
        elif nx == ET_IPV6:
            self._ipv6(idx, pos)
        elif nx == NX_TCP:
            idx, pos = self._need(idx, pos, 4)
            self.why[idx] = K_TCP
            self.tcp_pos[idx] = pos
        elif nx == NX_ETHER:
            self._ether(idx, pos)
        elif nx == NX_IPVER:
            idx, pos = self._need(idx, pos, 1)
            ver = byte_at(self.buf, pos) >> 4
            nxt = np.where(ver == 4, ET_IPV4, np.where(ver == 6, ET_IPV6, NX_NONE))
            bad = nxt == NX_NONE
            self._kind(idx[bad], _K["bad-ip-header"])
            self._push(idx[~bad], pos[~bad], nxt[~bad])
        elif nx in VLAN_TPIDS:
            idx, pos = self._need(idx, pos, VLAN_TAG_LEN)
            g = gather(self.buf, pos, VLAN_TAG_LEN)
            self._push(idx, pos + VLAN_TAG_LEN, be16(g, 2))
        elif nx == NX_UDP:
            self._udp(idx, pos)
        elif nx == NX_GRE:
            self._gre(idx, pos)
        elif nx == NX_LLC:
            idx, pos = self._need(idx, pos, 3)
            g = gather(self.buf, pos, 8)
            snap = (g[:, 0] == 0xAA) & (g[:, 1] == 0xAA) & (g[:, 2] == 0x03)
            self._kind(idx[~snap], _K["llc"])
            idx, pos = self._need(idx[snap], pos[snap], 8)
            g = gather(self.buf, pos, 8)
            self._push(idx, pos + 8, be16(g, 6))
        elif nx == NX_WLAN:
            self._wlan(idx, pos)
        elif nx == NX_PPP:
            self._ppp(idx, pos)
        elif nx == ET_PPPOE_SESSION:  # a 6-byte header, then a PPP protocol field
            self._push(idx, pos + PPPOE_HEADER_LEN, NX_PPP)
        elif nx in ET_MPLS:
            self._mpls(idx, pos)
        elif nx == NX_ERSPAN2:
            self._push(idx, pos + 8, NX_ETHER)
        elif nx == NX_ERSPAN3:
            idx, pos = self._need(idx, pos, 12)
            sub = byte_at(self.buf, pos + 11) & 1  # O bit: 8-byte platform subheader
            self._push(idx, pos + 12 + 8 * sub, NX_ETHER)
        elif nx >= 0:
            self._kind(idx, _K_ETHERTYPE + nx)
        else:  # pragma: no cover - every negative code is handled above
            raise AssertionError(nx)

    # ------------------------------------------------------------ L2 formats
    def _ether(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 14)
        et = be16(gather(self.buf, pos + 12, 2), 0)
        l3 = pos + 14
        is_len = et < 0x0600  # 802.3 length field: an LLC header follows
        if is_len.any():
            self._push(idx[is_len], l3[is_len], NX_LLC)
            keep = ~is_len
            idx, l3, et = idx[keep], l3[keep], et[keep]
        self._push(idx, l3, et)

    def _wlan(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 24)
        fc0 = byte_at(self.buf, pos)
        fc1 = byte_at(self.buf, pos + 1)
        ftype = (fc0 >> 2) & 3
        sub = fc0 >> 4
        data = ftype == 2
        self._kind(idx[ftype == 0], _K["wlan-mgmt"])
        self._kind(idx[ftype == 1], _K["wlan-ctrl"])
        self._kind(idx[ftype == 3], _K["wlan-ctrl"])
        nodata = data & ((sub & 4) != 0)
        prot = data & ~nodata & ((fc1 & 0x40) != 0)
        self._kind(idx[nodata], _K["wlan-nodata"])
        self._kind(idx[prot], _K["wlan-protected"])
        ok = data & ~nodata & ~prot
        idx, pos, fc1, sub = idx[ok], pos[ok], fc1[ok], sub[ok]
        qos = (sub & 8) != 0
        addr4 = (fc1 & 3) == 3  # to-DS and from-DS: a fourth address
        htc = qos & ((fc1 & 0x80) != 0)
        hlen = 24 + 6 * addr4 + 2 * qos + 4 * htc
        fit = pos + hlen + 3 <= self.cap_end[idx]
        self._kind(idx[~fit], _K["truncated"])
        idx, pos, hlen, qos, addr4 = idx[fit], pos[fit], hlen[fit], qos[fit], addr4[fit]
        qos_ctl = byte_at(self.buf, pos + 24 + 6 * addr4)
        amsdu = qos & ((qos_ctl & 0x80) != 0)
        self._kind(idx[amsdu], _K["wlan-amsdu"])
        self._push(idx[~amsdu], pos[~amsdu] + hlen[~amsdu], NX_LLC)

    def _ppp(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 2)
        g = gather(self.buf, pos, 4)
        hdlc = (g[:, 0] == 0xFF) & (g[:, 1] == 0x03)
        p = pos + 2 * hdlc
        b0 = byte_at(self.buf, p)
        short = (b0 & 1) == 1  # protocol-field compression: a 1-byte protocol
        proto = np.where(short, b0, (b0 << 8) | byte_at(self.buf, p + 1))
        nxt = np.full(idx.size, NX_NONE, dtype=np.int64)
        for ppp_proto, et in PPP_TO_ETHERTYPE.items():
            nxt[proto == ppp_proto] = et
        bad = nxt == NX_NONE
        self._kind(idx[bad], _K["ppp-other"])
        ok = ~bad
        self._push(idx[ok], p[ok] + np.where(short[ok], 1, 2), nxt[ok])

    def _mpls(self, idx: np.ndarray, pos: np.ndarray) -> None:
        # Walk the label stack to the bottom-of-stack bit, then guess IP by version
        # nibble as Wireshark does.
        while idx.size:
            idx, pos = self._need(idx, pos, 4)
            bos = (byte_at(self.buf, pos + 2) & 1) == 1
            self._push(idx[bos], pos[bos] + 4, NX_IPVER)
            idx, pos = idx[~bos], pos[~bos] + 4

    # ------------------------------------------------------------- IP layers
    def _ipv4(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 20)
        if not idx.size:
            return
        g = gather(self.buf, pos, 20)
        ver = g[:, 0] >> 4
        ihl = (g[:, 0] & 15).astype(np.int64) * 4
        total = be16(g, 2)
        tso = total == 0  # TSO/GSO capture on the sender: Wireshark uses the frame length
        bad = (ver != 4) | (ihl < 20) | ((total < ihl) & ~tso)
        if bad.any():
            self._kind(idx[bad], _K["bad-ip-header"])
            ok = ~bad
            idx, pos, g, ihl, total, tso = idx[ok], pos[ok], g[ok], ihl[ok], total[ok], tso[ok]
        ok = pos + ihl <= self.cap_end[idx]
        if not ok.all():
            self._kind(idx[~ok], _K["truncated"])
            idx, pos, g, ihl, total, tso = idx[ok], pos[ok], g[ok], ihl[ok], total[ok], tso[ok]
        if not idx.size:
            return
        eff = np.where(tso, self.rep_end[idx] - pos, total)
        self.rep_end[idx] = np.minimum(self.rep_end[idx], pos + eff)
        frag = be16(g, 6)
        self.ip_v[idx] = 4
        self.ttl[idx] = g[:, 8]
        self.ip_id[idx] = be16(g, 4)
        self.df[idx] = (frag & 0x4000) != 0
        self.ip_len[idx] = eff  # tshark's ip.len: the frame length for TSO zeros
        src = self.src
        dst = self.dst
        src[idx, 10] = 0xFF
        src[idx, 11] = 0xFF
        dst[idx, 10] = 0xFF
        dst[idx, 11] = 0xFF
        src[idx, :10] = 0
        dst[idx, :10] = 0
        src[idx, 12:16] = g[:, 12:16]
        dst[idx, 12:16] = g[:, 16:20]
        isfrag = (frag & 0x3FFF) != 0
        if isfrag.any():
            self._kind(idx[isfrag], _K["ipv4-fragment"])
            ok = ~isfrag
            idx, pos, g, ihl = idx[ok], pos[ok], g[ok], ihl[ok]
        self._proto(idx, pos + ihl, g[:, 9].astype(np.int64))

    def _ipv6(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 40)
        if not idx.size:
            return
        g = gather(self.buf, pos, 40)
        bad = (g[:, 0] >> 4) != 6
        if bad.any():
            self._kind(idx[bad], _K["bad-ip-header"])
            idx, pos, g = idx[~bad], pos[~bad], g[~bad]
        plen = be16(g, 4)
        eff = np.where(plen == 0, self.rep_end[idx] - pos, plen + 40)
        self.rep_end[idx] = np.minimum(self.rep_end[idx], pos + eff)
        self.ip_v[idx] = 6
        self.ttl[idx] = g[:, 7]
        self.ip_id[idx] = -1
        self.df[idx] = False
        self.ip_len[idx] = plen + 40
        self.src[idx] = g[:, 8:24]
        self.dst[idx] = g[:, 24:40]
        nh = g[:, 6].astype(np.int64)
        cur = pos + 40
        # Extension-header chain; each pass peels one header off the rows that have one.
        done_idx, done_cur, done_nh = [], [], []
        while idx.size:
            ext = np.isin(nh, _V6_EXT)
            done_idx.append(idx[~ext])
            done_cur.append(cur[~ext])
            done_nh.append(nh[~ext])
            idx, cur, nh = idx[ext], cur[ext], nh[ext]
            if not idx.size:
                break
            keep = cur + 8 <= self.cap_end[idx]
            self._kind(idx[~keep], _K["truncated"])
            idx, cur, nh = idx[keep], cur[keep], nh[keep]
            h = gather(self.buf, cur, 8)
            is_frag = nh == 44
            fragmented = is_frag & (((be16(h, 2) & 0xFFF8) != 0) | ((h[:, 3] & 1) == 1))
            self._kind(idx[fragmented], _K["ipv6-fragment"])
            length = np.where(is_frag, 8,
                              np.where(nh == 51, (h[:, 1].astype(np.int64) + 2) * 4,
                                       (h[:, 1].astype(np.int64) + 1) * 8))
            keep = ~fragmented
            idx, cur, nh = idx[keep], (cur + length)[keep], h[:, 0].astype(np.int64)[keep]
        if done_idx:
            self._proto(np.concatenate(done_idx), np.concatenate(done_cur),
                        np.concatenate(done_nh))

    def _proto(self, idx: np.ndarray, pos: np.ndarray, proto: np.ndarray) -> None:
        if not idx.size:
            return
        nxt = np.full(idx.size, NX_NONE, dtype=np.int64)
        nxt[proto == 6] = NX_TCP
        nxt[proto == 4] = ET_IPV4
        nxt[proto == 41] = ET_IPV6
        nxt[proto == 47] = NX_GRE
        nxt[proto == 17] = NX_UDP
        other = nxt == NX_NONE
        if other.any():
            oi, op = idx[other], proto[other]
            self._kind(oi[op == 1], _K["icmp"])
            self._kind(oi[op == 58], _K["icmpv6"])
            self._kind(oi[op == 59], _K["ipv6-no-next-header"])
            rest = (op != 1) & (op != 58) & (op != 59)
            if rest.any():
                self.why[oi[rest]] = _K_IPPROTO + op[rest]
            idx, pos, nxt = idx[~other], pos[~other], nxt[~other]
        self._push(idx, pos, nxt)

    def _udp(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 8)
        g = gather(self.buf, pos, 8)
        sport, dport = be16(g, 0), be16(g, 2)

        def port(p: int) -> np.ndarray:
            return cast(np.ndarray, (sport == p) | (dport == p))

        vx = port(4789)
        gen = port(6081) & ~vx
        ter = port(3544) & ~vx & ~gen
        plain = ~(vx | gen | ter)
        self._kind(idx[plain], _K["udp"])
        self._push(idx[vx], pos[vx] + 16, NX_ETHER)
        if gen.any():
            gi, gp = self._need(idx[gen], pos[gen], 16)
            h = gather(self.buf, gp + 8, 8)
            optlen = (h[:, 0] & 0x3F).astype(np.int64) * 4
            et = be16(h, 2)
            self._push(gi, gp + 16 + optlen, np.where(et == 0x6558, NX_ETHER, et))
        if ter.any():
            ti, tp = idx[ter], pos[ter] + 8
            # Teredo authentication (0x0001) and origin-indication (0x0000) headers.
            ti, tp = self._need(ti, tp, 2)
            h = gather(self.buf, tp, 4)
            auth = (h[:, 0] == 0) & (h[:, 1] == 1)
            id_len, au_len = h[:, 2].astype(np.int64), h[:, 3].astype(np.int64)
            tp = np.where(auth, tp + 4 + id_len + au_len + 9, tp)
            h = gather(self.buf, tp, 2)
            orig = (h[:, 0] == 0) & (h[:, 1] == 0)
            tp = np.where(orig, tp + 8, tp)
            ver = byte_at(self.buf, tp) >> 4
            v6 = ver == 6
            self._kind(ti[~v6], _K["udp"])
            self._push(ti[v6], tp[v6], ET_IPV6)

    def _gre(self, idx: np.ndarray, pos: np.ndarray) -> None:
        idx, pos = self._need(idx, pos, 4)
        g = gather(self.buf, pos, 4)
        flags = be16(g, 0)
        ptype = be16(g, 2)
        ver = flags & 7
        c, r, k, s = ((flags & b) != 0 for b in (0x8000, 0x4000, 0x2000, 0x1000))
        ack = (flags & 0x0080) != 0
        hlen0 = 4 + 4 * (c | r) + 4 * k + 4 * s
        hlen1 = 8 + 4 * s + 4 * ack  # enhanced GRE (PPTP): key always present
        v0 = (ver == 0) & ~r
        v1 = (ver == 1) & (ptype == 0x880B)
        self._kind(idx[~(v0 | v1)], _K["gre-other"])
        hlen = np.where(v1, hlen1, hlen0)
        nxt = np.where(ptype == 0x6558, NX_ETHER,
              np.where(ptype == 0x8200, NX_WLAN,  # Aruba WLAN: an 802.11 frame
              np.where(ptype == 0x880B, NX_PPP,
              np.where((ptype == 0x88BE) & s, NX_ERSPAN2,
              np.where(ptype == 0x88BE, NX_ETHER,
              np.where(ptype == 0x22EB, NX_ERSPAN3, ptype))))))
        ok = v0 | v1
        self._push(idx[ok], pos[ok] + hlen[ok], nxt[ok])

    # ---------------------------------------------------------------- output
    def finish(self, frame0: int, file_id: int) -> Decoded:
        rec = self.rec
        why = self.why
        assert not (why < 0).any(), "decoder left a frame unclassified"
        t = np.nonzero(why == K_TCP)[0]
        m = t.size
        out = empty_batch(m)
        if m:
            self._tcp_fields(out, t)
            out["file_id"] = file_id
            out["frame"] = self.index[t].astype(np.uint64) + np.uint64(frame0)
            out["ts_ns"] = rec.ts_ns[t]
            out["iface"] = rec.iface[t]
            out["ip_v"] = self.ip_v[t]
            out["src"] = self.src[t].view("S16").ravel()
            out["dst"] = self.dst[t].view("S16").ravel()
            out["ttl"] = self.ttl[t]
            out["ip_id"] = self.ip_id[t]
            out["df"] = self.df[t]
            out["ip_len"] = self.ip_len[t]
        non_tcp: Counter[str] = Counter()
        codes, counts = np.unique(why[why != K_TCP], return_counts=True)
        for code, cnt in zip(codes.tolist(), counts.tolist(), strict=True):
            non_tcp[kind_name(code)] += cnt
        rst = int(np.count_nonzero(out["flags"] & TH_RST)) if m else 0
        return Decoded(out, non_tcp, Counter(), rst)

    def _tcp_fields(self, out: np.ndarray, t: np.ndarray) -> None:
        buf = self.buf
        p = self.tcp_pos[t]
        avail = self.cap_end[t] - p
        g = gather(buf, p, 20)
        sport = be16(g, 0)
        dport = be16(g, 2)
        seq = be32(g, 4)
        ack = be32(g, 8)
        doff = (g[:, 12] >> 4).astype(np.int64)
        flags = ((g[:, 12].astype(np.int64) & 1) << 8) | g[:, 13]
        win = be16(g, 14)
        short = avail < 20
        if short.any():
            # Snaplen cut the fixed header: keep what was captured, zero the rest.
            seq[avail < 8] = 0
            ack[avail < 12] = 0
            doff[avail < 13] = 5
            flags[avail < 14] = 0
            win[avail < 16] = 0
        hlen = doff * 4
        out["sport"] = sport
        out["dport"] = dport
        out["seq"] = seq
        out["ack"] = ack
        out["flags"] = flags
        out["win"] = win
        good_hlen = hlen >= 20
        pay = np.where(good_hlen, self.rep_end[t] - p - hlen, 0)
        out["payload_len"] = np.maximum(pay, 0)
        out["truncated"] = short | (avail < hlen)
        _options(out, buf, p, hlen, avail)
        _tls(out, buf, p, hlen, avail, np.maximum(pay, 0))


def _options(out: np.ndarray, buf: np.ndarray, p: np.ndarray, hlen: np.ndarray,
             avail: np.ndarray) -> None:
    has = (hlen > 20) & (avail > 20)
    if not has.any():
        return
    rows = np.nonzero(has)[0]
    # Fast path: the 12-byte NOP,NOP,TS layout that most data segments carry.
    g = gather(buf, p[rows] + 20, 12)
    fast = (hlen[rows] == 32) & (avail[rows] >= 32) & (g[:, 0] == 1) & (g[:, 1] == 1) & \
           (g[:, 2] == 8) & (g[:, 3] == 10)
    if fast.any():
        fr = rows[fast]
        out["tsval"][fr] = be32(g[fast], 4)
        out["tsecr"][fr] = be32(g[fast], 8)
    rows = rows[~fast]
    if not rows.size:
        return
    og = gather(buf, p[rows] + 20, 44)  # 40 option bytes + slack for reads past the end
    declared = hlen[rows] - 20
    lim = np.minimum(declared, avail[rows] - 20)
    cur = np.zeros(rows.size, dtype=np.int64)
    live = np.arange(rows.size)
    mss = out["mss"]
    ws = out["wscale"]
    sack = out["sack_ok"]
    tsv = out["tsval"]
    tse = out["tsecr"]
    trunc = out["truncated"]
    for _ in range(40):
        live = live[cur[live] < lim[live]]
        if not live.size:
            break
        c = cur[live]
        kind = og[live, c]
        end = kind == 0
        nop = kind == 1
        cl = c + 1
        has_len = cl < lim[live]
        length = np.where(has_len, og[live, np.minimum(cl, 43)], 0).astype(np.int64)
        multi = ~end & ~nop
        bad = multi & (~has_len | (length < 2))
        cut = multi & ~bad & (c + length > lim[live])
        # An option running past the captured bytes (but within the header) is a
        # snaplen cut; past the declared header it is malformed.  Both stop parsing.
        cut_snap = cut & (c + length <= declared[live])
        if cut_snap.any():
            trunc[rows[live[cut_snap]]] = True
        valid = multi & ~bad & ~cut
        r = rows[live]
        k2 = valid & (kind == 2) & (length == 4)
        if k2.any():
            mss[r[k2]] = (og[live[k2], c[k2] + 2].astype(np.int64) << 8) | \
                og[live[k2], c[k2] + 3]
        k3 = valid & (kind == 3) & (length == 3)
        if k3.any():
            ws[r[k3]] = og[live[k3], c[k3] + 2]
        k4 = valid & (kind == 4) & (length == 2)
        if k4.any():
            sack[r[k4]] = True
        k8 = valid & (kind == 8) & (length == 10)
        if k8.any():
            lv, cc = live[k8], c[k8]
            tv = np.zeros(lv.size, dtype=np.int64)
            te = np.zeros(lv.size, dtype=np.int64)
            for j in range(4):
                tv = (tv << 8) | og[lv, cc + 2 + j]
                te = (te << 8) | og[lv, cc + 6 + j]
            tsv[r[k8]] = tv
            tse[r[k8]] = te
        step = np.where(nop, 1, length)
        stop = end | bad | cut
        cur[live] = np.where(stop, lim[live], c + step)

def _tls(out: np.ndarray, buf: np.ndarray, p: np.ndarray, hlen: np.ndarray,
         avail: np.ndarray, pay: np.ndarray) -> None:
    cap_pay = avail - hlen
    cand = (hlen >= 20) & (pay >= 5) & (cap_pay >= 5)
    if not cand.any():
        return
    rows = np.nonzero(cand)[0]
    g = gather(buf, p[rows] + hlen[rows], 6)
    ct = g[:, 0]
    tls = (ct >= 20) & (ct <= 23) & (g[:, 1] == 3) & (g[:, 2] <= 4)
    if not tls.any():
        return
    tr = rows[tls]
    out["tls_ct"][tr] = ct[tls]
    hs = tls & (ct == 22) & (pay[rows] >= 6) & (cap_pay[rows] >= 6)
    out["tls_hs"][rows[hs]] = g[hs, 5]


