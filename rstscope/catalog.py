"""Load the packaged idle-timeout table into :class:`~rstscope.core.TimeoutEntry` records.

The core never does I/O; callers pass ``load_timeouts()`` in ``TrackerConfig.timeouts``.
Rows without a numeric default ("none", "unconfirmed") are skipped: they cannot
match a gap.
"""

from __future__ import annotations

import csv
import io
import pkgutil
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from rstscope.core.config import EXPIRY_BEHAVIOURS, TimeoutEntry, TrackerConfig
from rstscope.errors import InputMissingError, UsageError

_COLUMNS = ("product", "category", "setting", "default_s", "expiry_behaviour", "full_proxy")


@dataclass(frozen=True, slots=True)
class Prevalence:
    """One row of ``data/prevalence.csv``: how common a product family is."""

    product_prefix: str
    rank: int
    stacks: tuple[str, ...]


def _packaged(name: str) -> str:
    """A file of ``rstscope/data``, read through the package's loader (so from a
    wheel or a zip too).  Not importlib.resources: its import and traversal cost
    ~8 ms of every command's start-up, as much as the rest of this module."""
    data = pkgutil.get_data("rstscope", f"data/{name}")
    assert data is not None  # None only for a loader without get_data; rstscope's has it
    return data.decode("utf-8")


@lru_cache(maxsize=1)
def load_prevalence() -> tuple[Prevalence, ...]:
    """The packaged prevalence ranking, longest prefix first (so it matches first)."""
    text = _packaged("prevalence.csv")
    rows = [Prevalence(r["product_prefix"], int(r["rank"]),
                       tuple(s.strip() for s in r["stacks"].split(",") if s.strip()))
            for r in csv.DictReader(io.StringIO(text))]
    return tuple(sorted(rows, key=lambda p: -len(p.product_prefix)))


def known_stacks() -> tuple[str, ...]:
    """Names ``--stack`` accepts (nginx, aws, cloudflare, ...)."""
    return tuple(sorted({s for p in load_prevalence() for s in p.stacks}))


def _prevalence_of(product: str) -> Prevalence | None:
    for p in load_prevalence():
        if product.startswith(p.product_prefix):
            return p
    return None


def parse_timeouts(text: str, *, origin: str = "catalog",
                   stated: bool = False) -> tuple[TimeoutEntry, ...]:
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
        prev = _prevalence_of(row["product"].strip())
        out.append(TimeoutEntry(
            product=row["product"].strip(), category=row["category"].strip(),
            setting=row["setting"].strip(), timeout_s=timeout_s,
            expiry_behaviour=behaviour,
            full_proxy=True if proxy == "yes" else False if proxy == "no" else None,
            rank=0 if stated else prev.rank if prev else 1000, stated=stated))
    return tuple(out)


@lru_cache(maxsize=1)
def load_timeouts() -> tuple[TimeoutEntry, ...]:
    """The packaged catalog."""
    text = _packaged("idle-timeouts.csv")
    return parse_timeouts(text, origin="idle-timeouts.csv")


def load_timeouts_file(path: str | Path) -> tuple[TimeoutEntry, ...]:
    """A user-supplied table in the same format (e.g. their own device timeouts)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise InputMissingError(f"{p}: cannot read timeout table ({exc.strerror})") from exc
    return parse_timeouts(text, origin=str(p), stated=True)


def with_stack(entries: tuple[TimeoutEntry, ...], stack: tuple[str, ...]) -> tuple[TimeoutEntry, ...]:
    """Rank the products of the user's stack (``--stack nginx,aws``) above all others.

    Nothing is removed: a box the user forgot is still matched, only named later.
    """
    if not stack:
        return entries
    unknown = sorted(set(stack) - set(known_stacks()))
    if unknown:
        raise UsageError(f"unknown --stack name(s) {', '.join(unknown)}; "
                         f"known: {', '.join(known_stacks())}")
    wanted = set(stack)
    out = []
    for e in entries:
        prev = _prevalence_of(e.product)
        if not e.stated and prev is not None and wanted & set(prev.stacks):
            e = replace(e, rank=min(e.rank, 100) - 100)
        out.append(e)
    return tuple(out)


def make_config(vantage: str = "auto", **overrides: Any) -> TrackerConfig:
    """A tracker config with the shipped timeout catalog loaded."""
    return TrackerConfig(vantage=vantage, timeouts=load_timeouts(), **overrides)  # type: ignore[arg-type]
