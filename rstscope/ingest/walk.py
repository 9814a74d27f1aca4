"""Shared pieces of the container walkers: results and the aligned uint32 views."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from rstscope.ingest.record_table import RecordTable


class Status(Enum):
    MORE = "more"  # stopped at the record budget; call again
    NEED = "need"  # the window ends inside a record (or is exhausted)
    CORRUPT = "corrupt"  # an impossible record/block at ``pos``; resync or stop
    END = "end"  # the container says there is nothing more


@dataclass(frozen=True, slots=True)
class WalkResult:
    rec: RecordTable
    pos: int  # first byte not consumed
    status: Status
    need: int = 0  # for NEED: bytes wanted from ``pos`` onward
    problem: str = ""  # for CORRUPT: what was wrong


def u32_views(buf: np.ndarray, skip: int = 0) -> list[memoryview]:
    """Four native-uint32 views of ``buf``, starting at byte ``skip`` + 0, 1, 2 and 3.

    ``views[p & 3][(p >> 2) + k]`` is the uint32 at byte ``p + skip + 4k``: a
    plain index instead of a struct call keeps the serial record walk at
    ~0.3 us per record.  ``skip`` folds a constant field offset into the views
    so the walk does not pay an extra addition per record.
    """
    m = memoryview(buf).cast("B")  # type: ignore[arg-type]
    n = len(m)
    out = []
    for r in range(4):
        start = r + skip
        usable = max(0, (n - start) // 4) * 4
        out.append(m[start:start + usable].cast("I"))
    return out
