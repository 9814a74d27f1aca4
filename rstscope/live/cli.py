"""``rstscope capture`` and ``rstscope watch``: click commands for live capture.

Both raise :class:`rstscope.errors.RstscopeError` subclasses for expected
faults; ``rstscope.cli.main`` (or :func:`main` here) turns them into one line
and the exit code (2 usage, 74 output, 77 no privilege).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from rstscope.cli import run
from rstscope.cliopts import (
    bpf_of,
    exit_codes_epilog,
    live_filter_options,
    selection,
    verdict_options,
)
from rstscope.core.events import FlowEvicted, FlowOpened, IdleWarning, ResetVerdict
from rstscope.errors import UsageError
from rstscope.ingest.packet_filter import PacketFilter
from rstscope.live.capture import DEFAULT_BUFFER_KIB, DEFAULT_SNAPLEN
from rstscope.live.privileges import check_capture_privilege
from rstscope.live.watch import DropReport, LiveOptions, LiveResult, LiveSession
from rstscope.live.writer import RotationPolicy, parse_size

DEFAULT_FILTER = "tcp port 443"


def _clock(ts: float) -> str:
    # UTC, as every other rstscope output (the Z says so), not the host's local time.
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"


def _gap(v: float | None) -> str:
    return "-" if v is None else (f"{v:.3f} s" if v < 10 else f"{v:.1f} s")


def format_event(ev: Any) -> list[str]:
    """One event as human lines (the first is the headline)."""
    if isinstance(ev, ResetVerdict):
        r = ev.reset
        hops = "" if r.sender_hops is None else f", {r.sender_hops} hop(s) away"
        lines = [
            f"{_clock(r.ts)} RST {r.src}:{r.sport} > {r.dst}:{r.dport} [{r.flags}] "
            f"frame {r.frame}: {r.origin} ({r.sender}{hops}, confidence {r.confidence:.2f}), "
            f"idle {_gap(r.idle_gap_s)}",
            f"    cause: {r.cause}",
        ]
        lines += [f"    -> {r.advice[0]}"] if r.advice else []
        lines += [f"    advice: {a}" for a in r.advice[1:2]]
        return lines
    if isinstance(ev, IdleWarning):
        near = "; ".join(ev.candidates[:3]) or "a known timeout"
        return [f"{_clock(_now())} warning: flow {ev.flow_id} idle {ev.idle_s:.0f} s; "
                f"default timeout near: {near}"]
    if isinstance(ev, (FlowEvicted, FlowOpened)):
        return []  # tracker bookkeeping; counted in the summary
    return [f"{_clock(_now())} {type(ev).__name__}"]


def event_json(ev: Any) -> dict[str, Any] | None:
    if isinstance(ev, ResetVerdict):
        return {"event": "reset", "reported_ts": _now(), **ev.reset.to_dict()}
    if isinstance(ev, IdleWarning):
        return {"event": "idle-warning", "reported_ts": _now(), "flow_id": ev.flow_id,
                "idle_s": ev.idle_s, "candidates": list(ev.candidates)}
    if isinstance(ev, FlowEvicted):
        return {"event": "flow-evicted", "reported_ts": _now(), "flow_id": ev.flow.flow_id,
                "reason": ev.reason}
    return None


def _now() -> float:
    return time.time()


def _summary_lines(res: LiveResult) -> list[str]:
    c = res.counters
    lines = [
        f"{c.captured} packets captured",
        f"{c.received_by_filter} packets received by filter",
        f"{c.dropped_by_kernel} packets dropped by kernel",
        "unknown packets dropped by interface" if c.dropped_by_interface is None
        else f"{c.dropped_by_interface} packets dropped by interface",
    ]
    if res.files:
        names = [str(p) for p in dict.fromkeys(res.files)]
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} files)" if len(names) > 5 else "")
        lines.append(f"{res.written} packets written to {shown}")
    return lines


def _summary_json(res: LiveResult) -> dict[str, Any]:
    c = res.counters
    return {
        "event": "summary", "captured": c.captured, "received_by_filter": c.received_by_filter,
        "dropped_by_kernel": c.dropped_by_kernel, "dropped_by_interface": c.dropped_by_interface,
        "written": res.written, "files": [str(p) for p in dict.fromkeys(res.files)],
        "flows": res.flows, "resets_by_origin": res.resets_by_origin,
        "elapsed_s": round(res.elapsed_s, 3), "source": res.source,
    }


def _policy(size: str | None, ring: int | None, seconds: float | None) -> RotationPolicy:
    return RotationPolicy(file_size_bytes=parse_size(size) if size else None, ring_files=ring,
                          rotate_s=seconds)


def _common(f: Any) -> Any:
    options = [
        click.option("-i", "--interface", "iface", required=True, metavar="IFACE", help="Interface to capture on."),
        click.option("-f", "--filter", "bpf", default=DEFAULT_FILTER, show_default=True, metavar="BPF",
                     help="Kernel BPF filter (tcpdump syntax); '' for everything."),
        click.option("-s", "--snaplen", type=int, default=DEFAULT_SNAPLEN, show_default=True,
                     help="Bytes kept per packet (headers + TLS record header)."),
        click.option("-w", "--write", "out", type=str, default=None, metavar="FILE",
                     help="Write packets to this file (strftime pattern with -G)."),
        click.option("--format", "fmt", type=click.Choice(["pcapng", "pcap"]), default="pcapng",
                     show_default=True, help="Output file format."),
        click.option("-C", "file_size", default=None, metavar="SIZE",
                     help="Rotate when a file exceeds this size: millions of bytes, "
                          "or with a k/m/g suffix KiB/MiB/GiB (as tcpdump)."),
        click.option("-W", "ring", type=int, default=None, metavar="N",
                     help="With -C: ring of N files; with -G: stop after N files."),
        click.option("-G", "rotate_s", type=float, default=None, metavar="SECONDS",
                     help="Start a new file every SECONDS (use strftime codes in -w)."),
        click.option("-c", "--count", type=int, default=None, help="Stop after COUNT packets."),
        click.option("--duration", "duration_s", type=float, default=None,
                     help="Stop after this many seconds."),
        click.option("-Z", "--relinquish-privileges", "user", default=None, metavar="USER",
                     help="After opening the socket, run as USER (default under sudo: "
                          "the invoking user)."),
        click.option("-p", "--no-promiscuous-mode", "no_promisc", is_flag=True,
                     help="Do not put the interface into promiscuous mode."),
        click.option("-B", "--buffer-size", "buffer_kib", type=int, default=DEFAULT_BUFFER_KIB,
                     show_default=True, help="Kernel capture buffer in KiB."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _options(iface: str, bpf: str, snaplen: int, out: str | None, fmt: str,
             file_size: str | None, ring: int | None, rotate_s: float | None,
             count: int | None, duration_s: float | None, user: str | None, no_promisc: bool,
             buffer_kib: int) -> LiveOptions:
    if (file_size or ring or rotate_s) and not out:
        raise UsageError("-C, -W and -G need -w FILE")
    if count is not None and count <= 0:
        raise UsageError("-c must be positive")
    if duration_s is not None and duration_s <= 0:
        raise UsageError("--duration must be positive")
    return LiveOptions(
        iface=iface, bpf=bpf or None, snaplen=snaplen, out=out,
        fmt="pcap" if fmt == "pcap" else "pcapng", policy=_policy(file_size, ring, rotate_s),
        count=count, duration_s=duration_s, user=user, promisc=not no_promisc,
        buffer_kib=buffer_kib,
    )


def _with_expression(kw: dict[str, Any], expression: tuple[str, ...]) -> dict[str, Any]:
    """tcpdump's habit: the filter as trailing words (``... tcp port 443``) instead of -f."""
    if not expression:
        return kw
    if kw.get("bpf") not in (None, DEFAULT_FILTER):
        raise UsageError("give the filter either with -f or as trailing words, not both")
    return {**kw, "bpf": " ".join(expression)}


def _status(line: str) -> None:
    click.echo(f"rstscope: {line}", err=True)


def _drops_status(d: DropReport) -> None:
    """Drops as they happen (tcpdump says so only at the end)."""
    full = f", ring full {d.ring_full} times" if d.ring_full else ""
    _status(f"{d.new} packets dropped by kernel since the last report ({d.total} in all, "
            f"{d.captured} captured{full}): not keeping up; a larger -B gives more slack")


def _drops_json(d: DropReport) -> None:
    click.echo(json.dumps({"event": "drops", "reported_ts": _now(), "dropped": d.new,
                           "dropped_total": d.total, "captured": d.captured,
                           "ring_full": d.ring_full}))
    sys.stdout.flush()
    _drops_status(d)


@click.command(epilog="Stops on Ctrl-C, -c, --duration or the -G/-W file budget; "
                      "prints packet and drop counts like tcpdump.  " + exit_codes_epilog())
@_common
@click.argument("expression", nargs=-1)
def capture(expression: tuple[str, ...], **kw: Any) -> None:
    """Capture packets to pcapng/pcap files (tcpdump-style flags, needs CAP_NET_RAW).

    EXPRESSION is a BPF filter as tcpdump takes it (``tcp port 443``); it replaces -f.
    """
    opts = _options(**_with_expression(kw, expression))
    if not opts.out:
        raise UsageError("capture needs -w FILE (use 'rstscope watch' to see verdicts live)")
    res = LiveSession(opts, on_listening=_status, on_drops=_drops_status).run()
    for line in _summary_lines(res):
        click.echo(line, err=True)


@click.command(epilog="Prints each RST's verdict within a second; Ctrl-C prints the summary.  "
                      + exit_codes_epilog())
@_common
@live_filter_options
@verdict_options
@click.argument("expression", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event on stdout.")
@click.option("--max-flows", type=int, default=None,
              help="Bound on tracked flows (the least recently seen are evicted, and counted).")
@click.option("--evict-idle", "evict_idle_s", type=float, default=None,
              help="Forget flow state after this many idle seconds (records are kept).")
@click.option("--idle-warn-min", "idle_warn_min_s", type=float, default=None,
              help="Warn about timeouts of at least this many seconds (default 30).")
def watch(vantage: str, as_json: bool, max_flows: int | None, evict_idle_s: float | None,
          timeouts_file: str | None, stack: str | None, idle_warn_min_s: float | None,
          expression: tuple[str, ...], ports: tuple[int, ...], hosts: tuple[str, ...],
          flows: tuple[int, ...], start: str | None, end: str | None, **kw: Any) -> None:
    """Analyse live traffic: a verdict for each RST as it happens, idle-timeout warnings.

    EXPRESSION is a BPF filter as tcpdump takes it (``tcp port 443``); it replaces -f.
    --port/--host, --flow and --start/--end mean what they mean for `rstscope analyze`.
    """
    kw = _with_expression(kw, expression)
    sel = selection(vantage=vantage, timeouts_file=timeouts_file, stack=stack, flows=flows,
                    start=start, end=end)
    if sel.end_ns is not None:
        left_s = (sel.end_ns - time.time_ns()) / 1e9
        if left_s <= 0:
            raise UsageError(f"--end {end} is in the past: nothing left to watch")
        # --end stops the session as --duration does (the earlier of the two wins).
        kw = {**kw, "duration_s": min(kw.get("duration_s") or left_s, left_s)}
    extra = bpf_of(ports, hosts)  # the same --port/--host as analyze, in the kernel filter
    if extra:
        # --port replaces the default port 443, as it would for analyze.
        base = "tcp" if kw.get("bpf") in (None, "", DEFAULT_FILTER) else f"({kw['bpf']})"
        kw = {**kw, "bpf": f"{base} and {extra}"}
    opts = _options(**kw)
    check_capture_privilege()  # before loading the analyzer: fail fast, with the advice
    overrides: dict[str, Any] = {}
    if max_flows is not None:
        overrides["max_flows"] = max_flows
    if evict_idle_s is not None:
        overrides["evict_idle_s"] = evict_idle_s
    config = dataclasses.replace(sel.config(), **overrides)
    if idle_warn_min_s is not None:
        config = dataclasses.replace(config, idle_warn_min_s=idle_warn_min_s)

    def on_event(ev: Any) -> None:
        if as_json:
            doc = event_json(ev)
            if doc is not None:
                click.echo(json.dumps(doc, default=str))
        else:
            for line in format_event(ev):
                click.echo(line)
        sys.stdout.flush()

    res = LiveSession(opts, analyze=True, on_event=on_event, on_listening=_status,
                      config=config, on_drops=_drops_json if as_json else _drops_status,
                      packet_filter=_window(sel.start_ns), keep_event=_of_flows(sel.flows)
                      ).run()
    if as_json:
        click.echo(json.dumps(_summary_json(res)))
    by = ", ".join(f"{k} {v}" for k, v in sorted(res.resets_by_origin.items()))
    for line in _summary_lines(res):
        click.echo(line, err=True)
    click.echo(f"{sum(res.resets_by_origin.values())} resets ({by or 'none'}) in {res.flows} flows",
               err=True)


def _window(start_ns: int | None) -> Any:
    """``--start`` on a live stream: a batch mask keeping packets at or after it (the
    end is a stop time, see ``--end``), or None."""
    if start_ns is None:
        return None
    return PacketFilter(start_ns=start_ns).mask


def _of_flows(flows: Sequence[int]) -> Any:
    """``--flow`` on a live stream: keep the events of these flow ids, or None."""
    if not flows:
        return None
    wanted = frozenset(flows)

    def keep(ev: Any) -> bool:
        rec = getattr(ev, "reset", None)
        fid = rec.flow_id if rec is not None else getattr(ev, "flow_id", None)
        return fid is None or fid in wanted

    return keep


@click.group()
def live() -> None:
    """Live capture commands (also registered on the main rstscope CLI)."""


live.add_command(capture)
live.add_command(watch)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m rstscope.live capture|watch ...`` with the main CLI's error mapping."""
    run(live, argv)
