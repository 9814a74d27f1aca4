"""The record table: where each captured frame sits in the buffer, before decoding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class RecordTable:
    """Columns for ``n`` frames of one window; offsets index the window's buffer.

    ``linktype`` is per frame because pcapng interfaces may differ.
    """

    off: np.ndarray  # int64, start of frame data in buf
    caplen: np.ndarray  # int64, captured bytes
    wirelen: np.ndarray  # int64, original length on the wire
    ts_ns: np.ndarray  # int64
    linktype: np.ndarray  # int64
    iface: np.ndarray  # int64

    def __len__(self) -> int:
        return int(self.off.size)


def empty_records() -> RecordTable:
    z = np.zeros(0, dtype=np.int64)
    return RecordTable(z, z, z, z, z, z)
