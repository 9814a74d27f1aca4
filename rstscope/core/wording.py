"""What a verdict says: the one-sentence cause and the advice.

Kept apart from the scoring (:mod:`rstscope.core.classify`): the rules decide the
origin and the confidence; this module only turns the decided verdict and its
:class:`~rstscope.core.facts.Facts` into words.
"""

from __future__ import annotations

from rstscope.core.facts import NS, Facts, distinct_products, proxy_close_match
from rstscope.core.timeouts import TimeoutMatch, match_gap
from rstscope.core.ttl import hops
from rstscope.schema import TH_FIN, TH_RST

#: A silence at least this long before a middlebox's RST is read as state expiry
#: (lab firewalls use seconds; real ones minutes), so the cause states it.
IDLE_EXPIRY_MIN_S = 1.0


def cause_text(f: Facts, origin: str, sender: str, fit: TimeoutMatch | None) -> str:
    c = f.ctx
    gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
    gap_txt = f"{gap:.1f} s" if gap is not None else "an unknown time"
    if f.lone:
        return ("A lone RST with no other packets of its connection (backscatter or a "
                "capture that started late); its sender cannot be checked.")
    if sender == "middlebox":
        if "race" in f.tags:
            return (f"An on-path device injected this RST as the {f.side}: the real "
                    f"{f.side} kept sending after it.")
        if "recycled" in f.tags:
            return ("A stateful middlebox answered the trigger with a RST built from the "
                    "trigger packet itself (same IP ID).")
        if fit is not None:
            kind = "on the next packet" if f.triggered else "to both sides"
            return (f"A {origin} expired the connection after {gap_txt} of silence and "
                    f"reset it {kind} (matches {fit.label()}).")
        if "bidirectional" in f.tags:
            return (f"A middlebox reset both endpoints at once after {gap_txt} of silence.")
        if "after-clienthello" in f.tags:
            return "A filtering device reset the connection right after the TLS ClientHello."
        if gap is not None and gap >= IDLE_EXPIRY_MIN_S:
            kind = "on the next packet" if f.triggered else ""
            return (f"A {origin} between the capture point and the {f.side} expired the "
                    f"connection's state after {gap_txt} of silence and reset it "
                    f"{kind} in the {f.side}'s name.".replace("  ", " "))
        return (f"A device between the capture point and the {f.side} sent this RST in the "
                f"{f.side}'s name (TTL/IP ID/timing differ from the {f.side}'s packets).")
    who = f"The {f.side}"
    if "proxy-close" in f.tags:
        gap_c = f.ctx.s_close_gap_ns / NS
        return (f"A proxy/load balancer in front of the {f.side} closed the connection after "
                f"{gap_c:.1f} s of silence (a read/idle timeout), then reset it.")
    if "proxy-no-answer" in f.tags:
        # With a FIN the silence ends at the close; without one the RST is the close.
        closed = f.ctx.s_close_gap_ns >= 0
        gap_c = f.ctx.s_close_gap_ns / NS if closed else (f.idle_gap_s or 0.0)
        return (f"A proxy in front of the {f.side} accepted the connection but never answered "
                f"the request; after {gap_c:.1f} s it gave up (its backend did not answer) and "
                + ("closed, then reset it." if closed else "reset it."))
    if "same-link-peer" in f.tags:
        return (f"The connecting peer, on the server's own link (0 hops), reset the "
                f"connection after {gap_txt} of silence: a client's read timeout, or a load "
                "balancer/reverse proxy's timeout toward this server (the wire cannot tell).")
    if "refused" in f.tags:
        return f"{who} refused the connection: nothing accepted the SYN on port {c.flow.resp_p}."
    if "after-fin" in f.tags or "after-alert" in f.tags:
        return f"{who} closed the connection and then aborted it (RST after its own FIN/alert)."
    if "no-socket" in f.tags or ("ipid0-df" in f.tags and f.triggered and c.flags & TH_RST
                                 and not c.flags & TH_FIN and gap and gap > 5):
        return (f"{who}'s kernel no longer had this connection when a packet arrived after "
                f"{gap_txt} (restart, lost state, or expired NAT/LB state in front of it).")
    if "unanswered" in f.tags:
        return (f"{who} gave up after {c.s_since_peer} unanswered packets: the path went "
                "silent (a device likely dropped the flow).")
    if gap is not None and gap >= 5:
        return f"{who} aborted the connection after {gap_txt} of silence (an idle or read timeout)."
    return f"{who} aborted the connection (application close with unread data or SO_LINGER 0)."


def _where(f: Facts, origin: str) -> str:
    """The emitting box and where it sits, as far as its TTL tells."""
    kind = {"firewall": "firewall", "load-balancer": "load balancer"}.get(origin, "box")
    n = hops(f.ctx.ttl)
    away = f"{n} hop{'s' if n != 1 else ''} from the capture point " if n else ""
    return f"the {kind} {away}toward the {f.side}"


def _setting(m: TimeoutMatch) -> str:
    """``product setting`` without the catalog's explanatory parenthesis."""
    return f"{m.entry.product} {m.entry.setting.split(' (')[0]}"


def _keepalive_s(timeout_s: float) -> str:
    return f"{max(timeout_s * 0.8, 1):.0f} s"


def advice_lines(f: Facts, origin: str, sender: str, fit: TimeoutMatch | None) -> tuple[str, ...]:
    """What to change and where, the first line being the action line of the table.

    Never empty: every verdict says what to do next, even if it is "capture more".
    """
    out = _advice(f, origin, sender, fit)
    if not out:
        out.append(f"check the {f.side}'s logs at this time for why it reset the connection "
                   "(no timeout or device explains it)")
    return tuple(out)


def _advice(f: Facts, origin: str, sender: str, fit: TimeoutMatch | None) -> list[str]:
    gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
    out: list[str] = []
    if f.lone:
        return ["capture from the start of the connection (or at both ends) to attribute "
                "this RST"]
    if sender == "middlebox" and ("race" in f.tags or "after-clienthello" in f.tags
                                  or "storm" in f.tags):
        out.append(f"check the DPI/IPS/SNI policy for this destination on "
                   f"{_where(f, origin)}")
    elif fit is not None or (sender == "middlebox" and gap is not None
                             and gap >= IDLE_EXPIRY_MIN_S):
        t = fit.entry.timeout_s if fit else gap or 0.0
        box = (_setting(fit) if fit is not None
               else f"the idle timeout of {_where(f, origin)}")
        out.append(f"send keepalives (or SSE comments) more often than every "
                   f"{_keepalive_s(t)}, or raise {box} (expired at {gap or 0.0:.1f} s)")
        out.extend(f"candidate setting: {m.label()}"
                   for m in distinct_products([m for m in f.matches if m is not fit], 3))
    elif sender == "middlebox":
        out.append(f"look up this flow in the logs and policy of {_where(f, origin)} "
                   "(a rule or lost state made it reset)")
    elif "proxy-close" in f.tags:
        m = proxy_close_match(f)
        gap_c = f.ctx.s_close_gap_ns / NS
        if m is not None:
            wanted = "http-error-then-close" if f.ctx.s_close_mid_response else "fin"
            named = distinct_products(sorted((x for x in match_gap(f.cfg, gap_c, triggered=False,
                                                           bidirectional=False)
                                      if x.entry.full_proxy),
                                     key=lambda x: (not x.entry.stated,
                                                    x.entry.expiry_behaviour != wanted,
                                                    round(abs(x.error_s), 3),
                                                    x.entry.rank)), 4)
            top = _setting(named[0]) if named else "the proxy's read timeout"
            out.append(f"raise {top} (fired at {gap_c:.0f} s), or have the backend send "
                       f"a heartbeat more often than every {_keepalive_s(gap_c)}")
            out.extend(f"candidate setting: {x.label()}" for x in named)
        else:
            out.append(f"raise the proxy's upstream read timeout (nginx proxy_read_timeout, "
                       f"haproxy timeout server) above {gap_c:.0f} s, or send a heartbeat "
                       f"more often than every {_keepalive_s(gap_c)}")
    elif "proxy-no-answer" in f.tags:
        gap_c = (f.ctx.s_close_gap_ns / NS if f.ctx.s_close_gap_ns >= 0
                 else (f.idle_gap_s or 0.0))
        out.append(f"check that the proxy's backend is up and reachable: the proxy gave up "
                   f"after {gap_c:.0f} s (haproxy timeout connect x retries, nginx "
                   "proxy_connect_timeout)")
    elif "same-link-peer" in f.tags:
        out.append(f"if a load balancer/proxy connects here, check its timeouts toward this "
                   f"server (haproxy timeout server, nginx proxy_read_timeout); otherwise the "
                   f"client's read timeout: one of them gave up after {gap:.0f} s of silence"
                   if gap is not None else
                   "check the load balancer/proxy's timeouts toward this server, or the "
                   "client's read timeout")
    elif sender != "middlebox":
        if "refused" in f.tags:
            out.append(f"check that a service listens on port {f.ctx.flow.resp_p} "
                       "(or that a host firewall does not REJECT it)")
        elif "unanswered" in f.tags:
            out.append("find the device that silently drops idle flows (NAT/firewall idle "
                       "timeout) and keep the connection busy below it")
        elif gap is not None and gap >= 5:
            if f.side == "client":
                out.append(f"your client's read/idle timeout is about {gap:.0f} s; raise it "
                           "or make the server answer sooner")
            else:
                out.append(f"the server side drops connections idle for ~{gap:.0f} s; keep "
                           "them busier or raise its idle/keepalive timeout")
            for m in f.matches[:2]:
                out.append(f"candidate setting: {m.label()}")
        elif "after-fin" in f.tags or "after-alert" in f.tags:
            out.append(f"benign if requests succeed; otherwise check the {f.side} "
                       "application's close path (it closed, then aborted with unread data "
                       "or SO_LINGER 0)")
        else:
            out.append("benign if requests succeed (application abort); otherwise check "
                       f"the {f.side} application logs at this time")
    return out


def sure_text(sender: str, side: str) -> str:
    """What is certain about a RST, said apart from the guess of which kind of box.

    ``side`` is the endpoint whose name the RST carries (client or server).  The
    packet fingerprint decides the sender class; the product or box type is a guess.
    """
    if sender == "middlebox":
        return f"sure: a box on the path made it, not the {side}"
    return f"sure: it came from the {side}'s side (its TTL and IP ID)"



# -- the everyday causes (issue 17): sentences and advice by cause name -----------
#
# Keyed by ``cause_id`` (docs/schema.md); ``facts`` carries the numbers the rule
# measured (rstscope.core.causes / rstscope.core.stalls fill it).

def everyday_sentence(cause_id: str, facts: dict[str, object]) -> str:
    def num(key: str) -> float:
        v = facts.get(key)
        return float(v) if isinstance(v, int | float) else 0.0

    if cause_id == "keepalive-race":
        if facts.get("order") == "fin-first":
            return (f"Keep-alive race: the server closed the idle connection (FIN after "
                    f"{num('idle_s'):.1f} s) and the client's pooled connection sent a new "
                    "request into it; the closed socket answered with this RST.")
        return (f"Keep-alive race: the client reused the idle connection after "
                f"{num('idle_s'):.1f} s just as the server's keep-alive timer closed it; the "
                "request was still unread, so the close became this RST.")
    if cause_id == "accept-overflow" and facts.get("kind") == "syn-unanswered":
        return (f"Overload at accept: the SYN was retransmitted {int(num('rx'))} times without "
                "an answer while the same service answered other connections (a full accept "
                "queue or a connection limit such as haproxy maxconn).")
    if cause_id == "accept-overflow" and facts.get("kind") == "request-unanswered":
        return (f"Overload at accept: the connection was accepted by the kernel but no "
                f"application answered for {num('silence_s'):.1f} s while the same service "
                "served other connections (it waited in the accept queue behind a "
                "connection limit such as haproxy maxconn).")
    if cause_id == "accept-overflow":
        return ("Overload at accept: the handshake completed but the server's stack reset the "
                "connection at its first data, before the application accepted it (a full "
                "listen backlog with tcp_abort_on_overflow).")
    if cause_id == "total-timeout":
        if facts.get("kind") == "cut-mid-stream":
            return (f"The server cut an active stream with a bare FIN after {num('elapsed_s'):.1f} s "
                    "(no TLS close_notify): a total-time limit killed it (worker --timeout, "
                    "max response time).")
        return (f"A total-time limit: the {facts.get('side', 'client')} aborted "
                f"{num('elapsed_s'):.1f} s after its request while data was still flowing "
                "(an SDK/client total timeout, not an idle one).")
    if cause_id == "pmtu-blackhole" and facts.get("kind") == "data-hole":
        return (f"Path-MTU black hole (seen by the receiver): {int(num('hole'))} bytes never "
                f"arrived while smaller segments after them did (up to {int(num('through'))} "
                f"bytes); the receiver asked for them again {int(num('dupacks'))} times "
                "(duplicate ACKs) and the hole was never filled.")
    if cause_id == "pmtu-blackhole":
        return (f"Path-MTU black hole: full-size segments ({_sizes(facts.get('stuck'))} bytes) "
                f"were retransmitted {int(num('rx'))} times and never acknowledged while "
                f"smaller ones (up to {int(num('through'))} bytes) got through.")
    if cause_id == "proxy-buffering" and facts.get("kind") == "bursts":
        return (f"Proxy buffering, most likely: the stream arrived in {int(num('bursts'))} "
                f"bursts of the same {int(num('burst_bytes'))} bytes, silent for up to "
                f"{num('gap_s'):.1f} s between them (a proxy forwarding only full buffers, "
                f"e.g. nginx proxy_buffering on); then {num('silence_s'):.1f} s of silence "
                "until this close.  From this capture alone that last silence may also be "
                "the upstream going quiet (idle-timeout); a capture upstream of the proxy "
                "(--join) tells which.")
    if cause_id == "proxy-buffering":
        return (f"Proxy buffering: the upstream sent {int(num('upstream_bytes'))} bytes while the "
                f"client received nothing for {num('silence_s'):.1f} s; a buffering proxy held "
                "the stream back.")
    if cause_id == "path-silent":
        if facts.get("kind") == "syn-unanswered":
            return (f"SYN retransmitted {int(num('rx'))} times without an answer: nothing on "
                    "the path or at the server replied.")
        return (f"Data retransmitted {int(num('rx'))} times without an acknowledgment for "
                f"{num('silence_s'):.1f} s: the path went silent.")
    if cause_id == "unanswered":
        return (f"A request got no answer for {num('silence_s'):.1f} s (acknowledged by TCP, "
                "never answered by the application).")
    return ""


def _sizes(v: object) -> str:
    if isinstance(v, tuple | list) and v:
        return "/".join(str(x) for x in v)
    return "?"


def everyday_advice(cause_id: str, facts: dict[str, object]) -> tuple[str, ...]:
    if cause_id == "keepalive-race":
        return ("make the client pool's idle timeout shorter than the server's keep-alive "
                "timeout (Node 5 s, uvicorn 5 s, gunicorn 2 s, nginx 75 s, ALB 60 s)",
                "retry idempotent requests that fail on a reused connection")
    if cause_id == "accept-overflow":
        return ("the service is overloaded at accept: raise the listen backlog "
                "(somaxconn, the server's backlog) or the balancer's maxconn, or add capacity",
                "tell it from a firewall's policy reject by the RST's TTL and position: an "
                "overflow RST comes from the server's stack after a completed handshake")
    if cause_id == "total-timeout":
        return ("raise the total-time limit (SDK timeout, gunicorn --timeout, the CDN's "
                "maximum response time), or stream with resumable requests",)
    if cause_id == "pmtu-blackhole":
        return ("clamp the MSS on the tunnel/VPN link (iptables TCPMSS --clamp-mss-to-pmtu)",
                "allow ICMP type 3 code 4 / ICMPv6 type 2 (packet too big) through firewalls",
                "or lower the MTU, or enable net.ipv4.tcp_mtu_probing=1 on the sender")
    if cause_id == "proxy-buffering":
        return ("turn buffering off for streams: nginx 'proxy_buffering off' or the "
                "'X-Accel-Buffering: no' response header",
                "or send heartbeats that fill the proxy's buffer sooner")
    if cause_id == "path-silent":
        return ("find the device that drops this flow (firewall DROP, dead route, black hole); "
                "capture at both ends to see where packets stop",)
    if cause_id == "unanswered":
        return ("check the server application (or a proxy in front of it) for this request; "
                "the TCP stack acknowledged it, the application never answered",)
    return ()


# -- the action line (issue 14): what to change and where, in one terminal line --------
#
# ``advice[0]`` says it in full (JSON, CSV, HTML); ``action`` is what the 80-column
# table prints after "    -> ".  Each action is a list of wordings, most to least
# detailed: the first that fits ACTION_MAX_CHARS wins, so a long product name costs
# the detail, never the "what" and the "where".

#: 80 columns less the table's "    -> " indent.
ACTION_MAX_CHARS = 73


def _fit(*variants: str) -> str:
    return next((v for v in variants if len(v) <= ACTION_MAX_CHARS), variants[-1])


def _hop(n: int) -> str:
    return f"{n} hop{'s' if n != 1 else ''}"


def _where_short(f: Facts, origin: str) -> tuple[str, str]:
    """(the box and where it sits, the box alone) in as few words as the TTL allows."""
    kind = {"firewall": "firewall", "load-balancer": "load balancer"}.get(origin, "box")
    pos = f.position
    if pos.from_client:
        return f"the {kind} {_hop(pos.from_client)} from the client", f"the {kind}"
    if pos.to_server:
        return f"the {kind} {_hop(pos.to_server)} before the server", f"the {kind}"
    n = hops(f.ctx.ttl)
    if n:
        return f"the {kind} {_hop(n)} from here toward the {f.side}", f"the {kind}"
    return f"the {kind} toward the {f.side}", f"the {kind}"


def _secs(v: float) -> str:
    return f"{v:.0f} s" if v >= 10 else f"{v:.1f} s".replace(".0 s", " s")


def action_line(f: Facts, origin: str, sender: str, fit: TimeoutMatch | None) -> str:
    """The table's action line for a verdict of the classifier's own rules (the same
    branches as :func:`advice_lines`, said in at most ACTION_MAX_CHARS characters)."""
    gap = f.trigger_gap_s if f.triggered else f.idle_gap_s
    if f.lone:
        return "capture from the connection's start (or at both ends) to attribute it"
    if sender == "middlebox":
        where, box = _where_short(f, origin)
        if "race" in f.tags or "after-clienthello" in f.tags or "storm" in f.tags:
            return _fit(f"check the DPI/IPS/SNI policy for this site on {where}",
                        f"check the DPI/IPS/SNI policy on {where}",
                        f"check the DPI/IPS/SNI policy on {box} toward the {f.side}")
        if fit is not None or (gap is not None and gap >= IDLE_EXPIRY_MIN_S):
            t = fit.entry.timeout_s if fit else gap or 0.0
            ka = _keepalive_s(t)
            if fit is not None:
                setting = _setting(fit)
                return _fit(f"raise {setting} above {_secs(gap or t)}, or keepalive every < {ka}",
                            f"keepalive every < {ka}, or raise {setting}",
                            f"raise {setting}",
                            f"keepalive every < {ka}, or raise {fit.entry.product}'s timeout")
            return _fit(f"keepalive every < {ka}, or raise the idle timeout of {where}",
                        f"raise the idle timeout of {where}",
                        f"keepalive every < {ka}, or raise the idle timeout of {box}")
        return _fit(f"check the logs and rules of {where}",
                    f"check the logs and rules of {box} toward the {f.side}")
    if "proxy-close" in f.tags:
        gap_c = f.ctx.s_close_gap_ns / NS
        ka = _keepalive_s(gap_c)
        m = proxy_close_match(f)
        if m is not None:
            named = distinct_products(sorted(
                (x for x in match_gap(f.cfg, gap_c, triggered=False, bidirectional=False)
                 if x.entry.full_proxy),
                key=lambda x: (not x.entry.stated,
                               x.entry.expiry_behaviour != ("http-error-then-close"
                                                            if f.ctx.s_close_mid_response
                                                            else "fin"),
                               round(abs(x.error_s), 3), x.entry.rank)), 1)
            if named:
                setting = _setting(named[0])
                return _fit(f"raise {setting} above {_secs(gap_c)}, or send data every < {ka}",
                            f"raise {setting} above {_secs(gap_c)}",
                            f"raise {setting}")
        return _fit(f"raise the proxy's upstream read timeout above {_secs(gap_c)}, "
                    f"or send data every < {ka}",
                    f"raise nginx proxy_read_timeout/haproxy timeout server above {_secs(gap_c)}",
                    f"raise the proxy's read timeout above {_secs(gap_c)}")
    if "proxy-no-answer" in f.tags:
        gap_c = f.ctx.s_close_gap_ns / NS
        return f"check that the proxy's backend is up: the proxy gave up after {_secs(gap_c)}"
    if "same-link-peer" in f.tags:
        return ("raise the LB/proxy timeout toward this server, or the client's read timeout"
                if gap is None else
                _fit(f"raise the LB/proxy timeout toward this server or the client's "
                     f"above {_secs(gap)}",
                     f"raise the LB/proxy's or client's timeout above {_secs(gap)}"))
    if "refused" in f.tags:
        return _fit(f"check that a service listens on port {f.ctx.flow.resp_p} (and no host "
                    "firewall REJECTs it)",
                    f"check that port {f.ctx.flow.resp_p} has a listener (and no host "
                    "firewall REJECT)",
                    f"check that a service listens on port {f.ctx.flow.resp_p}")
    if "unanswered" in f.tags:
        return "find the NAT/firewall that drops idle flows; keep the flow busier than it"
    if gap is not None and gap >= 5:
        if f.side == "client":
            return (f"the client's read/idle timeout is ~{_secs(gap)}: raise it, or answer "
                    "sooner")
        return f"the server drops connections idle ~{_secs(gap)}: keep them busier or raise it"
    if "after-fin" in f.tags or "after-alert" in f.tags:
        return f"benign if requests succeed; else check the {f.side} app's close path"
    return f"benign if requests succeed; else check the {f.side} app's logs at this time"


#: The action line of each everyday cause (issue 17), by ``cause_id``; the full advice
#: is :func:`everyday_advice`.
EVERYDAY_ACTIONS: dict[str, str] = {
    "keepalive-race": "make the client pool's idle timeout shorter than the server's keep-alive",
    "accept-overflow": "raise the server's listen backlog (somaxconn) or maxconn, or add capacity",
    "total-timeout": "raise the total-time limit (SDK timeout, gunicorn --timeout), or stream",
    "pmtu-blackhole": "clamp the MSS on the tunnel/VPN link (TCPMSS --clamp-mss-to-pmtu)",
    "proxy-buffering": "turn buffering off for streams (nginx proxy_buffering off)",
    "path-silent": "find the device that drops this flow: capture at both ends to see where",
    "unanswered": "check the server app (or a proxy before it): the request got no answer",
}


def everyday_action(cause_id: str, facts: dict[str, object]) -> str:
    """The action line of an everyday cause ('' when it has none)."""
    return EVERYDAY_ACTIONS.get(cause_id, "")


__all__ = ["ACTION_MAX_CHARS", "EVERYDAY_ACTIONS", "IDLE_EXPIRY_MIN_S", "action_line",
           "advice_lines", "cause_text", "everyday_action", "everyday_advice",
           "everyday_sentence", "sure_text"]
