"""Scale-out on Dask: ``rstscope batch`` over many captures or one sharded huge one.

Modules: :mod:`~rstscope.scale.discover` (inputs, ring-buffer grouping),
:mod:`~rstscope.scale.identity` (content hash), :mod:`~rstscope.scale.shard`
(flow sharding of one capture), :mod:`~rstscope.scale.sharded` (parallel
analysis of the shards), :mod:`~rstscope.scale.tables` (Arrow schemas),
:mod:`~rstscope.scale.batch` (the Dask driver), :mod:`~rstscope.scale.cli`.
Names are loaded on first use so that importing the package needs neither
dask nor pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CaptureInput": "rstscope.scale.discover",
    "discover": "rstscope.scale.discover",
    "content_hash": "rstscope.scale.identity",
    "write_shards": "rstscope.scale.shard",
    "analyze_sharded_local": "rstscope.scale.sharded",
    "BatchReport": "rstscope.scale.batch",
    "connect": "rstscope.scale.batch",
    "read_summary": "rstscope.scale.batch",
    "run_batch": "rstscope.scale.batch",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'rstscope.scale' has no attribute {name!r}")
