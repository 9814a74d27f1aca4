"""Refining reset verdicts with what happened above TCP (TLS alerts, HTTP/2, HTTP status).

The core decides who sent each RST from TCP/IP evidence alone.  This module
takes the core's reset records (``ResetRecord`` or ``to_dict()``) plus an
:class:`EnrichedContext` and returns, per reset, a refined cause, advice,
confidence and the context evidence behind them.  It never changes *who*
(``origin``): TLS and HTTP/2 run end to end over whatever the core found, so
they explain *why* the sender closed, not where it sits.  Confidence only rises
when the sender is an endpoint in the core's verdict, because an injected RST
can follow a perfectly normal TLS exchange.

Rules, first match wins for the cause (all of them add evidence):

1. ``tls-fatal-alert``   a fatal alert (or any non-close alert) preceded the RST.
2. ``stale-reuse``       the RST sender (server side) had closed (GOAWAY /
                         close_notify / FIN) and the client wrote again: a pooled
                         connection reused.  ``data-after-close`` is the mirror:
                         the client closed and the server kept sending.
3. ``proxy-5xx``         a 502/503/504 answered a request, then the reset.
4. ``h2-goaway-error``   the sender sent GOAWAY with an error code.
5. ``close-notify``      the sender closed TLS cleanly, then aborted TCP.
6. ``encrypted-alert``   an alert we cannot read (TLS 1.2 "Encrypted Alert", or
                         a 19-byte TLS 1.3 record, alert-sized) from the sender.
7. ``stream-cancel``     RST_STREAM CANCEL from the peer or sender just before.
8. ``clienthello-only``  a ClientHello (with SNI) and no ServerHello.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from rstscope.core.records import Evidence, ResetRecord
from rstscope.enrich.context import (
    EnrichedContext,
    FlowContext,
    Http2Frame,
    TlsAlert,
    TlsRecord,
)
from rstscope.enrich.names import TLS13_ALERT_RECORD_LEN
from rstscope.results import EnrichedReset
from rstscope.schema import TH_FIN

_NS = 1_000_000_000
#: Records of one close sequence (GOAWAY, close_notify, FIN) leave within
#: microseconds of each other; 50 ms still separates them from a real silence.
CLOSE_BURST_NS = 50_000_000

#: Alerts whose cause is on the certificate side vs the parameter side.
_CERT_ALERTS = {42, 43, 44, 45, 46, 48, 116}
_PARAM_ALERTS = {40, 47, 70, 71, 86, 109, 110}


@dataclass(frozen=True, slots=True)
class Refinement:
    """The refined verdict for one reset; ``rule`` None means the context added nothing."""

    frame: int
    file_id: int
    flow_id: int | None
    rule: str | None
    origin: str
    cause: str
    advice: tuple[str, ...]
    confidence: float
    evidence: tuple[Evidence, ...]  # context evidence, to add to the core's

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame, "file_id": self.file_id, "flow_id": self.flow_id,
            "rule": self.rule, "origin": self.origin, "cause": self.cause,
            "advice": list(self.advice), "confidence": self.confidence,
            "evidence": [e.to_dict() for e in self.evidence],
        }


def _get(rec: Any, name: str, default: Any = None) -> Any:
    if isinstance(rec, Mapping):
        return rec.get(name, default)
    return getattr(rec, name, default)


def _s(ns: int) -> float:
    return round(ns / _NS, 6)


class _View:
    """The context split into the RST sender's side and the peer's side, up to the RST."""

    def __init__(self, ctx: FlowContext, src: str, sport: int, ts_ns: int) -> None:
        self.ctx = ctx
        self.ts_ns = ts_ns
        self.src = src
        self.sport = sport
        self.alerts = ctx.alerts_before(ts_ns)
        self.h2 = ctx.http2_before(ts_ns)
        self.records = ctx.records_before(ts_ns, n=len(ctx.records))
        self.closes = [c for c in ctx.closes if c.ts_ns <= ts_ns]

    def mine(self, o: Any) -> bool:
        """Was ``o`` (a record, alert, frame or mark) sent by the RST sender?"""
        return bool(o.sport == self.sport and _same(o.src, self.src))

    def side(self, items: Iterable[Any], sender: bool) -> list[Any]:
        return [o for o in items if self.mine(o) == sender]


def _same(a: str, b: str) -> bool:
    def norm(x: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        ip = ipaddress.ip_address(x)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        return ip

    return norm(a) == norm(b)


def _alert_advice(alert: TlsAlert) -> str:
    d = alert.description
    if d in _CERT_ALERTS:
        return ("certificate problem: check the server's chain and the client's trust store "
                f"({alert.name})")
    if d in _PARAM_ALERTS:
        return f"TLS parameters do not match: align versions, ciphers and extensions ({alert.name})"
    if d == 112:
        return "the server does not serve this SNI name: check the hostname the client sends"
    if d == 120:
        return "no common ALPN protocol: enable h2/http/1.1 on both sides"
    return f"look at the TLS library logs of the side that sent {alert.name}"


def _context_evidence(v: _View) -> list[Evidence]:
    ctx = v.ctx
    ev = [
        Evidence("tls_sni", ctx.sni, None, 0.0),
        Evidence("tls_alpn", ctx.alpn, None, 0.0),
        Evidence("tls_version", ctx.tls_version, None, 0.0),
        Evidence("tls_decrypted", ctx.decrypted, None, 0.0),
    ]
    last = v.records[-3:]
    if last:
        text = "; ".join(
            f"{'sender' if v.mine(r) else 'peer'} {r.name}"
            f"{' (encrypted)' if r.encrypted else ''} {r.length} B "
            f"{_s(v.ts_ns - r.ts_ns)} s before" for r in last)
        ev.append(Evidence("tls_last_records", text, None, 0.0))
    for a in v.alerts[-2:]:
        who = "sender" if v.mine(a) else "peer"
        lvl = {1: "warning", 2: "fatal"}.get(a.level or 0, "?")
        ev.append(Evidence(f"tls_alert_{who}", f"{a.name} ({lvl}) frame {a.frame}", None, 0.0))
    for f in v.h2:
        who = "sender" if v.mine(f) else "peer"
        if f.type == "GOAWAY":
            ev.append(Evidence(f"h2_goaway_{who}", f"{f.error_name} last_stream={f.last_stream_id}"
                               f" frame {f.frame}", None, 0.0))
        elif f.type == "RST_STREAM":
            ev.append(Evidence(f"h2_rst_stream_{who}", f"stream {f.stream_id} {f.error_name} "
                               f"frame {f.frame}", None, 0.0))
        elif f.type == "HEADERS" and f.status is not None:
            ev.append(Evidence(f"http_status_{who}", f.status, None, 0.0))
    last_data = ctx.last_data_before(v.ts_ns)
    if last_data is not None:
        ev.append(Evidence("http_silence_s", _s(v.ts_ns - last_data.ts_ns), None, 0.0))
    return ev


def _request_time(v: _View, resp: Http2Frame) -> int | None:
    reqs = [f for f in v.h2 if f.type == "HEADERS" and f.stream_id == resp.stream_id
            and f.status is None and f.ts_ns <= resp.ts_ns]
    return reqs[0].ts_ns if reqs else None


def _idle_before_burst(v: _View, closed_at: int) -> float | None:
    """Silence before the sender's closing burst (e.g. GOAWAY, close_notify, FIN).

    Without keys the GOAWAY is just an opaque record a few microseconds before
    the alert-sized one; walking back over the sender's records that are less
    than ``CLOSE_BURST_NS`` apart finds where the burst started.
    """
    start = closed_at
    for r in reversed([r for r in v.records if r.ts_ns < closed_at]):
        if v.mine(r) and start - r.ts_ns < CLOSE_BURST_NS:
            start = r.ts_ns
            continue
        return _s(start - r.ts_ns)
    return None


def _alert_sized(r: TlsRecord) -> bool:
    return r.encrypted and r.content_type == 23 and r.length == TLS13_ALERT_RECORD_LEN


def _proxy_note(v: _View, e: Http2Frame) -> tuple[str, list[str], float | None]:
    """(sentence, advice, seconds the proxy waited) for a 502/503/504 response."""
    req = _request_time(v, e)
    wait = _s(e.ts_ns - req) if req is not None else None
    name = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[
        int(e.status or 0)]
    sentence = (f"a proxy answered HTTP {e.status} {name}"
                f"{f' {wait:.3f} s after the request' if wait is not None else ''}"
                + (" (its upstream read timeout expired)." if e.status == 504 else "."))
    if e.status == 504:
        adv = ["proxy: raise its upstream read timeout (nginx proxy_read_timeout, default 60 s)"
               + (f", here about {wait:.0f} s," if wait is not None else "")
               + " above the backend's slowest response, or make the backend answer sooner"]
    else:
        adv = ["proxy: it got no usable upstream response; check the backend's health and "
               "the proxy's error log"]
    return sentence[0].upper() + sentence[1:], adv, wait


def refine_one(reset: Any, ctx: EnrichedContext) -> Refinement:
    """Refine one reset record with its flow's TLS/HTTP2 context."""
    frame, file_id = int(_get(reset, "frame", 0)), int(_get(reset, "file_id", 0) or 0)
    flow_id = _get(reset, "flow_id")
    origin = str(_get(reset, "origin", "unknown"))
    cause = str(_get(reset, "cause", ""))
    advice = tuple(_get(reset, "advice", ()) or ())
    conf = float(_get(reset, "confidence", 0.0) or 0.0)
    sender_kind = str(_get(reset, "sender", ""))
    fc = ctx.for_reset(reset)
    unchanged = Refinement(frame, file_id, flow_id, None, origin, cause, advice, conf, ())
    if fc is None:
        return unchanged
    src, sport, ts = str(_get(reset, "src")), int(_get(reset, "sport")), int(_get(reset, "ts_ns"))
    v = _View(fc, src, sport, ts)
    evidence = _context_evidence(v)
    endpoint = sender_kind != "middlebox"

    def done(rule: str, new_cause: str, new_advice: Iterable[str], c: float,
             extra: Iterable[Evidence] = ()) -> Refinement:
        # Context explains *why*; it only adds certainty when the core already
        # places the sender at an endpoint (an injector can follow clean TLS).
        c2 = max(conf, c) if endpoint else conf
        return Refinement(frame, file_id, flow_id, rule, origin, new_cause,
                          tuple(new_advice) + advice, round(c2, 3), (*extra, *evidence))

    my_alerts = v.side(v.alerts, True)
    bad = [a for a in v.alerts if not a.encrypted and a.description not in (0, 90)]
    if bad:
        a = bad[-1]
        who = "the RST sender" if v.mine(a) else "the peer"
        return done("tls-fatal-alert",
                    f"TLS failed: {who} sent alert {a.name}"
                    f"{' (fatal)' if a.fatal else ''}, then the connection was reset.",
                    [_alert_advice(a)], 0.85)

    my_goaway = [f for f in v.side(v.h2, True) if f.type == "GOAWAY"]
    my_fin = [c for c in v.side(v.closes, True) if c.flags & TH_FIN]
    my_close = [a for a in my_alerts if a.close_notify or a.encrypted]
    mine_recs = v.side(v.records, True)
    if my_fin and not my_close:
        # Without keys a TLS 1.3 close_notify is an alert-sized record right before FIN.
        my_close = [r for r in mine_recs if _alert_sized(r) and 0 <= my_fin[0].ts_ns - r.ts_ns
                    < _NS]
    closed_at = min([x.ts_ns for x in (*my_goaway[:1], *my_fin[:1], *my_close[:1])],
                    default=None)
    errs = [f for f in v.h2 if f.type == "HEADERS" and f.status in (502, 503, 504)]
    if closed_at is not None:
        # Only application data counts as "wrote again": the peer's own close_notify
        # (or an alert-sized TLS 1.3 record) answering the close is the normal close.
        later = [r for r in v.side(v.records, False) if r.ts_ns > closed_at
                 and r.content_type == 23 and not _alert_sized(r)]
        if later:
            idle = _idle_before_burst(v, closed_at)
            what = ", ".join(w for w, xs in (("GOAWAY", my_goaway), ("close_notify", my_close),
                                             ("FIN", my_fin)) if xs)
            after = _s(later[0].ts_ns - closed_at)
            extra = [Evidence("closed_before_rst_s", _s(ts - closed_at), None, 0.0),
                     Evidence("idle_before_close_s", idle, None, 0.0)]
            idle_txt = f" after {idle:.3f} s idle" if idle is not None else ""
            if str(_get(reset, "direction", "")) == "orig":
                # The originator (client) closed and the responder kept sending.
                return done(
                    "data-after-close",
                    f"The client had closed ({what}{idle_txt}); the server still sent data "
                    f"{after:.3f} s later and the client's stack reset: data after close, "
                    "usually a client read timeout or cancel while the server was still working.",
                    ["client: if it gave up on purpose, this reset is expected; otherwise raise "
                     "its read timeout above the server's longest silence"
                     + (f" ({idle:.3f} s here)" if idle is not None else "")],
                    0.8, extra)
            also = _proxy_note(v, errs[-1]) if errs else None
            return done(
                "stale-reuse",
                f"The server side had closed the connection ({what}{idle_txt}); the client "
                f"wrote again {after:.3f} s later on the closed connection and got a reset: "
                "a stale pooled connection was reused."
                + (f" Before that: {also[0]}" if also else ""),
                ["client: drop pooled connections on GOAWAY/close_notify/FIN and keep the "
                 "pool's idle timeout below the server's"
                 + (f" (the server closed after {idle:.3f} s idle)" if idle is not None else ""),
                 "client: retry idempotent requests on a fresh connection after such a reset",
                 *(also[1] if also else ())],
                0.85, extra)

    if errs:
        note = _proxy_note(v, errs[-1])
        return done("proxy-5xx", note[0] + " Then the connection was reset.", note[1], 0.8,
                    [Evidence("proxy_wait_s", note[2], None, 0.0)])

    bad_goaway = [f for f in my_goaway if f.error_code not in (None, 0)]
    if bad_goaway:
        g = bad_goaway[-1]
        return done("h2-goaway-error",
                    f"The RST sender's HTTP/2 layer gave up (GOAWAY {g.error_name}), then reset.",
                    [f"HTTP/2 error {g.error_name}: check the sender's logs"
                     + (" (it is rate-limiting the peer)" if g.error_code == 11 else "")], 0.8)

    if any(a.close_notify for a in my_alerts):
        return done("close-notify",
                    "The RST sender's application closed TLS cleanly (close_notify) and then "
                    "aborted TCP: an abortive close after completion, usually benign.",
                    ["benign if the exchange had completed; an SO_LINGER 0 close or unread data "
                     "at close makes the kernel send RST instead of FIN"], 0.8)

    last_mine = mine_recs[-1:]
    alert_sized = bool(last_mine) and _alert_sized(last_mine[0])
    enc_alerts = [a for a in my_alerts if a.encrypted]
    if enc_alerts or alert_sized:
        how = ("an encrypted TLS alert" if enc_alerts
               else f"a {TLS13_ALERT_RECORD_LEN}-byte TLS 1.3 record (alert-sized)")
        at = enc_alerts[-1].ts_ns if enc_alerts else last_mine[0].ts_ns
        quiet = [r for r in v.records if r.ts_ns < at]
        idle = _s(at - quiet[-1].ts_ns) if quiet else None
        return done("encrypted-alert",
                    f"The RST sender sent {how}"
                    f"{f' after {idle:.3f} s of silence' if idle is not None else ''}, most "
                    "likely close_notify: its application closed (an idle or read timeout if "
                    "the silence matches one), then aborted TCP.",
                    ["give rstscope the TLS key log (--keylog) and a full snaplen to tell "
                     "close_notify from a fatal alert"], 0.7,
                    [Evidence("idle_before_alert_s", idle, None, 0.0)])

    cancels = [f for f in v.h2 if f.type == "RST_STREAM" and f.error_code == 8]
    if cancels:
        c = cancels[-1]
        who = "the RST sender" if v.mine(c) else "the peer"
        return done("stream-cancel",
                    f"{who} cancelled stream {c.stream_id} (RST_STREAM CANCEL) "
                    f"{_s(ts - c.ts_ns)} s before the reset: a request was abandoned "
                    "(client timeout or user cancel).",
                    ["if unexpected, check the client's request timeout"], 0.7)

    hello = [r for r in v.records if r.content_type == 22]
    if fc.sni and hello and not any(r.content_type == 22 for r in v.records
                                    if not _same(r.src, hello[0].src)
                                    or r.sport != hello[0].sport):
        return done("clienthello-only",
                    f"Reset after a ClientHello for {fc.sni} with no ServerHello: SNI-based "
                    "filtering, or a server refusing that name.",
                    [f"test the same server with another SNI than {fc.sni}"],
                    conf)

    return Refinement(frame, file_id, flow_id, None, origin, cause, advice, conf,
                      tuple(evidence))


def refine(resets: Iterable[Any], ctx: EnrichedContext) -> list[Refinement]:
    """One :class:`Refinement` per reset record, in input order."""
    return [refine_one(r, ctx) for r in resets]


def context_summary(reset: Any, ctx: EnrichedContext, n_records: int = 5) -> dict[str, Any] | None:
    """JSON-ready TLS/HTTP2 facts of one reset's flow up to the RST (None if no context)."""
    fc = ctx.for_reset(reset)
    if fc is None:
        return None
    ts = int(_get(reset, "ts_ns"))
    v = _View(fc, str(_get(reset, "src")), int(_get(reset, "sport")), ts)

    def side(o: Any) -> str:
        return "sender" if v.mine(o) else "peer"

    last_data = fc.last_data_before(ts)
    return {
        "sni": fc.sni, "alpn": fc.alpn, "tls_version": fc.tls_version,
        "decrypted": fc.decrypted,
        "last_records": [{"frame": r.frame, "from": side(r), "type": r.name,
                          "length": r.length, "encrypted": r.encrypted,
                          "before_rst_s": _s(ts - r.ts_ns)}
                         for r in fc.records_before(ts, n_records)],
        "alerts": [{"frame": a.frame, "from": side(a), "level": a.level, "name": a.name}
                   for a in v.alerts],
        "http2": [{"frame": f.frame, "from": side(f), "type": f.type, "stream_id": f.stream_id,
                   "error": f.error_name, "status": f.status}
                  for f in v.h2 if f.type in ("GOAWAY", "RST_STREAM")
                  or (f.type == "HEADERS" and f.status is not None)],
        "http_silence_s": None if last_data is None else _s(ts - last_data.ts_ns),
    }


def apply_refinements(resets: Iterable[ResetRecord], ctx: EnrichedContext) -> list[EnrichedReset]:
    """The reset records with the refinement merged in, as :class:`EnrichedReset`.

    ``cause``/``advice``/``confidence`` are replaced by the refined ones when a
    rule fired (the core's originals stay in ``core_cause`` and
    ``core_confidence``); context evidence is appended; ``context_rule`` and
    ``tls`` (see :func:`context_summary`) are set.  ``origin`` never changes.
    """
    out = []
    for r in resets:
        ref = refine_one(r, ctx)
        base = {f.name: getattr(r, f.name) for f in fields(ResetRecord)}
        if ref.rule is not None:
            base.update(cause=ref.cause, advice=ref.advice, confidence=ref.confidence)
        base["evidence"] = (*r.evidence, *ref.evidence)
        out.append(EnrichedReset(
            **base,
            core_cause=r.cause if ref.rule is not None else None,
            core_confidence=r.confidence if ref.rule is not None else None,
            context_rule=ref.rule, tls=context_summary(r, ctx)))
    return out
