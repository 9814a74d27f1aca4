"""Run pyshark safely (also inside Jupyter) and fold its packets into flow contexts.

pyshark drives tshark through asyncio and calls ``run_until_complete`` on the
current loop, which fails inside a running loop (Jupyter, ``asyncio.run``):
"Cannot run the event loop while another loop is running" (KimiNewt/pyshark#360,
#542).  So the capture lives entirely in a worker thread that owns a fresh event
loop, and it is closed on that same loop before the loop is closed, which also
keeps pyshark's ``__del__`` from trying to close it again later (pyshark#366).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from rstscope.enrich.context import FlowContext, FlowKey, TcpMark, TlsRecord
from rstscope.enrich.tls import PacketFacts, packet_facts
from rstscope.enrich.tools import find_tool
from rstscope.errors import CaptureError, InputMissingError, require
from rstscope.schema import TH_FIN, TH_RST

T = TypeVar("T")

#: Only TLS/HTTP2 packets and FIN/RST matter here; tshark filters the rest out
#: before pyshark parses anything, which is where pyshark spends its time.
TLS_FILTER = "tls || http2 || tcp.flags.fin==1 || tcp.flags.reset==1"


def in_own_loop(fn: Callable[[asyncio.AbstractEventLoop], T]) -> T:
    """Call ``fn(loop)`` in a worker thread whose fresh event loop is ``loop``."""

    def run() -> T:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return fn(loop)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rstscope-pyshark") as pool:
        return pool.submit(run).result()


def _close(cap: Any, crash: type[BaseException]) -> None:
    """Close a pyshark capture on its own loop, once and for all.

    tshark's whole output has been read (or the read failed) when this runs.  A
    non-zero status seen only while reaping the finished process (under heavy load
    asyncio's child watcher can lose the exit status and report 255) raises
    pyshark's crash exception from inside ``close`` *before* pyshark empties its
    list of running processes; its ``__del__`` would then close again at
    interpreter exit, on a loop that is closed by then, and print "Event loop is
    closed" / "never awaited" (seen once in a full-suite run).  The process has
    exited either way, so the list is emptied here."""
    try:
        with contextlib.suppress(crash):
            cap.close()
    finally:
        # pyshark's own attribute: there is no public way to say "already reaped".
        cap._running_processes.clear()


def dissect(path: str | os.PathLike[str], *, keylog: str | os.PathLike[str] | None = None,
            display_filter: str = TLS_FILTER) -> list[PacketFacts]:
    """TLS/HTTP2 facts of every packet of ``path`` matching ``display_filter``."""
    tshark = find_tool("tshark")
    pyshark: Any = require("pyshark", apt="tshark")
    if not os.path.exists(path):
        raise InputMissingError(f"{os.fspath(path)}: no such file")
    prefs: dict[str, str] = {}
    if keylog is not None:
        if not os.path.exists(keylog):
            raise InputMissingError(f"{os.fspath(keylog)}: key log file not found")
        prefs["tls.keylog_file"] = os.path.abspath(keylog)

    def work(loop: asyncio.AbstractEventLoop) -> list[PacketFacts]:
        cap = pyshark.FileCapture(os.fspath(path), display_filter=display_filter,
                                  keep_packets=False, override_prefs=prefs or None,
                                  tshark_path=tshark, eventloop=loop)
        crash = pyshark.capture.capture.TSharkCrashException
        try:
            facts = [packet_facts(pkt) for pkt in cap]
        except crash as exc:
            _close(cap, crash)
            last = str(exc).splitlines()
            raise CaptureError(f"tshark could not dissect {os.fspath(path)}: "
                               f"{last[1] if len(last) > 1 else last[0]}") from None
        except BaseException:
            _close(cap, crash)
            raise
        # tshark's whole output was read to its end above; a non-zero status seen only
        # while reaping the finished process (seen under heavy load) does not make
        # that output any less complete.
        _close(cap, crash)
        return facts

    return in_own_loop(work)


def build_contexts(facts: Iterable[PacketFacts]) -> dict[FlowKey, FlowContext]:
    """Group packet facts by flow and summarise each flow's handshake."""
    grouped: dict[FlowKey, list[PacketFacts]] = {}
    for f in facts:
        grouped.setdefault(FlowKey.of(f.src, f.sport, f.dst, f.dport), []).append(f)
    out: dict[FlowKey, FlowContext] = {}
    for key, items in grouped.items():
        items.sort(key=lambda f: (f.ts_ns, f.frame))
        decrypted = any(f.decrypted for f in items)
        sni = next((f.sni for f in items if f.sni), None)
        offered = next((f.alpn for f in items if f.alpn and 1 in f.handshake_types), ())
        selected = next((f.alpn for f in items if f.alpn and 2 in f.handshake_types), ())
        alpn = (selected or offered or (None,))[0]
        version = next((f.version for f in items if f.version), None)
        records: list[TlsRecord] = []
        for f in items:
            for r in f.records:
                # TLS 1.2 without keys: alert/application data are visible but opaque.
                opaque = r.encrypted or (not decrypted and r.content_type in (21, 23))
                records.append(dataclasses.replace(r, encrypted=opaque))
        out[key] = FlowContext(
            key=key, sni=sni, alpn=alpn, tls_version=version, decrypted=decrypted,
            records=tuple(records),
            alerts=tuple(a for f in items for a in f.alerts),
            http2=tuple(h for f in items for h in f.http2),
            closes=tuple(TcpMark(f.frame, f.ts_ns, f.src, f.sport, f.tcp_flags) for f in items
                         if f.tcp_flags & (TH_FIN | TH_RST)),
        )
    return out
