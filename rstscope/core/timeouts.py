"""Match an idle gap against the timeout catalog."""

from __future__ import annotations

from dataclasses import dataclass

from rstscope.core.config import TimeoutEntry, TrackerConfig


@dataclass(frozen=True, slots=True)
class TimeoutMatch:
    entry: TimeoutEntry
    error_s: float  # gap - timeout (negative: early, within tolerance)
    fits: bool  # the device's wire behaviour fits how this RST looked

    def label(self) -> str:
        return f"{self.entry.timeout_s:g} s: {self.entry.label}"


def tolerance_s(cfg: TrackerConfig, timeout_s: float) -> float:
    return max(cfg.match_tolerance_s, 0.02 * timeout_s)


def match_gap(cfg: TrackerConfig, gap_s: float, *, triggered: bool,
              bidirectional: bool, local_sender: bool = False) -> list[TimeoutMatch]:
    """Catalog entries whose timeout explains ``gap_s``, best first.

    A gap matches T when it lies in [T - tol, T + tol + late_sweep].  ``fits`` says
    whether the device's expiry behaviour produces this kind of RST: a device that
    resets on the next packet fits a triggered RST; one that resets both sides fits
    a spontaneous (or bidirectional) one; FIN/HTTP-error/silent-drop devices never
    send the RST themselves but may still be the root cause of a local one.  A RST
    from the capture host itself (``local_sender``) is never a device's.
    """
    out: list[TimeoutMatch] = []
    for entry in cfg.timeouts:
        t = entry.timeout_s
        if t <= 0:
            continue
        tol = tolerance_s(cfg, t)
        err = gap_s - t
        if not -tol <= err <= tol + cfg.late_sweep_s:
            continue
        beh = entry.expiry_behaviour
        if local_sender:
            fits = False
        elif beh == "rst-next-packet":
            fits = triggered
        elif beh == "rst-both":
            fits = bidirectional or not triggered
        else:
            fits = False
        out.append(TimeoutMatch(entry, err, fits))
    # A timeout the user stated beats the catalog; among catalog rows the closest
    # fit wins, then the most common product (not the alphabetically first).
    out.sort(key=lambda m: (not m.fits, not m.entry.stated, round(abs(m.error_s), 3),
                            m.entry.rank, m.entry.product))
    return out


def nearing(cfg: TrackerConfig, idle_s: float) -> list[TimeoutEntry]:
    """Catalog timeouts (that reset or drop) this silence is approaching or past."""
    hits = [e for e in cfg.timeouts
            if e.timeout_s >= cfg.idle_warn_min_s
            and e.expiry_behaviour in ("rst-next-packet", "rst-both", "silent-drop")
            and cfg.idle_warn_fraction * e.timeout_s <= idle_s <= e.timeout_s + cfg.late_sweep_s]
    hits.sort(key=lambda e: (e.timeout_s, not e.stated, e.rank, e.product))
    return hits
