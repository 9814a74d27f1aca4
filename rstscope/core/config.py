"""Tracker configuration and the timeout-catalog record it carries.

The core never reads files: :mod:`rstscope.catalog` parses the packaged table
into :class:`TimeoutEntry` records and the caller passes them in here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rstscope.core.scoring import Scoring
from rstscope.core.vocab import Vantage

# What a device puts on the wire when its idle timer fires (catalog column
# ``expiry_behaviour``).  Only the RST-sending ones can be the RST's sender.
EXPIRY_BEHAVIOURS = ("fin", "rst-next-packet", "rst-both", "silent-drop",
                     "http-error-then-close", "unknown")


@dataclass(frozen=True, slots=True)
class TimeoutEntry:
    """One row of the idle-timeout catalog (a product's default idle timeout)."""

    product: str
    category: str  # load-balancer | proxy | firewall | nat | cdn | client | server
    setting: str
    timeout_s: float
    expiry_behaviour: str  # one of EXPIRY_BEHAVIOURS
    full_proxy: bool | None  # terminates TCP on both sides (None: unknown)
    # How common the product is in front of HTTPS APIs (1 = most common; see
    # rstscope/data/prevalence.csv).  Ties between equally good matches are broken
    # by it, so the likeliest suspect is named first, not the alphabetically first.
    rank: int = 1000
    # The user stated this timeout (``--timeouts FILE``): it beats the catalog.
    stated: bool = False

    @property
    def label(self) -> str:
        return f"{self.product}: {self.setting}"


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Knobs of :class:`rstscope.core.Tracker`; every default is explained inline."""

    # Capture point; "auto" infers it per flow from TTLs and handshake timing.
    vantage: Vantage = Vantage.AUTO
    # Parsed catalog (rstscope.catalog.load_timeouts()); empty disables matching.
    timeouts: tuple[TimeoutEntry, ...] = ()
    # An idle gap matches timeout T when |gap - T| <= max(match_tolerance_s, 2 % of T).
    match_tolerance_s: float = 1.0
    # Devices expire idle entries in periodic sweeps, so the RST may come up to this
    # much later than T (conntrack-style garbage collection runs every few seconds).
    late_sweep_s: float = 10.0
    # Post-RST evidence (races, storms, the reverse RST of a bidirectional reset) is
    # collected for this long before the verdict is emitted.  Live capture needs a
    # verdict within 1 s, so the default stays below that; offline may use more.
    settle_s: float = 0.5
    # Memory guard only: flows idle this long are evicted (their record is kept and
    # counted), never split.  Above the largest LB idle timeout (AWS NLB max 6000 s).
    evict_idle_s: float = 7200.0
    # Hard bound on live flow state; the least recently seen flow is evicted beyond it.
    max_flows: int = 1_000_000
    # Live idle warnings: warn when a flow's silence reaches this fraction of a catalog
    # timeout that would reset or drop it ...
    idle_warn_fraction: float = 0.9
    # ... but ignore timeouts shorter than this (client pool expiries are not news).
    idle_warn_min_s: float = 30.0
    # RSTs of one flow closer together than this are examined as one storm/burst.
    storm_window_s: float = 2.0
    # Keep every finished flow and reset record for flows()/resets().  Live capture
    # turns this off: its records leave as events, so memory stays bounded by the
    # active flow table however long it runs.
    keep_records: bool = True
    # Testing aid: route every packet through the per-packet path (no vectorised bulk).
    packet_path_only: bool = False
    # Names of expiry behaviours under which a device itself emits the RST.
    rst_behaviours: tuple[str, ...] = field(default=("rst-next-packet", "rst-both"))
    # The classifier's weights, thresholds and confidence caps, each with its reason
    # (rstscope.core.scoring).
    scoring: Scoring = field(default_factory=Scoring)
