"""What tshark saw above TCP on the flows with resets: TLS records, alerts, HTTP/2 frames.

These are plain frozen records keyed by :class:`FlowKey`; they hold no pyshark
objects, so a context can be pickled, compared in tests and handed to
:func:`rstscope.enrich.refine.refine` without tshark being present.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field
from typing import Any

from rstscope.enrich.names import alert_name, content_type_name, h2_error_name


@dataclass(frozen=True, slots=True, order=True)
class FlowKey:
    """A TCP 5-tuple without direction: the lower (address, port) end comes first."""

    a: str
    a_port: int
    b: str
    b_port: int

    @classmethod
    def of(cls, src: str, sport: int, dst: str, dport: int) -> FlowKey:
        one = (_norm(src), int(sport))
        two = (_norm(dst), int(dport))
        lo, hi = sorted((one, two), key=lambda e: (ipaddress.ip_address(e[0]).packed, e[1]))
        return cls(lo[0], lo[1], hi[0], hi[1])

    def __str__(self) -> str:
        return f"{_fmt(self.a, self.a_port)} <-> {_fmt(self.b, self.b_port)}"


def _norm(addr: str) -> str:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def _fmt(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


@dataclass(frozen=True, slots=True)
class TlsRecord:
    """One TLS record header as tshark dissected it (inner type when decrypted)."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    content_type: int  # 20 ChangeCipherSpec, 21 alert, 22 handshake, 23 application data
    length: int
    encrypted: bool  # payload not decrypted (no key log, or keys did not match)

    @property
    def name(self) -> str:
        return content_type_name(self.content_type)


@dataclass(frozen=True, slots=True)
class TlsAlert:
    """A TLS alert.  ``level``/``description`` are None when it was encrypted."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    level: int | None  # 1 warning, 2 fatal
    description: int | None  # 0 close_notify, 40 handshake_failure, ...

    @property
    def encrypted(self) -> bool:
        return self.description is None

    @property
    def close_notify(self) -> bool:
        return self.description == 0

    @property
    def fatal(self) -> bool:
        return self.level == 2

    @property
    def name(self) -> str:
        if self.description is None:
            return "encrypted alert"
        return alert_name(self.description)


@dataclass(frozen=True, slots=True)
class Http2Frame:
    """One decrypted HTTP/2 frame of interest (HEADERS, DATA, RST_STREAM, GOAWAY)."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    type: str  # "HEADERS", "DATA", "RST_STREAM", "GOAWAY", ...
    stream_id: int
    length: int
    error_code: int | None = None  # RST_STREAM / GOAWAY
    status: int | None = None  # response HEADERS :status
    path: str | None = None  # request HEADERS :path
    last_stream_id: int | None = None  # GOAWAY

    @property
    def error_name(self) -> str | None:
        return None if self.error_code is None else h2_error_name(self.error_code)


@dataclass(frozen=True, slots=True)
class TcpMark:
    """A FIN or RST segment, kept so close timing sits beside the TLS records."""

    frame: int
    ts_ns: int
    src: str
    sport: int
    flags: int  # TCP flags (rstscope.schema TH_*)


@dataclass(frozen=True, slots=True)
class FlowContext:
    """TLS and HTTP/2 facts for one flow with a reset, in frame order."""

    key: FlowKey
    sni: str | None = None
    alpn: str | None = None  # the protocol the server selected, else the client's first offer
    tls_version: str | None = None  # negotiated, e.g. "TLSv1.3"
    decrypted: bool = False  # at least one record was decrypted with the key log
    records: tuple[TlsRecord, ...] = ()
    alerts: tuple[TlsAlert, ...] = ()
    http2: tuple[Http2Frame, ...] = ()
    closes: tuple[TcpMark, ...] = ()

    def records_before(self, ts_ns: int, n: int = 5) -> tuple[TlsRecord, ...]:
        """The last ``n`` TLS records at or before ``ts_ns`` (the RST time)."""
        before = [r for r in self.records if r.ts_ns <= ts_ns]
        return tuple(before[-n:])

    def alerts_before(self, ts_ns: int) -> tuple[TlsAlert, ...]:
        return tuple(a for a in self.alerts if a.ts_ns <= ts_ns)

    def http2_before(self, ts_ns: int, kind: str | None = None) -> tuple[Http2Frame, ...]:
        return tuple(f for f in self.http2 if f.ts_ns <= ts_ns and (kind is None or f.type == kind))

    def last_data_before(self, ts_ns: int) -> Http2Frame | None:
        """The last HTTP/2 DATA frame with payload before the RST: where HTTP went quiet."""
        data = [f for f in self.http2_before(ts_ns, "DATA") if f.length > 0]
        return data[-1] if data else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["key"] = str(self.key)
        return out


@dataclass(frozen=True, slots=True)
class EnrichedContext:
    """Per-flow TLS/HTTP2 context for every flow that had a reset."""

    flows: dict[FlowKey, FlowContext] = field(default_factory=dict)
    keylog: str | None = None
    tshark: str = ""
    strategy: str = ""  # how the reset flows were cut out of the capture
    engine: str = ""  # pyshark or tshark-fields
    packets_dissected: int = 0

    def flow(self, src: str, sport: int, dst: str, dport: int) -> FlowContext | None:
        return self.flows.get(FlowKey.of(src, sport, dst, dport))

    def for_reset(self, reset: Any) -> FlowContext | None:
        """The context of a ResetRecord or its ``to_dict()`` (anything with src/sport/dst/dport)."""
        def get(k: str) -> Any:
            return reset[k] if isinstance(reset, dict) else getattr(reset, k)

        return self.flow(str(get("src")), int(get("sport")), str(get("dst")), int(get("dport")))
