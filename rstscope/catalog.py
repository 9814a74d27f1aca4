"""Load the packaged idle-timeout table into :class:`~rstscope.core.TimeoutEntry` records.

The core never does I/O; callers pass ``load_timeouts()`` in ``TrackerConfig.timeouts``.
Rows without a numeric default ("none", "unconfirmed") are skipped: they cannot
match a gap.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources
from pathlib import Path

from rstscope.core.config import EXPIRY_BEHAVIOURS, TimeoutEntry
from rstscope.errors import InputMissingError, UsageError

_COLUMNS = ("product", "category", "setting", "default_s", "expiry_behaviour", "full_proxy")


def parse_timeouts(text: str, *, origin: str = "catalog") -> tuple[TimeoutEntry, ...]:
    """Parse catalog CSV text (columns as in ``rstscope/data/idle-timeouts.csv``)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise UsageError(f"{origin}: timeout table lacks column(s) {', '.join(missing)}")
    out: list[TimeoutEntry] = []
    for line, row in enumerate(reader, start=2):
        try:
            timeout_s = float(row["default_s"])
        except ValueError:
            continue
        behaviour = row["expiry_behaviour"].strip()
        if behaviour not in EXPIRY_BEHAVIOURS:
            raise UsageError(f"{origin}:{line}: unknown expiry_behaviour {behaviour!r}")
        proxy = row["full_proxy"].strip()
        out.append(TimeoutEntry(
            product=row["product"].strip(), category=row["category"].strip(),
            setting=row["setting"].strip(), timeout_s=timeout_s,
            expiry_behaviour=behaviour,
            full_proxy=True if proxy == "yes" else False if proxy == "no" else None))
    return tuple(out)


@lru_cache(maxsize=1)
def load_timeouts() -> tuple[TimeoutEntry, ...]:
    """The packaged catalog."""
    text = resources.files("rstscope").joinpath("data/idle-timeouts.csv").read_text("utf-8")
    return parse_timeouts(text, origin="idle-timeouts.csv")


def load_timeouts_file(path: str | Path) -> tuple[TimeoutEntry, ...]:
    """A user-supplied table in the same format (e.g. their own device timeouts)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise InputMissingError(f"{p}: cannot read timeout table ({exc.strerror})") from exc
    return parse_timeouts(text, origin=str(p))
