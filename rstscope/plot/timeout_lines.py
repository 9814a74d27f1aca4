"""Known idle timeouts for plots: parse a reset's candidates, group the catalog by value."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rstscope import catalog
from rstscope.plot.style import fmt_duration

_LEADING_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s\b")


@dataclass(frozen=True, slots=True)
class KnownTimeout:
    """One timeout value and the products whose default it is."""

    timeout_s: float
    names: tuple[str, ...]

    def label(self, max_names: int = 2) -> str:
        shown = ", ".join(self.names[:max_names])
        more = f" +{len(self.names) - max_names}" if len(self.names) > max_names else ""
        return f"{fmt_duration(self.timeout_s)}: {shown}{more}" if shown else fmt_duration(self.timeout_s)


def parse_candidates(candidates: Iterable[object]) -> list[KnownTimeout]:
    """Candidates as the core writes them (``"60.0 s: nginx proxy_read_timeout; AWS ALB"``).

    Entries without a leading number of seconds are skipped: they cannot be drawn.
    Entries with the same value are merged (one line per value), ascending.
    """
    groups: dict[float, list[str]] = {}
    for c in candidates or ():
        text = str(c)
        m = _LEADING_SECONDS.match(text)
        if not m:
            continue
        rest = text[m.end():].lstrip(" :")
        names = groups.setdefault(float(m.group(1)), [])
        names += [n.strip() for n in re.split(r";", rest) if n.strip() and n.strip() not in names]
    return [KnownTimeout(v, tuple(groups[v])) for v in sorted(groups)]


def catalog_entries() -> Sequence[Any]:
    """The packaged timeout catalog (``TimeoutEntry`` records)."""
    return tuple(catalog.load_timeouts())


def catalog_by_value(entries: Sequence[Any] | None = None) -> list[KnownTimeout]:
    """Distinct catalog timeout values, each with its product names, ascending."""
    groups: dict[float, list[str]] = {}
    # Most common products first (rstscope/data/prevalence.csv), as in the verdicts.
    chosen = catalog_entries() if entries is None else entries
    for e in sorted(chosen, key=lambda e: getattr(e, "rank", 1000)):
        value = float(getattr(e, "timeout_s", float("nan")))
        if not value > 0:
            continue
        name = str(getattr(e, "product", "?"))
        setting = str(getattr(e, "setting", "")).split(" ")[0].split("(")[0]
        label = f"{name} {setting}".strip() if setting else name
        names = groups.setdefault(value, [])
        if label not in names:
            names.append(label)
    return [KnownTimeout(v, tuple(groups[v])) for v in sorted(groups)]


def nearest(known: Sequence[KnownTimeout], value_s: float, n: int) -> list[KnownTimeout]:
    """The ``n`` known timeouts closest to ``value_s`` on a log scale."""
    if value_s <= 0:
        return []
    scored = sorted(known, key=lambda k: abs(math.log(k.timeout_s / value_s)))
    return sorted(scored[:n], key=lambda k: k.timeout_s)
