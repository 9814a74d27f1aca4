"""The probe's default output: the path, one row per trigger probe, the answer."""

from __future__ import annotations

from typing import Any, TextIO

from rstscope.probe.model import Hop, ProbeResult

COLUMNS = ("ttl", "reply", "from", "rtt_ms", "rst_ttl", "rst_ip_id", "also")


def hop_row(h: Hop) -> list[str]:
    def s(v: Any) -> str:
        return "-" if v is None else str(v)

    also = f"time-exceeded from {h.icmp_from}" if h.icmp_from else ""
    rtt = "-" if h.rtt_ms is None else f"{h.rtt_ms:.2f}"
    return [str(h.ttl), h.reply, s(h.from_addr), rtt, s(h.rst_ttl), s(h.rst_ip_id), also]


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    for r in [list(COLUMNS), *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def render_text(result: ProbeResult, out: TextIO) -> None:
    r = result
    trig = r.trigger + (f" {r.idle_s:g} s" if r.idle_s is not None else "")
    if r.sni:
        trig += f", SNI {r.sni}"
    out.write(f"target: {r.target} ({r.address}, IPv{r.ip_v})   trigger: {trig}   "
              f"local: {r.local}\n")
    path = ", ".join(f"{h.ttl} {h.from_addr or '*'}" for h in r.path if h.reply != "ack")
    end = f"; endpoint at hop {r.endpoint_hops}" if r.endpoint_hops else "; endpoint not reached"
    out.write(f"path (fresh connection): {path or '-'}{end}"
              f" (SYN-ACK TTL {r.endpoint_ttl})\n\n")
    _table([hop_row(h) for h in r.hops], out)
    a = r.answer
    out.write("\n")
    if a.reset_hop is not None:
        out.write(f"reset at hop {a.reset_hop}: {a.box}"
                  + (f" {a.reset_addr}" if a.reset_addr else "")
                  + f"   router before: {a.router_before or '-'}"
                  + f"   router after: {a.router_after or '-'}\n")
    out.write(f"verdict: {a.verdict}\n")
