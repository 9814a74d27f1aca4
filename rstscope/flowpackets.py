"""The packets of some flows, re-read from the capture in one streaming pass.

``Analysis.packets`` materialises every packet of the capture; for a 10 GB
capture that is far more memory than a plot of one flow or a report of twenty
needs.  Here each batch is filtered with numpy (ports first, then addresses,
within the flows' time span) and only the matching rows are kept, so memory is
bounded by those flows' packets.  When the analysis pass recorded a sparse index
(``Analysis.packet_index``, regular files), only the batches that may hold the
flows are decoded again, each found by seeking to its recorded offset; the rows
are the same as a full pass gives (tests/test_flowpackets_index.py).  Used by the timeline (one flow) and the report
(the flows it draws); it takes flow records, so it imports neither of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rstscope.schema import addr_bytes

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.api import Analysis


def packets_of_flows(analysis: Analysis, flows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Packets (the ``analysis.packets`` columns) that may belong to ``flows``
    (flow records as dicts: ``orig_h/orig_p/resp_h/resp_p/first_ts_ns/last_ts_ns``).

    Already-loaded packets are returned as they are (filtering again would only copy).

    Raises:
        ValueError: the analysis' source cannot be re-read (stdin, a stream).
    """
    cached = analysis.packets_if_loaded
    if cached is not None:
        frame: pd.DataFrame = cached
        return frame
    source = getattr(analysis, "source", None)
    if source is None or not _rereadable(source):
        raise ValueError("packets are only available for analyses of files on disk")
    # lazy: pandas, only when a DataFrame is asked for
    from rstscope.ingest import batches_to_dataframe, open_capture
    from rstscope.ingest.index import read_spans

    ports = np.unique(np.asarray([int(f["orig_p"]) for f in flows] + [int(f["resp_p"]) for f in flows],
                                 dtype=np.uint16))
    hosts = np.unique(np.asarray([addr_bytes(str(f[k])) for f in flows for k in ("orig_h", "resp_h")],
                                 dtype="S16"))
    t_lo = min((int(f["first_ts_ns"]) for f in flows), default=0)
    t_hi = max((int(f["last_ts_ns"]) for f in flows), default=-1)

    index = getattr(analysis, "packet_index", None)

    def every_batch() -> Iterator[Any]:
        if index is not None:
            spans = index.select([(int(f["orig_p"]), int(f["resp_p"])) for f in flows], t_lo, t_hi)
            yield from read_spans(source if isinstance(source, (list, tuple)) else [source], spans)
            return
        with open_capture(source) as reader:
            yield from reader

    def batches() -> Iterator[Any]:
        for batch in every_batch():
            keep = (np.isin(batch["sport"], ports) & np.isin(batch["dport"], ports)
                    & (batch["ts_ns"] >= t_lo) & (batch["ts_ns"] <= t_hi))
            if keep.any():
                sub = batch[keep]
                # numpy strips trailing NULs of S16 on both sides alike, so isin holds.
                sub = sub[np.isin(sub["src"], hosts) & np.isin(sub["dst"], hosts)]
                if len(sub):
                    yield sub

    result: pd.DataFrame = batches_to_dataframe(batches())
    return result


def _rereadable(source: object) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source) != "-"
    if isinstance(source, (list, tuple)):
        return all(_rereadable(s) for s in source)
    return False
