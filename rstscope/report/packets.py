"""Re-read only the packets of the flows a report draws, in one streaming pass.

``Analysis.packets`` materialises every packet of the capture; for a 10 GB
capture that is far more memory than a report of twenty flows needs.  Here
each batch is filtered with numpy (ports first, then addresses) and only the
matching rows are kept, so memory is bounded by the drawn flows' packets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from rstscope.plot.select import flow_records
from rstscope.schema import addr_bytes

if TYPE_CHECKING:
    import pandas as pd

    from rstscope.api import Analysis


def select_flow_packets(analysis: Analysis, flow_ids: Iterable[str]) -> pd.DataFrame:
    """Packets (the ``analysis.packets`` columns) of the flows with these ids.

    Raises:
        ValueError: the analysis' source cannot be re-read (stdin, a stream).
    """
    wanted = {str(f) for f in flow_ids}

    flows = [f for f in flow_records(analysis) if str(f["flow_id"]) in wanted]
    cached = analysis.packets_if_loaded
    if cached is not None:
        frame: pd.DataFrame = cached  # already in memory: filtering again would only copy
        return frame
    source = getattr(analysis, "source", None)
    if source is None or not _rereadable(source):
        raise ValueError("packets are only available for analyses of files on disk")
    # lazy: pandas, only when a DataFrame is asked for
    from rstscope.ingest import batches_to_dataframe, open_capture

    ports = np.unique(np.asarray([int(f["orig_p"]) for f in flows] + [int(f["resp_p"]) for f in flows],
                                 dtype=np.uint16))
    hosts = np.unique(np.asarray([addr_bytes(str(f[k])) for f in flows for k in ("orig_h", "resp_h")],
                                 dtype="S16"))
    t_lo = min((int(f["first_ts_ns"]) for f in flows), default=0)
    t_hi = max((int(f["last_ts_ns"]) for f in flows), default=-1)

    def batches() -> Iterator[Any]:
        with open_capture(source) as reader:
            for batch in reader:
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
