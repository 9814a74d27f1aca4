"""Read statistics: every frame is counted, as TCP or under a named non-TCP kind.

Invariant (checked by tests on every capture): ``frames == tcp + sum(non_tcp.values())``.
Damage to the container (a cut-short last record, skipped garbage) is not a
frame and is counted separately in ``damage`` with a warning string.

These are mutable accumulators, filled while a reader iterates, so unlike the
packet records they are not frozen.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class FileStats:
    """Counts for one input file of a (possibly multi-file) read."""

    name: str
    file_id: int
    format: str = ""  # "pcap", "pcap-ns", "pcapng"; with "+gzip" when compressed
    frames: int = 0
    tcp: int = 0
    rst: int = 0
    non_tcp: Counter[str] = field(default_factory=Counter)
    linktypes: Counter[int] = field(default_factory=Counter)  # linktype -> frames
    damage: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None

    def check(self) -> bool:
        return self.frames == self.tcp + sum(self.non_tcp.values())


@dataclass(slots=True)
class ReadStats:
    """Totals over all files read so far, plus the per-file breakdown in ``files``."""

    frames: int = 0
    tcp: int = 0
    rst: int = 0
    non_tcp: Counter[str] = field(default_factory=Counter)
    linktypes: Counter[int] = field(default_factory=Counter)
    damage: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    files: list[FileStats] = field(default_factory=list)

    def check(self) -> bool:
        return self.frames == self.tcp + sum(self.non_tcp.values())

    def add_frames(self, fs: FileStats, frames: int, tcp: int, rst: int,
                   non_tcp: Counter[str], linktypes: Counter[int]) -> None:
        for tgt in (self, fs):
            tgt.frames += frames
            tgt.tcp += tcp
            tgt.rst += rst
            tgt.non_tcp.update(non_tcp)
            tgt.linktypes.update(linktypes)

    def warn(self, fs: FileStats | None, msg: str, damage: str | None = None,
             amount: int = 1) -> None:
        text = f"{fs.name}: {msg}" if fs is not None else msg
        self.warnings.append(text)
        if damage:
            self.damage[damage] += amount
        if fs is not None:
            fs.warnings.append(text)
            if damage:
                fs.damage[damage] += amount

    def summary(self) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.non_tcp.items()))
        return (f"{self.frames} frames: {self.tcp} TCP ({self.rst} RST)"
                + (f"; not TCP: {kinds}" if kinds else "")
                + (f"; {len(self.warnings)} warning(s)" if self.warnings else ""))
