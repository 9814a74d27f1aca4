"""Timeout-catalog matching."""

from __future__ import annotations

from rstscope.core.config import TimeoutEntry, TrackerConfig
from rstscope.core.timeouts import match_gap, nearing

NLB = TimeoutEntry("NLB", "load-balancer", "idle", 350.0, "rst-next-packet", False)
AZ = TimeoutEntry("Azure LB", "load-balancer", "idle reset", 240.0, "rst-both", False)
ALB = TimeoutEntry("ALB", "load-balancer", "idle", 60.0, "fin", True)
CFG = TrackerConfig(timeouts=(NLB, AZ, ALB), match_tolerance_s=1.0, late_sweep_s=10.0)


def test_tolerance_and_late_sweep():
    assert [m.entry for m in match_gap(CFG, 349.2, triggered=True, bidirectional=False)] == [NLB]
    assert [m.entry for m in match_gap(CFG, 359.0, triggered=True, bidirectional=False)] == [NLB]
    assert match_gap(CFG, 348.0 - 6.0, triggered=True, bidirectional=False) == []
    assert match_gap(CFG, 368.0, triggered=True, bidirectional=False) == []


def test_behaviour_fit():
    (m,) = match_gap(CFG, 350.5, triggered=True, bidirectional=False)
    assert m.fits
    (m,) = match_gap(CFG, 350.5, triggered=False, bidirectional=False)
    assert not m.fits  # an NLB resets only when the next packet comes
    (m,) = match_gap(CFG, 240.2, triggered=False, bidirectional=True)
    assert m.fits
    (m,) = match_gap(CFG, 240.2, triggered=False, bidirectional=True, local_sender=True)
    assert not m.fits  # the capture host's own RST is never a device's
    (m,) = match_gap(CFG, 60.3, triggered=True, bidirectional=False)
    assert not m.fits and m.label() == "60 s: ALB: idle"


def test_nearing_ignores_fin_devices_and_short_timeouts():
    assert nearing(CFG, 320.0) == [NLB]
    assert nearing(CFG, 57.0) == []  # the ALB closes with FIN
    assert nearing(CFG, 100.0) == []
