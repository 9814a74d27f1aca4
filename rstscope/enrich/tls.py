"""TLS and HTTP/2 facts from one dissected packet (a pyshark packet, duck-typed).

tshark packs several TLS records or HTTP/2 frames of one segment into one
layer with repeated fields; pyshark exposes them through ``all_fields``.  The
repeated fields line up per record (``record.content_type``/``record.length``)
or per frame (``type``/``streamid``/``length``); the type-specific ones
(alert level, GOAWAY error, ``:status``) appear once per record/frame of that
type, so they are consumed in order as those types come up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rstscope.enrich.context import Http2Frame, TlsAlert, TlsRecord
from rstscope.enrich.names import h2_type_name, tls_version_name


@dataclass(frozen=True, slots=True)
class PacketFacts:
    """Everything enrichment keeps from one packet."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    dst: str
    dport: int
    records: tuple[TlsRecord, ...]
    alerts: tuple[TlsAlert, ...]
    http2: tuple[Http2Frame, ...]
    sni: str | None
    alpn: tuple[str, ...]
    handshake_types: tuple[int, ...]
    version: str | None  # from a ServerHello only: what was negotiated
    decrypted: bool
    tcp_flags: int  # so FIN/RST timing sits beside the TLS records


def _vals(layer: Any, name: str) -> list[str]:
    fld = layer.get_field(name)
    if fld is None:
        return []
    # Repeated fields may also arrive comma-joined in one value (tshark's occurrence form).
    return [v.strip() for f in fld.all_fields for v in str(f.show).split(",") if v.strip()]


def _int(text: str) -> int:
    return int(text, 0) if text.startswith("0x") else int(text)


def epoch_ns(text: str) -> int:
    """``frame.time_epoch`` text (``1700000000.123456789``) to integer ns without float loss."""
    sec, _, frac = text.strip().partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def packet_facts(pkt: Any) -> PacketFacts:
    """Extract the TLS/HTTP2 facts of one pyshark packet."""
    ips = pkt.get_multiple_layers("ipv6") or pkt.get_multiple_layers("ip")
    # Tunnels stack IP layers; the innermost one carries the TCP segment.
    ip = ips[-1]
    src, dst = str(ip.src), str(ip.dst)
    sport, dport = int(pkt.tcp.srcport), int(pkt.tcp.dstport)
    frame = int(pkt.number)
    ts_ns = epoch_ns(str(pkt.frame_info.time_epoch))

    records: list[TlsRecord] = []
    alerts: list[TlsAlert] = []
    sni: str | None = None
    alpn: list[str] = []
    hs_types: list[int] = []
    version: str | None = None
    decrypted = False
    for layer in pkt.get_multiple_layers("tls"):
        types = [_int(v) for v in _vals(layer, "record_content_type")]
        lengths = [_int(v) for v in _vals(layer, "record_length")]
        opaque = _vals(layer, "record_opaque_type")
        levels = [_int(v) for v in _vals(layer, "alert_message_level")]
        descs = [_int(v) for v in _vals(layer, "alert_message_desc")]
        # Undecrypted TLS 1.3 records carry only the outer (opaque) type, after the
        # plaintext ones of the same segment; decrypted ones carry both.
        n = max(len(lengths), len(types))
        kinds = [(t, False) for t in types] + [(23, True)] * (n - len(types))
        if opaque and len(types) == n:
            decrypted = True
        for i, (ct, enc) in enumerate(kinds):
            length = lengths[i] if i < len(lengths) else 0
            records.append(TlsRecord(frame, ts_ns, src, sport, ct, length, encrypted=enc))
            if ct == 21:
                if descs:
                    alerts.append(TlsAlert(frame, ts_ns, src, sport, levels.pop(0) if levels
                                           else None, descs.pop(0)))
                else:
                    # TLS 1.2 "Encrypted Alert": type 21 is visible, level/desc are not.
                    alerts.append(TlsAlert(frame, ts_ns, src, sport, None, None))
        names = _vals(layer, "handshake_extensions_server_name")
        if names:
            sni = names[0]
        alpn.extend(_vals(layer, "handshake_extensions_alpn_str"))
        types_hs = [_int(v) for v in _vals(layer, "handshake_type")]
        hs_types.extend(types_hs)
        if 2 in types_hs:  # ServerHello: supported_versions (1.3) overrides legacy version
            sv = _vals(layer, "handshake_extensions_supported_version")
            hv = _vals(layer, "handshake_version")
            if sv:
                version = tls_version_name(_int(sv[0]))
            elif hv:
                version = tls_version_name(_int(hv[0]))

    h2: list[Http2Frame] = []
    for layer in pkt.get_multiple_layers("http2"):
        decrypted = True
        ftypes = [_int(v) for v in _vals(layer, "type")]
        sids = [_int(v) for v in _vals(layer, "streamid")]
        flens = [_int(v) for v in _vals(layer, "length")]
        goaway_err = [_int(v) for v in _vals(layer, "goaway_error")]
        goaway_last = [_int(v) for v in _vals(layer, "goaway_last_stream_id")]
        rst_err = [_int(v) for v in _vals(layer, "rst_stream_error")]
        status = [_int(v) for v in _vals(layer, "headers_status")]
        paths = _vals(layer, "headers_path")
        for i, ft in enumerate(ftypes):
            name = h2_type_name(ft)
            sid = sids[i] if i < len(sids) else 0
            flen = flens[i] if i < len(flens) else 0
            err = st = last = None
            path = None
            if name == "GOAWAY":
                err = goaway_err.pop(0) if goaway_err else None
                last = goaway_last.pop(0) if goaway_last else None
            elif name == "RST_STREAM":
                err = rst_err.pop(0) if rst_err else None
            elif name == "HEADERS":
                st = status.pop(0) if status else None
                path = paths.pop(0) if paths and st is None else None
            h2.append(Http2Frame(frame, ts_ns, src, sport, name, sid, flen, error_code=err,
                                 status=st, path=path, last_stream_id=last))
    return PacketFacts(frame, ts_ns, src, sport, dst, dport, tuple(records), tuple(alerts),
                       tuple(h2), sni, tuple(alpn), tuple(hs_types), version, decrypted,
                       _int(str(pkt.tcp.flags)))
