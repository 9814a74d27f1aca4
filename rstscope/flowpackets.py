"""The packets of some flows, re-read from the capture in one streaming pass.

``Analysis.packets`` materialises every packet of the capture; for a 10 GB
capture that is far more memory than a plot of one flow or a report of twenty
needs.  Here each batch is filtered with numpy (ports first, then addresses,
within the flows' time span) and only the matching rows are kept, so memory is
bounded by those flows' packets.  When the analysis pass recorded a sparse index
(``Analysis.packet_index``, regular files), only the batches that may hold the
flows are decoded again, each found by seeking to its recorded offset; the rows
are the same as a full pass gives (tests/ingest/test_index.py).

:class:`FlowPackets` is the one provider of "the packets of these flows": the
timeline (one flow), the report (the flows it draws) and enrich's tshark pass
get it from ``Analysis.flow_packets``; it takes typed flow records, so it
imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from rstscope.schema import PACKET_DTYPE, addr_bytes
from rstscope.wire.opener import rereadable

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.core.records import FlowRecord
    from rstscope.ingest.index import PacketIndex


@dataclass(frozen=True, slots=True, eq=False)
class FlowPackets:
    """The one packet provider: the packets of some flows of one analysed capture.

    ``source`` is what was analysed (a path, a list of rotated files, or a stream
    that cannot be re-read); ``index`` the sparse index of the analysis pass (None
    when the source cannot be sought in); ``loaded`` returns the per-packet frame
    when a notebook already read it whole (then it is filtered, not read again).
    """

    source: object
    index: PacketIndex | None = None
    loaded: Callable[[], pd.DataFrame | None] | None = None

    def of_flows(self, flows: Sequence[FlowRecord]) -> pd.DataFrame:
        """Packets (the ``Analysis.packets`` columns) that may belong to ``flows``.

        Already-loaded packets are returned as they are (filtering again would only copy).

        Raises:
            ValueError: the source cannot be re-read (stdin, a stream).
        """
        cached = self.loaded() if self.loaded is not None else None
        if cached is not None:
            return cached
        batches = _batches_of(self.source, self.index, flows)
        # lazy: pandas, only when a DataFrame is asked for
        from rstscope.ingest import batches_to_dataframe

        result: pd.DataFrame = batches_to_dataframe(batches)
        return result

    def rows_of_flows(self, flows: Sequence[FlowRecord]) -> npt.NDArray[Any]:
        """The same packets as :meth:`of_flows`, as packed rows of
        ``rstscope.schema.PACKET_DTYPE`` in capture order, always re-read from the
        source (no pandas: the report draws its timelines from these).

        Raises:
            ValueError: the source cannot be re-read (stdin, a stream).
        """
        parts = list(_batches_of(self.source, self.index, flows))
        if not parts:
            return np.zeros(0, dtype=PACKET_DTYPE)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _batches_of(source: Any, index: PacketIndex | None, flows: Sequence[FlowRecord]
                ) -> Iterator[npt.NDArray[Any]]:
    """The rows of every batch that may belong to ``flows`` (ports, addresses, time).

    Raises:
        ValueError: at once (not on the first batch) when ``source`` cannot be re-read.
    """
    if source is None or not rereadable(source):
        raise ValueError("packets are only available for analyses of files on disk")
    return _filtered(source, index, flows)


def _filtered(source: Any, index: PacketIndex | None, flows: Sequence[FlowRecord]
              ) -> Iterator[npt.NDArray[Any]]:
    # lazy: the reader and the index, only when packets are read again
    from rstscope.ingest import open_capture
    from rstscope.ingest.index import read_spans

    ports = np.unique(np.asarray([f.orig_p for f in flows] + [f.resp_p for f in flows],
                                 dtype=np.uint16))
    hosts = np.unique(np.asarray([addr_bytes(h) for f in flows for h in (f.orig_h, f.resp_h)],
                                 dtype="S16"))
    t_lo = min((f.first_ts_ns for f in flows), default=0)
    t_hi = max((f.last_ts_ns for f in flows), default=-1)

    def every_batch() -> Iterator[Any]:
        if index is not None:
            spans = index.select([(f.orig_p, f.resp_p) for f in flows], t_lo, t_hi)
            yield from read_spans(source if isinstance(source, (list, tuple)) else [source], spans)
            return
        with open_capture(source) as reader:
            yield from reader

    for batch in every_batch():
        keep = (np.isin(batch["sport"], ports) & np.isin(batch["dport"], ports)
                & (batch["ts_ns"] >= t_lo) & (batch["ts_ns"] <= t_hi))
        if keep.any():
            sub = batch[keep]
            # numpy strips trailing NULs of S16 on both sides alike, so isin holds.
            sub = sub[np.isin(sub["src"], hosts) & np.isin(sub["dst"], hosts)]
            if len(sub):
                yield sub

