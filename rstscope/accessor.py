"""The ``.rst`` pandas accessor: the common filters on reset and flow tables.

Importing :mod:`rstscope` registers it, so in a notebook::

    a = rs.analyze("capture.pcapng")
    a.resets.rst.by_origin("firewall")
    a.resets.rst.idle_between(55, 65)
    a.resets.rst.flow(3)
    a.resets.rst.confident(0.8)

Each method returns a filtered copy and works on any frame that has the
schema's columns (docs/schema.md), e.g. one read back from Parquet.
"""

from __future__ import annotations

import difflib

import pandas as pd


@pd.api.extensions.register_dataframe_accessor("rst")
class RstAccessor:
    """Filters for rstscope's reset (and, where columns allow, flow) tables."""

    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def _need(self, *cols: str) -> None:
        missing = [c for c in cols if c not in self._df.columns]
        if missing:
            raise AttributeError(f"this frame has no {', '.join(missing)} column(s); "
                                 "use it on Analysis.resets or Analysis.flows")

    def by_origin(self, *origins: str) -> pd.DataFrame:
        """Resets whose origin is one of ``origins`` (client, server, load-balancer, firewall, unknown).

        A name that is not an origin raises ``ValueError`` (a typo such as
        ``load_balancer`` would otherwise silently return nothing).
        """
        self._need("origin")
        known = ("client", "server", "load-balancer", "firewall", "unknown")
        bad = [o for o in origins if o not in known]
        if bad:
            hints = [difflib.get_close_matches(o.replace("_", "-"), known, n=1) for o in bad]
            said = ", ".join(f"{o!r}" + (f" (did you mean {h[0]!r}?)" if h else "")
                             for o, h in zip(bad, hints, strict=True))
            raise ValueError(f"not an origin: {said}; origins are {', '.join(known)}")
        return self._df[self._df["origin"].isin(origins)]

    def idle_between(self, min_s: float = 0.0, max_s: float = float("inf"), *,
                     column: str = "silence_s") -> pd.DataFrame:
        """Resets whose silence is in [min_s, max_s] seconds.

        ``column`` defaults to ``silence_s``, the silence the verdict is about and the
        table's "silence" column; pass ``column="idle_gap_s"`` for the raw gap just
        before the RST packet.
        """
        self._need(column)
        gap = self._df[column].astype("Float64")
        return self._df[((gap >= min_s) & (gap <= max_s)).fillna(False).astype(bool)]

    def flow(self, *flow_ids: int) -> pd.DataFrame:
        """Rows of these flows."""
        self._need("flow_id")
        return self._df[self._df["flow_id"].isin(flow_ids)]

    def confident(self, min_confidence: float = 0.8) -> pd.DataFrame:
        """Resets whose verdict confidence is at least ``min_confidence``."""
        self._need("confidence")
        return self._df[self._df["confidence"] >= min_confidence]

    def with_timeout_match(self) -> pd.DataFrame:
        """Resets whose idle gap matched a known product timeout."""
        self._need("timeout_candidates")
        has = self._df["timeout_candidates"].map(lambda c: bool(c) if c is not None else False)
        return self._df[has.astype(bool)]

    def origin_counts(self) -> pd.Series:
        """Number of resets per origin, largest first."""
        self._need("origin")
        return self._df["origin"].value_counts()
