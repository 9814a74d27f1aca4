"""TLS and HTTP/2 context for flows with resets (pyshark/tshark), and ``verify``.

Optional layer on top of the core: it needs tshark (Debian package ``tshark``)
and pyshark; without them it raises one clear error and nothing else in
rstscope is affected.  Only the flows that contain a reset are dissected.

    >>> from rstscope import api
    >>> a = api.analyze("capture.pcap")
    >>> ctx = enrich(a, keylog="keys.log")     # EnrichedContext
    >>> for r in refine(a.typed_resets(), ctx): print(r.rule, r.cause)
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from rstscope.enrich.context import (
    EnrichedContext,
    FlowContext,
    FlowKey,
    Http2Frame,
    TcpMark,
    TlsAlert,
    TlsRecord,
)
from rstscope.enrich.fields import dissect_fields
from rstscope.enrich.flows import display_filter, extract, reset_keys, scan, source_paths
from rstscope.enrich.refine import Refinement, apply_refinements, context_summary, refine
from rstscope.enrich.shark import TLS_FILTER, build_contexts, dissect
from rstscope.enrich.snaplen import keylog_warning
from rstscope.enrich.tls import PacketFacts
from rstscope.enrich.tools import find_tool, tshark_version
from rstscope.enrich.verify import FieldDiff, VerifyReport, verify_capture
from rstscope.errors import UsageError
from rstscope.results import RecordSource

__all__ = [
    "EnrichedContext",
    "FieldDiff",
    "FlowContext",
    "FlowKey",
    "Http2Frame",
    "Refinement",
    "TcpMark",
    "TlsAlert",
    "TlsRecord",
    "VerifyReport",
    "apply_refinements",
    "context_summary",
    "enrich",
    "enrich_capture",
    "refine",
    "verify_capture",
]

def _warn_if_snaplen_cuts(source: Any) -> None:
    paths = source if isinstance(source, (list, tuple)) else [source]
    msg = keylog_warning(p for p in paths if isinstance(p, (str, os.PathLike)) and p != "-")
    if msg:
        warnings.warn(msg, UserWarning, stacklevel=3)


STRATEGIES = ("extract", "filter")
ENGINES = ("auto", "pyshark", "tshark-fields")

#: ``auto`` uses pyshark up to this many cut packets, tshark fields beyond:
#: pyshark parses ~40-500 packets/s depending on payload size (docs/enrich.md).
PYSHARK_MAX_PACKETS = 2000


def enrich(analysis: RecordSource, keylog: str | os.PathLike[str] | None = None, *,
           strategy: str = "extract", engine: str = "auto") -> EnrichedContext:
    """TLS/HTTP2 context for the reset flows of an analysed capture
    (an :class:`rstscope.api.Analysis`, or any :class:`rstscope.results.RecordSource`).

    Uses its reset records to pick the flows, and re-reads the source file(s) its
    packet provider reads.  Safe to call inside a running event loop (Jupyter).
    """
    source = analysis.flow_packets.source
    if source is None:
        source = analysis.file
    if keylog is not None:
        _warn_if_snaplen_cuts(source)
    return enrich_capture(source, resets=analysis.typed_resets(), keylog=keylog,
                          strategy=strategy, engine=engine)


def enrich_capture(source: Any, *, resets: Any = None,
                   keylog: str | os.PathLike[str] | None = None,
                   strategy: str = "extract", engine: str = "auto") -> EnrichedContext:
    """TLS/HTTP2 context for the flows of ``source`` that have an RST.

    Args:
        source: a capture path, or a list of paths read as one stream.
        resets: reset records (objects or dicts with file_id/src/sport/dst/dport);
            None finds the RST flows with rstscope's reader.
        keylog: an SSLKEYLOGFILE; decrypts TLS so HTTP/2 frames become visible.
        strategy: ``extract`` (default: rstscope's reader + editcap cut a small file
            for tshark) or ``filter`` (tshark reads everything with a 5-tuple filter).
    Raises:
        ToolUnavailableError: tshark missing (the message names ``apt-get install tshark``).
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown enrichment strategy {strategy!r}; use one of {STRATEGIES}")
    if engine not in ENGINES:
        raise UsageError(f"unknown enrichment engine {engine!r}; use one of {ENGINES}")
    find_tool("tshark")
    paths = source_paths(source)
    read_src: Any = paths if len(paths) > 1 else paths[0]
    keys = reset_keys(resets) if resets is not None else None
    facts: list[PacketFacts] = []
    if strategy == "extract":
        keys, frames = scan(read_src, keys)
        with tempfile.TemporaryDirectory(prefix="rstscope-enrich-") as tmp:
            small = Path(tmp) / "reset-flows.pcapng"
            fmap = extract(paths, frames, small)
            n_cut = sum(len(f) for f in frames.values())
            if engine == "auto":
                engine = "pyshark" if n_cut <= PYSHARK_MAX_PACKETS else "tshark-fields"
            for f in _dissect(engine, small, keylog, TLS_FILTER):
                facts.append(_renumber(f, fmap.original(f.frame)[1]))
    else:
        if keys is None:
            keys, _ = scan(read_src, None)
        for fid, path in enumerate(paths):
            if not keys.get(fid):
                continue
            flt = f"({TLS_FILTER}) && ({display_filter(keys[fid])})"
            facts.extend(_dissect("pyshark" if engine == "auto" else engine, path, keylog, flt))
    flows = build_contexts(facts)
    return EnrichedContext(flows=flows, keylog=None if keylog is None else os.fspath(keylog),
                           tshark=tshark_version(), strategy=strategy, engine=engine,
                           packets_dissected=len(facts))


def _dissect(engine: str, path: str | os.PathLike[str], keylog: str | os.PathLike[str] | None,
             flt: str) -> list[PacketFacts]:
    if engine == "tshark-fields":
        return dissect_fields(path, keylog=keylog, display_filter=flt)
    return dissect(path, keylog=keylog, display_filter=flt)


def _renumber(f: PacketFacts, frame: int) -> PacketFacts:
    """Give the facts of a packet of the cut file the source file's frame number."""
    return replace(
        f, frame=frame,
        records=tuple(replace(r, frame=frame) for r in f.records),
        alerts=tuple(replace(a, frame=frame) for a in f.alerts),
        http2=tuple(replace(h, frame=frame) for h in f.http2),
    )
