"""Probe segments and reply parsing, checked against scapy (an independent dissector)."""

from __future__ import annotations

import pytest

from rstscope.probe import segments as pk

scapy_inet = pytest.importorskip("scapy.layers.inet")
scapy_inet6 = pytest.importorskip("scapy.layers.inet6")
IP, TCP, ICMP = scapy_inet.IP, scapy_inet.TCP, scapy_inet.ICMP
IPerror, TCPerror = scapy_inet.IPerror, scapy_inet.TCPerror
IPv6, ICMPv6TimeExceeded = scapy_inet6.IPv6, scapy_inet6.ICMPv6TimeExceeded
IPerror6, TCPerror6 = scapy_inet6.IPerror6, scapy_inet6.TCPerror


def _seg(payload: bytes = b"x") -> bytes:
    return pk.tcp_header(sport=40000, dport=443, seq=2**32 - 1, ack=12345, flags=pk.TH_ACK,
                         window=502, options=pk.timestamp_option(7, 9), payload=payload)


def test_ipv4_packet_checksums_and_fields_match_scapy() -> None:
    raw = pk.ipv4_packet(src="192.0.2.2", dst="203.0.113.2", ttl=3, ip_id=0xBEEF,
                         segment=_seg())
    p = IP(raw)
    assert (p.ttl, p.id, p.src, p.dst, int(p.flags)) == (3, 0xBEEF, "192.0.2.2", "203.0.113.2", 2)
    t = p[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, bytes(t.payload)) == (40000, 443, 2**32 - 1, 12345, b"x")
    assert dict(t.options)["Timestamp"] == (7, 9)
    # scapy recomputes both checksums when they are deleted: ours must be identical.
    ref = p.copy()
    del ref.chksum
    del ref[TCP].chksum
    ref = IP(bytes(ref))
    assert (p.chksum, t.chksum) == (ref.chksum, ref[TCP].chksum)


def test_ipv6_tcp_checksum_matches_scapy() -> None:
    seg = pk.tcp6_checksummed("2001:db8:1::2", "2001:db8:4::2", _seg(b"hello"))
    hdr = bytes(IPv6(src="2001:db8:1::2", dst="2001:db8:4::2", nh=6, plen=len(seg)))[:40]
    p = IPv6(hdr + seg)
    ours = p[TCP].chksum
    del p[TCP].chksum
    assert IPv6(bytes(p))[TCP].chksum == ours


def test_parse_ipv4_tcp_reads_ttl_ip_id_and_timestamps() -> None:
    raw = bytes(IP(src="203.0.113.2", dst="192.0.2.2", ttl=61, id=77)
                / TCP(sport=443, dport=40000, flags="RA", seq=5, ack=6,
                      options=[("NOP", None), ("NOP", None), ("Timestamp", (100, 200))])
                / b"abc")
    s = pk.parse_ipv4_tcp(raw)
    assert s is not None
    assert (s.src, s.sport, s.dport, s.ttl, s.ip_id, s.payload_len) == (
        "203.0.113.2", 443, 40000, 61, 77, 3)
    assert s.flags & pk.TH_RST and (s.ts_val, s.ts_ecr) == (100, 200)
    assert s.seq_end == 8


def test_parse_icmp4_time_exceeded_quote() -> None:
    inner = IPerror(src="192.0.2.2", dst="203.0.113.2", ttl=1, id=4242) / TCPerror(
        sport=40000, dport=443, seq=99)
    raw = bytes(IP(src="198.51.100.2", dst="192.0.2.2") / ICMP(type=11, code=0) / inner)
    e = pk.parse_icmp4(raw)
    assert e is not None
    assert (e.kind, e.src, e.quoted_src, e.quoted_dst, e.sport, e.dport, e.seq, e.quoted_ip_id) \
        == ("time-exceeded", "198.51.100.2", "192.0.2.2", "203.0.113.2", 40000, 443, 99, 4242)
    unreach = bytes(IP(src="198.51.100.2", dst="192.0.2.2") / ICMP(type=3, code=13) / inner)
    assert pk.parse_icmp4(unreach).kind == "unreachable"  # type: ignore[union-attr]
    # Not a TCP quote: ignored.
    assert pk.parse_icmp4(bytes(IP() / ICMP(type=11) / IPerror(proto=17) / b"12345678")) is None


def test_parse_icmp6_time_exceeded_quote() -> None:
    msg = bytes(ICMPv6TimeExceeded() / IPerror6(src="2001:db8:1::2", dst="2001:db8:4::2",
                                                 hlim=1) / TCPerror6(sport=40000, dport=443,
                                                                     seq=7))
    e = pk.parse_icmp6(msg, src="2001:db8:2::2")
    assert e is not None
    assert (e.kind, e.src, e.quoted_dst, e.sport, e.dport, e.seq, e.quoted_ip_id) == (
        "time-exceeded", "2001:db8:2::2", "2001:db8:4::2", 40000, 443, 7, None)


def test_truncated_input_is_ignored() -> None:
    assert pk.parse_ipv4_tcp(b"\x45" + b"\0" * 10) is None
    assert pk.parse_icmp4(b"") is None
    assert pk.parse_icmp6(b"\x03\x00", src="::1") is None
    with pytest.raises(ValueError):
        pk.tcp_header(sport=1, dport=2, seq=0, ack=0, flags=0, window=0, options=b"\x01")
