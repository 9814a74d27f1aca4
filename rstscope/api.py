"""The library surface: ``analyze()`` and the :class:`Analysis` it returns.

This module glues ingestion (files → packet batches) to the pure core
(batches → flow and reset records) and presents the results as pandas
DataFrames with fixed schemas.  It is what notebooks use, and what the CLI
prints from.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from rstscope.catalog import make_config
from rstscope.core import Tracker, TrackerConfig
from rstscope.core.records import (
    FlowRecord,
    FlowSpan,
    ResetRecord,
    field_names,
    field_value,
    records_by_id,
    spans_of,
)
from rstscope.core.vocab import Origin, values
from rstscope.errors import OutputError, require
from rstscope.ingest import open_capture
from rstscope.ingest.index import PacketIndex
from rstscope.ingest.packet_filter import PacketFilter
from rstscope.schema import SCHEMA_VERSION
from rstscope.table import render
from rstscope.wire.opener import rereadable

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.core.stalls import StallRecord
    from rstscope.flowpackets import FlowPackets

Source = str | os.PathLike[str] | IO[bytes]
Sources = Source | Sequence[Source]

ORIGINS = values(Origin)

# Re-exported: the notebook surface is this module (rstscope.api.PacketFilter and
# make_config); rstscope's own modules import them from where they live.
__all__ = ["ORIGINS", "Analysis", "PacketFilter", "Source", "Sources", "analyze", "json_ready",
           "make_config"]


def _source_name(source: Sources) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        return ",".join(_source_name(s) for s in source)
    return getattr(source, "name", "<stream>") if isinstance(getattr(source, "name", None), str) else "<stream>"


@dataclass
class Analysis:
    """Results of analysing one capture (or one ordered list of rotated files).

    ``flows`` and ``resets`` are DataFrames with the documented schemas
    (docs/schema.md); they are never ``None`` (empty frames keep their columns).
    """

    file: str
    tracker: Tracker
    read_stats: Any
    _source: Sources | None = None
    _flows_df: pd.DataFrame | None = field(default=None, repr=False)
    _resets_df: pd.DataFrame | None = field(default=None, repr=False)
    _stalls_df: pd.DataFrame | None = field(default=None, repr=False)
    _packets_df: pd.DataFrame | None = field(default=None, repr=False)
    _context: Any = field(default=None, repr=False)
    # The resets refined with _context (EnrichedReset), made once per enrich().
    _refined: list[ResetRecord] | None = field(default=None, repr=False)
    # Sparse index of the analysis pass (rstscope.ingest.index): one-flow reads seek.
    _index: PacketIndex | None = field(default=None, repr=False)

    @property
    def source(self) -> Sources | None:
        """What was analysed: a path, a file object, or a list of them."""
        return self._source

    def enrich(self, keylog: str | os.PathLike[str] | None = None) -> Any:
        """TLS/HTTP2 context (tshark) for the flows with resets, and refined verdicts.

        Returns the :class:`rstscope.enrich.EnrichedContext`; the refined reset
        records are in :meth:`enriched_resets`.  Needs tshark (Debian: tshark).
        """
        # lazy: enrich loads pyshark; only an enrich request needs it
        from rstscope.enrich import enrich

        self._context = enrich(self, keylog=keylog)
        self._resets_df = None
        self._refined = None
        return self._context

    # -- typed records (what plot, report and enrich read) ---------------
    def typed_resets(self) -> list[ResetRecord]:
        """Every reset in capture order; :class:`rstscope.results.EnrichedReset` after
        :meth:`enrich`."""
        if self._context is None:
            return self.tracker.resets()
        if self._refined is None:
            # lazy: enrich loads pyshark; only an enrich request needs it
            from rstscope.enrich import apply_refinements

            self._refined = list(apply_refinements(self.tracker.resets(), self._context))
        return list(self._refined)

    def typed_flows(self) -> list[FlowRecord]:
        return self.tracker.flows()

    def flow_spans(self) -> list[FlowSpan]:
        """Every flow's id, first and last packet time, in :meth:`typed_flows` order,
        without building the flow records (a report picks its few flows by these)."""
        if self._own_flows():
            return self.tracker.flow_spans()
        return spans_of(self.typed_flows())

    def flows_by_id(self, ids: Iterable[int]) -> list[FlowRecord]:
        """The records of the flows with these ids, in :meth:`typed_flows` order;
        only those are built."""
        if self._own_flows():
            return self.tracker.flows_by_id(ids)
        return records_by_id(self.typed_flows(), ids)

    def _own_flows(self) -> bool:
        # A subclass that changes typed_flows() is answered from its records.
        return type(self).typed_flows is Analysis.typed_flows

    def typed_stalls(self) -> list[StallRecord]:
        """Flows that stalled without a RST to explain them (docs/schema.md)."""
        return self.tracker.stalls()

    @property
    def flow_packets(self) -> FlowPackets:
        """The packets of some flows, streamed from the source (seeking through the
        sparse index when there is one); the frame of :attr:`packets` once it is read."""
        # lazy: only plots, reports and notebooks re-read packets, not analyze's output
        from rstscope.flowpackets import FlowPackets

        return FlowPackets(self._source, self.packet_index, lambda: self._packets_df)

    # -- records as dicts (JSON-ready; the notebook's and the JSON's shape) --
    def reset_records(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.typed_resets()]

    def flow_records(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.typed_flows()]

    def stall_records(self) -> list[dict[str, Any]]:
        """Flows that stalled without a RST to explain them (docs/schema.md)."""
        return [s.to_dict() for s in self.typed_stalls()]

    # -- DataFrames ------------------------------------------------------
    @property
    def resets(self) -> pd.DataFrame:
        if self._resets_df is None:
            # lazy: pandas, only when a DataFrame is asked for
            from rstscope.record_frames import resets_frame

            self._resets_df = resets_frame(self.reset_records())
        return self._resets_df

    @property
    def stalls(self) -> pd.DataFrame:
        """One row per stalled flow (ends in a FIN after retransmissions, hangs at the
        capture's end, unanswered SYNs or requests, a stream cut mid-way)."""
        if self._stalls_df is None:
            from rstscope.record_frames import stalls_frame  # lazy: pandas

            self._stalls_df = stalls_frame(self.stall_records())
        return self._stalls_df

    @property
    def flows(self) -> pd.DataFrame:
        if self._flows_df is None:
            # lazy: pandas, only when a DataFrame is asked for
            from rstscope.record_frames import flows_frame

            self._flows_df = flows_frame(self.flow_records())
        return self._flows_df

    @property
    def packets(self) -> pd.DataFrame:
        """Per-packet header fields, read again from the source on first use (lazy)."""
        if self._packets_df is None:
            # lazy: pandas, only when a DataFrame is asked for
            from rstscope.ingest import read_packets

            if self._source is None or not rereadable(self._source):
                raise ValueError("packets are only available for analyses of files on disk")
            self._packets_df = read_packets(self._source)
        return self._packets_df

    @property
    def packet_index(self) -> PacketIndex | None:
        """Where each batch of the analysis pass sits in the capture, or None when the
        source cannot be sought in (stdin, gzip)."""
        idx = self._index
        return idx if idx is not None and idx.complete else None

    # -- summaries -------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        resets = self.tracker.resets()
        by_origin = {o: 0 for o in ORIGINS}
        for r in resets:
            by_origin[r.origin] = by_origin.get(r.origin, 0) + 1
        stats = self.read_stats
        vantage_point, vantage_reason = self.tracker.vantage
        return {
            "file": self.file,
            "packets": int(getattr(stats, "frames", 0)),
            "tcp_packets": int(getattr(stats, "tcp", 0)),
            "non_tcp": dict(getattr(stats, "non_tcp", {}) or {}),
            "warnings": list(getattr(stats, "warnings", []) or []),
            "flows": self.tracker.stats.flows,
            "resets": len(resets),
            "resets_by_origin": by_origin,
            "vantage": vantage_point,
            "vantage_reason": vantage_reason,
        }

    def to_document(self, *, resets: list[dict[str, Any]] | None = None,
                    flows: bool = True, stalls: bool = True) -> dict[str, Any]:
        """The JSON document of ``rstscope analyze --format json`` (docs/schema.md).

        For the CLI's other outputs, which print only some parts: ``resets``, the
        JSON-ready reset dicts to hold instead of this analysis's own (the CLI's, as
        shown), so that they are not made twice; ``flows`` / ``stalls`` False leave
        those lists empty (a record per connection is most of the document's cost)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "file": self.file,
            "summary": self.summary(),
            "flows": [_flow_json(f) for f in self.typed_flows()] if flows else [],
            "resets": ([_jsonable(r) for r in self.reset_records()] if resets is None
                       else resets),
            "stalls": [_jsonable(s) for s in self.stall_records()] if stalls else [],
        }

    def to_parquet(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``flows.parquet`` and ``resets.parquet`` into ``directory``."""
        require("pyarrow", extra="parquet")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        # lazy: pandas, only when a DataFrame is asked for
        from rstscope.record_frames import parquet_ready

        self.flows.to_parquet(out / "flows.parquet", index=False)
        parquet_ready(self.resets).to_parquet(out / "resets.parquet", index=False)
        return out

    # -- plots and reports (matplotlib is imported only here, on use) -----
    def timeline(self, reset_or_flow: Any, ax: Any = None) -> Any:
        """Plot one flow's timeline; accepts a flow id, a reset row, or a frame number row."""
        # lazy: the plot stack only when something is drawn
        from rstscope.plot import timeline

        return timeline(self, reset_or_flow, ax=ax)

    def overview(self, ax: Any = None) -> Any:
        """Plot all flows as lanes, RSTs coloured by origin."""
        # lazy: the plot stack only when something is drawn
        from rstscope.plot import overview

        return overview(self, ax=ax)

    def idle_gap_histogram(self, ax: Any = None) -> Any:
        """Histogram of idle gaps before RSTs with known timeouts marked."""
        # lazy: the plot stack only when something is drawn
        from rstscope.plot import idle_gap_histogram

        return idle_gap_histogram(self, ax=ax)

    def report(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained HTML report to ``path``."""
        # lazy: the report stack (matplotlib figures) only when a report is written
        from rstscope.report.html import build_report

        out = Path(path)
        try:
            out.write_text(build_report([self]), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"{out}: cannot write report ({exc.strerror})") from exc
        return out

    def __repr__(self) -> str:
        """A plain REPL shows the summary and the reset table, not a dataclass dump."""
        buf = io.StringIO()
        doc = self.to_document()
        render(doc, buf, width=100)
        return f"<rstscope.Analysis of {self.file}>\n" + buf.getvalue().rstrip()

    def _repr_html_(self) -> str:
        # lazy: pandas, only when a DataFrame is asked for
        from rstscope.record_frames import summary_html

        return summary_html(self)


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _jsonable(obj: Any) -> Any:
    """Make a record JSON-safe: NaN/inf become null, numpy scalars become Python."""
    if type(obj) is dict:
        # Fast path for the records' plain dicts (thousands per capture): values of
        # exactly these types, and finite floats, are returned as they are by the
        # general case below (a flow record has seven floats: no call for each).
        scalars = _JSON_SCALARS
        isfinite = math.isfinite
        return {k: v if type(v) in scalars or (type(v) is float and isfinite(v))
                else _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _flow_json(flow: FlowRecord) -> dict[str, Any]:
    """``_jsonable(flow.to_dict())`` in one pass over the fields instead of two: the
    document holds one per flow (thousands), and this halves their cost."""
    exact = _JSON_SCALARS
    isfinite = math.isfinite
    out: dict[str, Any] = {}
    for name in field_names(FlowRecord):
        v = getattr(flow, name)
        t = type(v)
        if t in exact:
            out[name] = v
        elif t is float:
            out[name] = v if isfinite(v) else None
        else:
            out[name] = _jsonable(field_value(v))
    return out


def json_ready(record: dict[str, Any]) -> dict[str, Any]:
    """A record's dict made JSON-safe as :meth:`Analysis.to_document` makes it (NaN
    and inf become null), for the CLI that builds the document's resets itself."""
    out: dict[str, Any] = _jsonable(record)
    return out


def analyze(
    source: Sources,
    *,
    vantage: str = "auto",
    ports: Iterable[int] = (),
    hosts: Iterable[str] = (),
    start_ns: int | None = None,
    end_ns: int | None = None,
    config: TrackerConfig | None = None,
    batch_size: int = 65536,
    progress: Callable[[int, int], None] | None = None,
    progress_fraction: Callable[[float | None], None] | None = None,
) -> Analysis:
    """Analyse a capture: a path, a binary file object, ``"-"``, or a list of rotated files.

    Args:
        source: what to read.  A list is read in order as one stream, so flows
            survive file boundaries.
        vantage: ``auto`` (inferred from TTLs and timing) or ``client``,
            ``server``, ``middle`` to override the inference.
        ports, hosts: keep only packets to or from these ports / addresses or
            CIDR networks.
        start_ns, end_ns: keep only packets captured in [start_ns, end_ns).
        config: a full :class:`TrackerConfig` (``vantage`` is then ignored).
        progress: called as ``progress(packets_so_far, batches_so_far)``.
        progress_fraction: called with the share of the input read (0-1), or None
            when it cannot be known (stdin, gzip).

    Returns:
        An :class:`Analysis`.

    Raises:
        InputMissingError, CaptureError: the input is missing or unreadable.
    """
    cfg = config if config is not None else make_config(vantage)
    flt = PacketFilter(tuple(int(p) for p in ports), tuple(hosts), start_ns, end_ns)
    tracker = Tracker(cfg)
    packets = 0
    with open_capture(source, batch_size=batch_size, index=rereadable(source)) as reader:
        for n, batch in enumerate(reader, 1):
            keep = flt.mask(batch)
            if keep is not None:
                batch = batch[keep]
            packets += len(batch)
            if len(batch):
                tracker.feed(batch)
            if progress is not None:
                progress(packets, n)
            if progress_fraction is not None:
                progress_fraction(reader.fraction_done())
        tracker.finish()
        stats = reader.stats
    return Analysis(file=_source_name(source), tracker=tracker, read_stats=stats, _source=source,
                    _index=reader.index)
